"""The WSOL benchmark's networks (hideseek.localization.benchmark): layouts, outputs, CAMs, ImageNet initialisation.

The layouts and the torchvision weight placement are checked against facts recorded from
the benchmark's own code (github.com/clovaai/wsolevaluation, commit 96f4b88) by
``python tools/wsol_reference_data.py /path/to/wsolevaluation``:

* ``tests/data/wsol_benchmark_params.json``: per ``arch/type/lfm<0|1>`` (5 classes), the
  ordered ``[name, shape]`` list of the benchmark model's ``state_dict()``;
* ``tests/data/wsol_benchmark_torchvision.json``: where the benchmark's
  ``load_pretrained_model`` puts a torchvision state dict's tensors (dropped top-level
  prefixes, prefix renames; every other key keeps its name).

The CAM checks recompute the maps by hand from the networks' own submodules (forward hooks)
and resize them with OpenCV, as the benchmark's ``inference.py`` does.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from hideseek.localization import benchmark_model
from hideseek.localization.benchmark import (
    ADL,
    METHOD_PARAMS,
    WeightsError,
    load_torchvision_weights,
    score_maps,
    torchvision_key_map,
)

DATA = Path(__file__).parent / "data"
PARAMS = json.loads((DATA / "wsol_benchmark_params.json").read_text())
PLACEMENT = json.loads((DATA / "wsol_benchmark_torchvision.json").read_text())
ARCHS = ("vgg16", "resnet50", "inception_v3")
TYPES = ("cam", "acol", "spg", "adl")
COMBOS = [(a, t, lfm) for a in ARCHS for t in TYPES for lfm in (False, True)]
SIZE = 64  # a small input all three trunks take: 4 x 4 maps (8 x 8 with large_feature_map)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine two threads are several times slower for these small maps."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _id(combo) -> str:
    return "-".join(str(part) for part in combo)


def _meta_model(arch, kind, lfm, num_classes=5):
    with torch.device("meta"):
        return benchmark_model(arch, kind, num_classes=num_classes, large_feature_map=lfm)


def _materialise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """CPU tensors for a meta-built network, filled from one random vector (He-scaled weights, BN near identity).

    Drawing a full random initialisation for the up to 80M parameters of the ACoL and SPG
    heads costs seconds per network; the benchmark's own initialisation is checked in
    ``test_benchmark_initialisation``.
    """
    model.to_empty(device="cpu")
    period = 1_000_003
    base = torch.randn(period + 4096, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for i, (name, tensor) in enumerate(model.state_dict(keep_vars=True).items()):
            if name.endswith("num_batches_tracked"):
                tensor.zero_()
                continue
            flat, shift = tensor.view(-1), (7919 * i) % 4096
            for start in range(0, flat.numel(), period):  # tiled in place: no large temporaries
                chunk = flat[start : start + period]
                chunk.copy_(base[shift : shift + chunk.numel()])
            leaf = name.rsplit(".", 1)[-1]
            if tensor.ndim > 1:
                flat.mul_((2.0 / tensor[0].numel()) ** 0.5)
            elif leaf == "running_var":
                flat.abs_().add_(0.5)
            elif leaf == "weight":
                flat.mul_(0.1).add_(1.0)
            else:
                flat.mul_(0.1)
    return model


def _network(arch, kind, lfm):
    """A 5-class network in eval mode, built on the meta device and filled by :func:`_materialise`."""
    return _materialise(_meta_model(arch, kind, lfm)).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, SIZE, SIZE, generator=g), torch.tensor([1, 3])


# ---------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("combo", COMBOS, ids=_id)
def test_state_dict_layout_is_the_benchmarks(combo):
    arch, kind, lfm = combo
    ours = [[k, list(v.shape)] for k, v in _meta_model(arch, kind, lfm).state_dict().items()]
    assert ours == PARAMS[f"{arch}/{kind}/lfm{int(lfm)}"]


# ---------------------------------------------------------------------------- torchvision weights


@functools.cache
def _torchvision_template(arch):
    extra = {"aux_logits": True, "init_weights": False} if arch == "inception_v3" else {}
    with torch.device("meta"):
        return getattr(torchvision.models, arch)(weights=None, **extra).state_dict()


def _expected_target(source: str, facts: dict) -> str | None:
    if source.split(".")[0] in facts["dropped"]:
        return None
    parts = source.split(".")
    renames = {old: new for old, new in facts["renamed"]}
    for cut in range(len(parts), 0, -1):  # the longest renamed prefix wins
        head = ".".join(parts[:cut])
        if head in renames:
            return ".".join([renames[head], *parts[cut:]])
    return source


@pytest.mark.parametrize("key", sorted(PLACEMENT), ids=str)
def test_torchvision_placement_is_the_benchmarks(key):
    arch, kind, lfm = key.split("/")[:3]
    ilsvrc = key.endswith("/ilsvrc")
    model = _meta_model(arch, kind, lfm == "lfm1", num_classes=1000 if ilsvrc else 5)
    sources = list(_torchvision_template(arch))
    facts = PLACEMENT[key]
    ours = torchvision_key_map(model, sources, keep_imagenet_fc=ilsvrc)
    assert ours == {s: _expected_target(s, facts) for s in sources}
    assert sum(t is not None for t in ours.values()) == facts["loaded"]


def _tagged(arch):
    """A torchvision-layout state dict whose i-th tensor is the constant 1000 + i (expanded: no memory)."""
    return {
        k: torch.full((1,), 1000 + i, dtype=v.dtype).expand(v.shape) if v.ndim else torch.tensor(1000 + i)
        for i, (k, v) in enumerate(_torchvision_template(arch).items())
    }


@pytest.mark.parametrize("key", ["resnet50/adl/lfm1/ilsvrc", "vgg16/spg/lfm0"], ids=str)
def test_torchvision_weights_land_where_the_benchmark_puts_them(key, tmp_path):
    arch, kind, lfm = key.split("/")[:3]
    ilsvrc = key.endswith("/ilsvrc")
    tagged = _tagged(arch)
    path = tmp_path / "weights.pth"
    torch.save(tagged, path)
    model = benchmark_model(arch, kind, num_classes=1000 if ilsvrc else 5, large_feature_map=lfm == "lfm1",
                            pretrained_file=path)
    own = model.state_dict()
    names = list(tagged)
    for source in names:
        target = _expected_target(source, PLACEMENT[key])
        if target is not None:
            assert bool((own[target] == 1000 + names.index(source)).all()), (source, target)
    loaded = {_expected_target(s, PLACEMENT[key]) for s in names} - {None}
    untouched = [k for k in own if k not in loaded and own[k].numel()]
    assert all(not bool((own[k] >= 1000).all()) for k in untouched)
    report = load_torchvision_weights(model, tagged)
    assert len(report.loaded) == PLACEMENT[key]["loaded"]


def test_torchvision_weights_errors():
    model = _meta_model("resnet50", "cam", False)
    with pytest.raises(WeightsError, match="not in torchvision"):
        load_torchvision_weights(model, {"layer5.0.conv1.weight": torch.zeros(1)})
    tagged = _tagged("resnet50")
    with pytest.raises(WeightsError, match="shape mismatches"):  # the 1000-class fc kept on a 5-class network
        load_torchvision_weights(model, tagged, keep_imagenet_fc=True)
    with pytest.raises(WeightsError, match="convolutions"):
        load_torchvision_weights(_meta_model("vgg16", "cam", False), {"features.0.weight": torch.zeros(64, 3, 3, 3)})


# ---------------------------------------------------------------------------- forward, training, round trip


def _loss(out: dict, labels: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(out["logits"], labels)
    if "logit_b" in out:
        loss = loss + F.cross_entropy(out["logit_b"], labels)
    if "logits_c" in out:
        for name in ("logits_b1", "logits_b2", "logits_c"):
            loss = loss + F.binary_cross_entropy_with_logits(out[name], torch.ones_like(out[name]))
    return loss


_OUTPUTS = {
    "cam": {"logits"},
    "adl": {"logits"},
    "acol": {"logits", "logit_b", "feat_map_a", "feat_map_b"},
    "spg": {"attention", "fused_attention", "logits", "logits_b1", "logits_b2", "logits_c"},
}


@pytest.mark.parametrize("combo", [(a, t, t in ("cam", "adl")) for a in ARCHS for t in TYPES], ids=_id)
def test_train_step_eval_and_strict_round_trip(combo):
    arch, kind, lfm = combo
    model = _network(arch, kind, lfm).train()
    x, y = _batch()
    x = x[:, :, :32, :32]  # a training step needs no larger input
    out = model(x, y)
    assert set(out) == _OUTPUTS[kind]
    assert out["logits"].shape == (2, 5)
    if kind == "spg":
        assert out["attention"].shape == out["fused_attention"].shape == (2, 1, 224, 224)
    params = list(model.parameters())
    before = [params[0].detach().clone(), params[-1].detach().clone()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    _loss(out, y).backward()
    assert all(p.grad is not None for p in params)
    assert torch.isfinite(params[0].grad).all() and torch.isfinite(params[-1].grad).all()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    assert not torch.equal(before[0], params[0]) and not torch.equal(before[1], params[-1])

    model.eval()
    with torch.no_grad():
        first = model(x)
    with torch.device("meta"):
        twin = benchmark_model(arch, kind, num_classes=5, large_feature_map=lfm)
    twin.load_state_dict(model.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        again = twin.eval()(x)
    assert all(torch.equal(first[k], again[k]) for k in first)


# ---------------------------------------------------------------------------- CAMs by hand


def _capture(module: torch.nn.Module, store: dict, name: str, inputs: bool = False):
    def hook(_module, args, output):
        store[name] = (args[0] if inputs else output).detach().clone()

    return module.register_forward_hook(hook)


def _hand_minmax(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(*maps.shape[:2], -1)
    low, high = flat.min(-1, keepdims=True), flat.max(-1, keepdims=True)
    return ((flat - low) / (high - low)).reshape(maps.shape)


def _hooks(model, arch, kind, seen: dict) -> list:
    if kind in ("cam", "adl") and arch != "inception_v3":
        return [_capture(model.conv6 if arch == "vgg16" else model.layer4, seen, "features")]
    if kind in ("cam", "adl", "spg"):
        return [_capture(model.SPG_A_4 if arch == "vgg16" else model.SPG_A4, seen, "maps")]
    return [_capture(model.classifier_A, seen, "a"), _capture(model.classifier_B, seen, "b"),
            _capture(model.classifier_A, seen, "a_in", inputs=True),
            _capture(model.classifier_B, seen, "b_in", inputs=True)]


def _hand_raw_cams(model, arch, seen: dict, y: torch.Tensor) -> np.ndarray:
    """The benchmark's raw CAMs recomputed from captured intermediate outputs (float64)."""
    rows, labels = np.arange(len(y)), y.numpy()
    if "features" in seen:
        features = seen["features"].double().numpy()
        if arch == "vgg16":
            features = np.maximum(features, 0)  # conv6 is followed by a ReLU
        weights = model.fc.weight.detach().double().numpy()[labels]
        return np.einsum("bk,bkhw->bhw", weights, features) / features.shape[1]
    if "maps" in seen:
        return seen["maps"].double().numpy()[rows, labels]
    a, b = seen["a"].double().numpy(), seen["b"].double().numpy()
    attention = _hand_minmax(a[rows, labels][:, None])
    erased = seen["a_in"].double().numpy() * (attention < model.acol_threshold)
    np.testing.assert_allclose(seen["b_in"].double().numpy(), erased, rtol=1e-6, atol=1e-6)
    return np.maximum(_hand_minmax(a), _hand_minmax(b))[rows, labels]


