"""Throughput harness: workloads shared by the benchmarks and the tests."""
