"""Weakly-supervised temporal action localization: video reading and evaluation protocols."""