def _hand_score_map(raw: np.ndarray, size: int) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    out = cv2.resize(raw, (size, size), interpolation=cv2.INTER_CUBIC)
    if np.isnan(out).any() or out.min() == out.max():
        return np.zeros_like(out)
    out = out - out.min()
    return out / out.max()


@pytest.mark.parametrize("combo", COMBOS, ids=_id)
def test_raw_cams_and_score_maps_by_hand(combo):
    arch, kind, lfm = combo
    model = _network(arch, kind, lfm)
    x, y = _batch(1)
    if lfm:  # same 4 x 4 maps from half the input
        x = x[:, :, ::2, ::2].contiguous()
    size = x.shape[-1]
    seen: dict = {}
    handles = _hooks(model, arch, kind, seen)
    maps, classes, logits = model.cams(x, y)  # the hooks see the last forward pass: the one behind the maps
    for handle in handles:
        handle.remove()
    hand = _hand_raw_cams(model, arch, seen, y)
    raw = model.raw_cams(x, y)
    assert raw.shape == (2, 4, 4)
    np.testing.assert_allclose(raw.double().numpy(), hand, rtol=1e-4, atol=1e-5 * np.abs(hand).max())
    if kind in ("acol", "spg") and arch == "vgg16":  # no labels: the top-1 prediction drives the (shared) heads
        with torch.no_grad():
            predicted = model(x)["logits"].argmax(1)
        assert torch.equal(model.raw_cams(x), model.raw_cams(x, predicted))
    assert maps.shape == (2, 1, size, size) and maps.dtype == torch.float32
    assert classes[:, 0].tolist() == y.tolist() and logits.shape == (2, model.num_classes)
    expected = np.stack([_hand_score_map(m, size) for m in hand])  # OpenCV: skipped without it
    assert np.abs(maps[:, 0].numpy() - expected).max() <= 1e-3


