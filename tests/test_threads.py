"""Torch's thread count is the same before and after every numba kernel.

numba's OpenMP layer resets OpenMP's thread count on its first parallel launch, which torch
reads back; the check runs in a fresh interpreter so that launch happens inside it, whatever
other tests ran before in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
seen = {"start": torch.get_num_threads()}
from hideseek.augment import hide_patches, normalize_and_hide
from hideseek.augment import _cpu_masking
from hideseek.localization.boxes import max_iou_at_thresholds_batch

x = torch.randn(4, 3, 128, 128)
assert x.numel() >= _cpu_masking.MIN_ELEMENTS  # the compiled writer, not the torch path
hide_patches(x, grid_sizes=(16,), seed=0, epoch=0, sample_ids=torch.arange(4))
seen["hide_patches"] = torch.get_num_threads()
hide_patches(x, grid_sizes=(16,), seed=0, epoch=0, sample_ids=torch.arange(4), inplace=True)
seen["hide_patches inplace"] = torch.get_num_threads()
u8 = torch.randint(0, 256, (4, 3, 128, 128), dtype=torch.uint8)
normalize_and_hide(u8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), grid_sizes=(16,), seed=0, epoch=0,
                   sample_ids=torch.arange(4), backend="numba")
seen["normalize_and_hide"] = torch.get_num_threads()
normalize_and_hide(u8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), grid_sizes=(16,), seed=0, epoch=0,
                   sample_ids=torch.arange(4), backend="numba", out_dtype=torch.bfloat16)
seen["normalize_and_hide bf16"] = torch.get_num_threads()
from hideseek.localization.boxes import boxes_at_thresholds, max_iou_at_thresholds
cam = np.random.default_rng(1).random((32, 32))
max_iou_at_thresholds(cam, np.arange(0, 1, 0.1), np.array([[2, 2, 20, 20]]))
seen["max_iou_at_thresholds"] = torch.get_num_threads()
boxes_at_thresholds(cam, np.arange(0, 1, 0.1))
seen["boxes_at_thresholds"] = torch.get_num_threads()
from hideseek.localization.coco import cam_regions
cam_regions(cam, 0.5)
seen["coco cam_regions"] = torch.get_num_threads()
from hideseek.action.protocols import evaluate
from hideseek.bench.workloads import temporal_detection_workload
gt, preds = temporal_detection_workload(0, 4, 2, 5)
evaluate(gt, preds, protocol="activitynet")
seen["temporal mAP"] = torch.get_num_threads()
maps = np.random.default_rng(0).random((4, 32, 32))
max_iou_at_thresholds_batch(maps, np.arange(0, 1, 0.1), [np.array([[2, 2, 20, 20]])] * 4)
seen["max_iou_at_thresholds_batch"] = torch.get_num_threads()
print(json.dumps(seen))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_numba_kernels_leave_torch_threads_alone(threads):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {key: threads for key in seen}, seen
    assert len(seen) == 10
