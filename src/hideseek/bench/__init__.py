"""Throughput harness: kernels, evaluators, training-step overhead, roofline.

:func:`hideseek.bench.suite.run_suite` measures, on one device and in one run, Hide-and-Seek
(out of place, in place, fused with normalisation), its peers (per-patch loop, timm and
torchvision ``RandomErasing``), the memory ceilings ``x.clone()`` and ``x.fill_()``, frame
hiding, the box and temporal-mAP evaluators against reference-style loops, and the
training-step overhead of hiding, and (group ``cams``, asked for by name) the time per
image of each CAM method as a ratio to vanilla CAM. :mod:`hideseek.bench.report` turns result files into
tables of ratios to the ceilings and the peers. CLI: ``hideseek bench`` and
``hideseek bench report``. Workloads shared with the tests live in
:mod:`hideseek.bench.workloads`; the pandas temporal-mAP baseline in
:mod:`hideseek.bench.reference_tmap`.
"""