def test_benchmark_initialisation():
    torch.manual_seed(0)
    model = benchmark_model("resnet50", "cam", num_classes=5)
    assert model.training
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    bound = (6 / (64 * 9 + 64 * 9)) ** 0.5  # Xavier uniform of a 64 -> 64 3x3 conv
    conv = model.layer1[0].conv2.weight
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound
    assert abs(model.fc.weight.std().item() - 0.01) < 0.002 and not model.fc.bias.any()
    torch.manual_seed(0)
    vgg = benchmark_model("vgg16", "cam", num_classes=5)  # He (fan-out) normal
    assert abs(vgg.conv6.weight.std().item() - (2 / (1024 * 9)) ** 0.5) < 1e-3 and not vgg.conv6.bias.any()


# ---------------------------------------------------------------------------- pieces


def test_score_maps_match_opencv_cubic():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    worst = 0.0
    for h, w, H, W in [(4, 4, 64, 64), (7, 7, 224, 224), (14, 14, 224, 224), (28, 28, 224, 224),
                       (5, 9, 37, 61), (13, 13, 299, 299), (1, 1, 8, 8), (30, 30, 20, 20)]:
        raw = rng.standard_normal((3, h, w)) * 10
        ours = score_maps(torch.from_numpy(raw).float(), (H, W))[:, 0].numpy()
        for i in range(3):
            ref = cv2.resize(raw[i].astype(np.float32).astype(np.float64), (W, H), interpolation=cv2.INTER_CUBIC)
            worst = max(worst, np.abs(ours[i] - _hand_normalise(ref)).max())
    assert worst <= 1e-5, worst
    flat = score_maps(torch.stack([torch.ones(4, 4), torch.full((4, 4), float("nan"))]), (8, 8))
    assert flat.shape == (2, 1, 8, 8) and not flat.any()


