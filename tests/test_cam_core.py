"""hideseek.cam: the CAM-map seam (a new method is one registered function), the Metric
base on engine.sync_states (gloo across processes, CUDA tensors for nccl)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hideseek import engine
from hideseek.cam import CAMNet, compute_cams, register_cam_method, unregister_cam_method
from hideseek.cam.metric import Metric
from hideseek.segmentation.pseudo import class_scores

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import metric_sync_worker as worker  # noqa: E402


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CAMNet("resnet18", num_classes=3, feature_stage=2).eval()


@pytest.fixture
def toy_methods():
    """Two methods registered for the test only, removed afterwards."""

    @register_cam_method("test-feature-mean")
    def feature_mean(inputs):
        """The class-agnostic mean of the feature maps, for every requested class."""
        return inputs.features.mean(1, keepdim=True).expand(-1, inputs.classes.shape[1], -1, -1)

    @register_cam_method("test-grad-weighted", needs_grad=True)
    def grad_weighted(inputs):
        """Grad-CAM without the ReLU: channel weights = spatial mean of d logit_c / d F."""
        maps = []
        for j in range(inputs.classes.shape[1]):
            picked = inputs.logits.gather(1, inputs.classes[:, j:j + 1]).sum()
            (grad,) = torch.autograd.grad(picked, inputs.features, retain_graph=True)
            maps.append((grad.mean(dim=(2, 3), keepdim=True) * inputs.features).sum(1))
        return torch.stack(maps, dim=1)

    yield ("test-feature-mean", "test-grad-weighted")
    unregister_cam_method("test-feature-mean")
    unregister_cam_method("test-grad-weighted")


def test_a_registered_method_reaches_every_caller(model, toy_methods):
    x = torch.randn(2, 3, 64, 64)
    features = model.features(x).detach()
    maps, classes, logits = model.cams(x, classes=[1, 2], method="test-feature-mean")
    assert maps.shape == (2, 1, 64, 64) and classes.tolist() == [[1], [2]]
    raw = features.mean(1, keepdim=True)
    expected = torch.nn.functional.interpolate(raw, size=(64, 64), mode="bicubic", align_corners=False)
    flat = expected.flatten(-2)
    expected = ((flat - flat.amin(-1, keepdim=True)) / (flat - flat.amin(-1, keepdim=True)).amax(-1, keepdim=True))
    torch.testing.assert_close(maps, expected.reshape(maps.shape), rtol=0, atol=1e-6)
    # segmentation pseudo-masks take the same name
    scores = class_scores(model, x, torch.tensor([[1.0, 0, 1], [0, 1, 0]]), method="test-feature-mean")
    assert scores.shape == (2, 3, 64, 64)
    assert torch.all(scores[0, 1] == 0) and scores[0, 0].amax() > 0.99


def test_a_gradient_method_runs_inside_no_grad_evaluation(model, toy_methods):
    """With GAP, d logit_c / d F_k(i, j) = W[c, k] / (h w): the gradient-weighted map is the CAM / (h w)."""
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # as engine.evaluate runs every scorer
        grad_maps, classes, _ = compute_cams(model, x, None, method="test-grad-weighted", topk=2)
    cam_maps, same_classes, _ = compute_cams(model, x, None, method="cam", topk=2)
    assert torch.equal(classes, same_classes)
    h, w = cam_maps.shape[-2:]
    torch.testing.assert_close(grad_maps, cam_maps / (h * w), rtol=1e-4, atol=1e-6)
    assert not grad_maps.requires_grad and all(p.grad is None for p in model.parameters())


def test_classes_may_be_chosen_from_the_logits(model):
    x = torch.randn(3, 3, 48, 48)
    labels = torch.tensor([0, 1, 2])
    _, classes, logits = compute_cams(model, x, lambda lg: torch.stack([labels, lg.argmax(1)], 1))
    assert classes[:, 0].tolist() == [0, 1, 2]
    assert torch.equal(classes[:, 1], logits.argmax(1))


def test_unknown_method_is_named_with_the_choices(model):
    with pytest.raises(ValueError, match=r"unknown CAM method 'gradcamm'.*valid choices: cam"):
        model.cams(torch.randn(1, 3, 32, 32), method="gradcamm")


def test_configs_check_the_cam_method_before_any_data():
    from hideseek.localization.train import LocConfig
    from hideseek.segmentation.train import SegConfig

    for config in (LocConfig, SegConfig):
        with pytest.raises(ValueError, match="unknown CAM method"):
            config(cam_method="nope")


# --------------------------------------------------------------------------- Metric.sync


def _torchrun(tmp_path, nproc, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
               str(HERE / "metric_sync_worker.py"), "--out", str(tmp_path)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return torch.load(tmp_path / "result.pt", weights_only=False)  # written by the worker above


def _assert_same_numbers(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_numbers(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def test_two_gloo_processes_sum_every_accumulator_to_the_single_process_counts(tmp_path):
    two = _torchrun(tmp_path, 2)
    one = worker.compute(rank=0, world=1, sync=False)
    assert two["world_size"] == 2
    for name, states in one["states"].items():
        for key, tensor in states.items():
            assert torch.equal(two["states"][name][key], tensor), f"{name}.{key}"
    # integer counts are equal, so every computed number is equal too (same arithmetic)
    _assert_same_numbers(two["results"], one["results"])


def test_sync_goes_through_engine_sync_states(monkeypatch):
    seen = []
    monkeypatch.setattr(engine, "sync_states", lambda states: seen.append(dict(states)) or states)

    class Counts(Metric):
        _states = ("hits", "total")

        def __init__(self):
            self.hits, self.total = torch.zeros(3, dtype=torch.int64), torch.zeros((), dtype=torch.int64)

    metric = Counts()
    metric.sync()
    assert len(seen) == 1 and set(seen[0]) == {"hits", "total"} and seen[0]["hits"] is metric.hits


def test_nccl_reduces_on_the_current_cuda_device(monkeypatch):
    """nccl reduces CUDA tensors only: the engine picks the current CUDA device for it (mocked backend)."""
    import torch.distributed as dist

    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert engine._reduce_device() == torch.device("cuda", 1)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert engine._reduce_device() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: nccl reduces CUDA tensors only")
def test_cpu_metric_states_sync_under_a_real_nccl_group(tmp_path):
    import torch.distributed as dist

    from hideseek.localization.metrics import ClassificationAccuracy

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        metric = ClassificationAccuracy()
        metric.update(torch.tensor([[0, 1, 2, 3, 4]]), torch.tensor([0]))
        before = {k: v.clone() for k, v in metric.state_dict().items()}
        metric.sync()  # CPU states: copied to CUDA, reduced, copied back
        for key, tensor in metric.state_dict().items():
            assert tensor.device.type == "cpu" and torch.equal(tensor, before[key])
    finally:
        dist.destroy_process_group()