def _hand_normalise(m: np.ndarray) -> np.ndarray:
    return np.zeros_like(m) if m.min() == m.max() else (m - m.min()) / (m - m.min()).max()


def test_adl_layer():
    x = torch.randn(3, 8, 5, 5)
    layer = ADL(drop_rate=1.0, threshold=0.8).eval()
    assert torch.equal(layer(x), x)
    attention = x.mean(1, keepdim=True)
    peak = attention.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(layer.train()(x), x * (attention < 0.8 * peak).float())
    torch.testing.assert_close(ADL(drop_rate=0.0, threshold=0.8).train()(x), x * torch.sigmoid(attention))
    with pytest.raises(ValueError, match="drop rate"):
        ADL(drop_rate=1.5)


def test_benchmark_model_methods_and_params():
    with torch.device("meta"):
        has = benchmark_model("resnet50", "has", num_classes=5, has_grid_size=32)
        adl = benchmark_model("inception_v3", "adl", num_classes=5, adl_threshold=0.7)
        acol = benchmark_model("vgg16", "acol", num_classes=5)
    assert (has.method, has.method_type) == ("has", "cam")
    assert has.method_params == {"has_grid_size": 32, "has_drop_rate": 0.5}
    assert adl.method_params == {"adl_drop_rate": 0.75, "adl_threshold": 0.7}
    assert {m.threshold for m in adl.modules() if isinstance(m, ADL)} == {0.7}
    assert acol.acol_threshold == METHOD_PARAMS["acol"]["acol_threshold"] == 0.7
    with pytest.raises(ValueError, match="parameter of method 'acol'"):
        benchmark_model("vgg16", "cam", acol_threshold=0.5)
    with pytest.raises(ValueError, match="did you mean resnet50"):
        benchmark_model("resnet5O", "cam")
    with pytest.raises(ValueError, match="unknown WSOL method"):
        benchmark_model("vgg16", "gradcam")


def test_timm_registration():
    import timm

    with torch.device("meta"):
        model = timm.create_model("wsol_inception_v3", num_classes=7, method="spg", large_feature_map=True)
    assert (model.architecture, model.method, model.num_classes, model.large_feature_map) == (
        "inception_v3", "spg", 7, True)
    with pytest.raises(ValueError, match="nothing is downloaded"):
        timm.create_model("wsol_vgg16", pretrained=True, num_classes=5)


def test_importing_localization_does_not_import_torch():
    code = ("import sys, hideseek.localization, hideseek.localization.benchmark, hideseek.localization.boxes; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
