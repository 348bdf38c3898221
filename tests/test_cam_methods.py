"""CAM methods beside vanilla CAM: the grad-cam package's methods through ``model.cams`` (equal to
the package called directly), Grad-CAM against its definition, every method's output contract,
vanilla CAM unchanged, ViT token CAMs at several input sizes and attention rollout, and
``--cam-method`` on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from hideseek.cam import CAMNet, compute_cams, resize_cams
from hideseek.cam.choices import CAM_METHOD_NAMES, GRAD_CAM_CLASSES, ROLLOUT
from hideseek.cam.methods import CAM_METHODS
from hideseek.cam.model import FeatureMap
from hideseek.cli import main

SETTINGS = dict(database=None, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PACKAGE_CLASSES = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}
NUM_CLASSES = 5
VITS = ("vit_tiny_patch16_224", "deit_tiny_patch16_224")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return CAMNet("resnet18", num_classes=NUM_CLASSES, feature_stage=2).eval()


@pytest.fixture(scope="module")
def vits():
    torch.manual_seed(0)
    return {name: CAMNet(name, num_classes=4).eval() for name in VITS}


def images(seed: int, batch: int = 2, size: int | tuple[int, int] = 64, dtype=torch.float32) -> torch.Tensor:
    size = (size, size) if isinstance(size, int) else size
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def class_table(seed: int, batch: int, k: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    return torch.randint(0, num_classes, (batch, k), generator=torch.Generator().manual_seed(seed + 1))


# --------------------------------------------------------------------------- (a) equal to the package


def package_maps(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, cam_class) -> np.ndarray:
    """The package called directly (its README's way): the target layer is the last feature map,
    one ClassifierOutputTarget per image and requested class; (B, k, H, W) as the package gives them."""
    columns = []
    with cam_class(model=model, target_layers=[model.feature_map]) as cam:
        for j in range(classes.shape[1]):
            columns.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, j]]))
    model.zero_grad(set_to_none=True)  # the package's backward left gradients in the parameters
    return np.stack(columns, axis=1)


@settings(max_examples=12, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 2), method=st.sampled_from(sorted(PACKAGE_CLASSES)))
def test_gradcam_and_gradcam_plus_plus_equal_the_package(resnet, seed, k, method):
    x = images(seed)
    classes = class_table(seed, 2, k)
    maps, chosen, _ = resnet.cams(x, classes=classes, method=method)
    expected = package_maps(resnet, x, classes, PACKAGE_CLASSES[method])
    assert chosen.tolist() == classes.tolist()
    assert maps.shape == expected.shape == (2, k, 64, 64)
    # 1e-3: ours stops backpropagation at the feature map and re-normalises the package's maps
    # (max 1/(1 + 1e-7) there), so float32 sums differ in the last bits
    assert np.abs(maps.numpy() - expected).max() <= 1e-3


# --------------------------------------------------------------------------- (b) Grad-CAM by its definition


class TinyCAMModel(nn.Module):
    """A stride-1 convolution (feature map at the input's resolution, so nothing is resized) and an
    MLP head on the averaged feature map (a gradient that depends on the input)."""

    def __init__(self, channels: int, hidden: int, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.feature_map = FeatureMap()
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, classes)

    def features(self, x):
        return self.feature_map(torch.relu(self.conv(x)))

    def classify(self, features):
        return self.fc2(torch.tanh(self.fc1(features.mean(dim=(2, 3)))))

    def forward(self, x):
        return self.classify(self.features(x))


def gradcam_by_definition(model: TinyCAMModel, x: torch.Tensor, classes: np.ndarray) -> np.ndarray:
    """ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dY_c/dA_k, with the derivative of the
    head written out: Y = W2 tanh(W1 mean(A) + b1) + b2, so dY_c/dA_k(i, j) = (W2[c] (1 - t^2)) W1[:, k] / hw.
    Then the package's normalisation of a map, n(m) = (m - min) / (1e-7 + max(m - min)), which it
    applies to each target layer's map and again to their mean (one layer here): n(n(m))."""
    with torch.no_grad():
        a = model.features(x).double().numpy()  # (B, K, h, w)
    w1, b1 = model.fc1.weight.detach().double().numpy(), model.fc1.bias.detach().double().numpy()
    w2 = model.fc2.weight.detach().double().numpy()
    hw = a.shape[2] * a.shape[3]
    t = np.tanh(a.mean(axis=(2, 3)) @ w1.T + b1)  # (B, hidden)
    out = np.zeros((a.shape[0], classes.shape[1], a.shape[2], a.shape[3]))
    for b in range(a.shape[0]):
        for j, c in enumerate(classes[b]):
            d_pooled = (w2[c] * (1 - t[b] ** 2)) @ w1  # dY_c / d mean(A_k), (K,)
            alpha = (np.broadcast_to((d_pooled / hw)[:, None, None], a.shape[1:])).mean(axis=(1, 2))
            cam = np.maximum((alpha[:, None, None] * a[b]).sum(axis=0), 0)
            for _ in range(2):
                cam = cam - cam.min()
                cam = cam / (1e-7 + cam.max())
            out[b, j] = cam
    return out


@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(2, 6), hidden=st.integers(2, 6),
       h=st.integers(3, 10), w=st.integers(3, 10), k=st.integers(1, 3))
def test_gradcam_follows_its_definition(seed, channels, hidden, h, w, k):
    torch.manual_seed(seed)
    model = TinyCAMModel(channels, hidden, 4).double().eval()
    x = images(seed, batch=3, size=(h, w), dtype=torch.float64)
    classes = class_table(seed, 3, k, num_classes=4)
    raw, chosen, _ = compute_cams(model, x, classes, method="gradcam")  # raw: before any resizing of ours
    assert raw.shape == (3, k, h, w) and chosen.tolist() == classes.tolist()
    # 1e-5: computed in float64 on both sides; the package hands its maps back as float32 (~6e-8)
    assert np.abs(raw.double().numpy() - gradcam_by_definition(model, x, classes.numpy())).max() <= 1e-5


# --------------------------------------------------------------------------- (c) every method's contract


def test_the_registry_offers_every_method_the_command_line_lists():
    assert set(CAM_METHOD_NAMES) <= set(CAM_METHODS)
    assert CAM_METHOD_NAMES[0] == "cam" and ROLLOUT in CAM_METHOD_NAMES
    assert set(GRAD_CAM_CLASSES) == {"gradcam", "gradcam++", "xgradcam", "scorecam", "ablationcam", "eigencam",
                                     "layercam", "hirescam"}
    # the command line offers CAM_METHOD_NAMES wherever a CAM is made: tests/test_cli_choices.py


@pytest.mark.parametrize("method", [m for m in CAM_METHOD_NAMES if m != ROLLOUT])
@settings(max_examples=3, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 2))
def test_every_method_gives_finite_maps_in_unit_range(resnet, method, seed, k):
    x = images(seed, size=48)
    classes = class_table(seed, 2, k)
    maps, chosen, logits = resnet.cams(x, classes=classes, method=method)
    assert maps.shape == (2, k, 48, 48) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert chosen.tolist() == classes.tolist() and logits.shape == (2, NUM_CLASSES)
    bigger, _, _ = resnet.cams(x, classes=classes, method=method, size=(40, 72))
    assert bigger.shape == (2, k, 40, 72) and torch.isfinite(bigger).all()


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "ablationcam"])
def test_a_method_leaves_the_model_as_it_found_it(method):
    torch.manual_seed(1)
    model = CAMNet("resnet18", num_classes=3, feature_stage=1).train()
    model.classifier.eval()  # a mixed mode must come back mixed
    grads = {name: torch.full_like(p, 0.5) for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = grads[name]
    modes = {name: m.training for name, m in model.named_modules()}
    with torch.no_grad():  # as an evaluation loop calls it
        model.cams(images(3, size=32), classes=[0, 2], method=method)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(p.grad is grads[name] for name, p in model.named_parameters())
    assert model.feature_map.stop_gradient is False and isinstance(model.feature_map, FeatureMap)


def test_rollout_is_refused_for_a_cnn(resnet):
    with pytest.raises(ValueError, match=r"rollout needs a ViT backbone.*'resnet18'"):
        resnet.cams(images(0), method=ROLLOUT)


def test_package_methods_need_the_feature_map_module():
    class NoHook(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 2, 1), nn.Linear(2, 2)

        def features(self, x):
            return self.conv(x)

        def classify(self, f):
            return self.fc(f.mean(dim=(2, 3)))

    with pytest.raises(ValueError, match="feature_map"):
        compute_cams(NoHook(), images(0, size=8), [0, 1], method="gradcam")


# --------------------------------------------------------------------------- (d) vanilla CAM unchanged


def vanilla_cams_as_before(model: CAMNet, x: torch.Tensor, classes: torch.Tensor, size) -> torch.Tensor:
    """The ``cam`` call path before the methods existed: the backbone's last feature map (no hook
    module), the classifier's weights one class at a time, bicubic resize and min-max."""
    with torch.no_grad():
        out = model.backbone(x)
        out = out[-1] if isinstance(out, list | tuple) else out
        if out.ndim == 3:
            out = model._token_map(out, tuple(x.shape[-2:]))
        weights = model.classifier.weight[classes]
        raw = torch.cat([torch.einsum("bkc,bchw->bkhw", weights[:, j:j + 1], out) for j in range(classes.shape[1])],
                        dim=1)
    return resize_cams(raw, size)


@settings(max_examples=15, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), channels_last=st.booleans())
def test_vanilla_cam_is_bit_identical_to_before(resnet, seed, k, channels_last):
    x = images(seed, size=56)
    classes = class_table(seed, 2, k)
    if channels_last:  # as the evaluation runs it
        x = x.contiguous(memory_format=torch.channels_last)
        resnet.to(memory_format=torch.channels_last)
    try:
        maps, _, _ = resnet.cams(x, classes=classes)
        assert torch.equal(maps, vanilla_cams_as_before(resnet, x, classes, (56, 56)))
        maps, _, _ = resnet.cams(x, classes=classes, method="cam", size=(30, 70))
        assert torch.equal(maps, vanilla_cams_as_before(resnet, x, classes, (30, 70)))
    finally:
        resnet.to(memory_format=torch.contiguous_format)


# --------------------------------------------------------------------------- (e) ViT token CAM and rollout


def rollout_by_definition(model: CAMNet, x: torch.Tensor) -> np.ndarray:
    """Rollout from the attention timm itself computes on its unfused path (the softmax output, read at
    the attention dropout's input): mean over heads, + identity, rows renormalised, multiplied
    from the first block to the last; the class token's row over the patch grid. float64."""
    seen = []
    blocks = [block.attn for block in model.backbone.blocks]
    hooks = [attn.attn_drop.register_forward_hook(lambda m, args, out: seen.append(args[0].double()))
             for attn in blocks]
    fused = [attn.fused_attn for attn in blocks]
    try:
        for attn in blocks:
            attn.fused_attn = False
        with torch.no_grad():
            model.backbone(x)
    finally:
        for attn, was in zip(blocks, fused):
            attn.fused_attn = was
        for hook in hooks:
            hook.remove()
    rollout = None
    for attention in seen:
        a = attention.mean(dim=1) + torch.eye(attention.shape[-1], dtype=torch.float64)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    prefix = model.backbone.num_prefix_tokens
    h, w = x.shape[-2] // 16, x.shape[-1] // 16
    return rollout[:, 0, prefix:].reshape(x.shape[0], h, w).numpy()


@pytest.mark.parametrize("name", VITS)
@pytest.mark.parametrize("size", [96, 160, 224])
@settings(max_examples=2, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1))
def test_vit_token_cam_and_rollout_at_any_size(vits, name, size, seed):
    model = vits[name]
    x = images(seed, size=size)
    grid = size // 16
    raw, classes, _ = compute_cams(model, x, [1, 3])
    assert raw.shape == (2, 1, grid, grid)
    with torch.no_grad():
        tokens = model.backbone(x)[:, model.backbone.num_prefix_tokens:]  # (B, h*w, D), row-major patches
    expected = torch.stack([tokens[b] @ model.classifier.weight[c] for b, c in enumerate([1, 3])])
    expected = expected.reshape(2, grid, grid)
    # 1e-5: a matmul and an einsum over the same 192 channels round differently in float32
    assert (raw[:, 0] - expected).abs().max() <= 1e-5
    maps, _, _ = model.cams(x, [1, 3])
    assert maps.shape == (2, 1, size, size) and maps.min() >= 0 and maps.max() <= 1

    rollout = model.attention_rollout(x)
    assert rollout.shape == (2, grid, grid) and (rollout >= 0).all()
    # 1e-5: float32 attention (fused kernel or ours) against the float64 product of timm's unfused softmax
    assert np.abs(rollout.double().numpy() - rollout_by_definition(model, x)).max() <= 1e-5
    maps, _, _ = model.cams(x, [[0, 2], [1, 3]], method=ROLLOUT)
    assert maps.shape == (2, 2, size, size) and torch.isfinite(maps).all()
    assert torch.equal(maps[:, 0], maps[:, 1])  # class-agnostic


def test_a_package_method_on_a_vit_token_map(vits):
    maps, _, _ = vits["deit_tiny_patch16_224"].cams(images(5, size=160), [0, 1], method="gradcam")
    assert maps.shape == (2, 1, 160, 160) and torch.isfinite(maps).all() and maps.max() <= 1


# --------------------------------------------------------------------------- (f) the command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cam-methods")
    code = main(["loc", "train", "--quick", "--epochs", "1", "--device", "cpu", "--workers", "0", "--no-eval",
                 "--output", str(root / "run"), "--records", str(root / "train.jsonl")])
    assert code == 0
    return root


def test_loc_evaluate_checkpoint_scores_another_cam_method(tiny_run, tmp_path, capsys):
    records = tmp_path / "records.jsonl"
    out = tmp_path / "gradcam.json"
    code = main(["loc", "evaluate", "--checkpoint", str(tiny_run / "run" / "last.pt"), "--cam-method", "gradcam",
                 "--splits", "test", "--device", "cpu", "--records", str(records), "--output", str(out)])
    assert code == 0
    result = json.loads(out.read_text())["test"]
    assert 0 <= result["MaxBoxAccV2"] <= 100 and 0 <= result["PxAP"] <= 100
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert rows and all(json.dumps(row).count('"gradcam"') for row in rows)
    assert "MaxBoxAccV2" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["loc", "evaluate", "--metadata", "m", "--scoremaps", "s", "--cam-method", "gradcam"], "--cam-method"),
    (["loc", "evaluate", "--checkpoint", "x.pt", "--cam-method", "gradcamm"], "gradcamm"),
    (["seg", "evaluate", "--predictions", "p", "--ground-truth", "g", "--cam-method", "eigencam"], "--cam-method"),
])
def test_cam_method_refusals_are_one_line(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusal of a choice
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- the other rooms


@settings(max_examples=3, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["gradcam", "eigencam"]))
def test_seg_pseudo_mask_scores_under_a_package_method(resnet, seed, method):
    from hideseek.segmentation.pseudo import class_scores

    x = images(seed, size=48)
    labels = torch.zeros(2, NUM_CLASSES)
    labels[0, 1] = labels[1, [0, 4]] = 1
    scores = class_scores(resnet, x, labels, sizes=[(40, 50), (48, 48)], method=method)
    assert [tuple(s.shape) for s in scores] == [(NUM_CLASSES, 40, 50), (NUM_CLASSES, 48, 48)]
    for s, present in zip(scores, labels > 0.5):
        assert torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1
        assert (s[~present] == 0).all()  # absent classes score nothing, whatever the method


def test_cam_figures_take_a_cam_method(tmp_path):
    from PIL import Image

    from hideseek.localization.cam_figure import cam_figures

    torch.manual_seed(0)
    net = CAMNet("resnet18", num_classes=1000, feature_stage=2)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photo)
    out = cam_figures([photo], tmp_path / "figs", topk=2, size=64, net=net, method="gradcam++")
    assert len(out) == 1 and len(out[0]["predictions"]) == 2
    with Image.open(out[0]["figure"]) as figure:
        assert figure.format == "PNG"
    with pytest.raises(ValueError, match=r"unknown CAM method 'gradcam\+'"):
        cam_figures([photo], tmp_path / "figs", net=net, method="gradcam+")


def test_cam_figures_with_several_methods_draw_a_grid_and_a_sheet(tmp_path, capsys):
    """Several methods: per photo a grid (a row per top-k class, the photo then a panel per method),
    the same classes for every method, each method's map its own ``model.cams`` map, and one sheet
    of every photo's top-1 row at the sheet height; the CLI prints each method's seconds."""
    from PIL import Image

    from hideseek.localization.cam_figure import SHEET_NAME, cam_figures, explain
    from hideseek.localization.cam_figure import load_photo as read

    torch.manual_seed(0)
    net = CAMNet("resnet18", num_classes=1000, feature_stage=2).eval()
    rng = np.random.default_rng(0)
    photos = []
    for name, shape in (("wide", (50, 70, 3)), ("tall", (80, 40, 3))):
        photos.append(tmp_path / f"{name}.png")
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(photos[-1])
    methods = ["cam", "gradcam", "eigencam"]
    out = cam_figures(photos, tmp_path / "figs", topk=2, size=64, net=net, method=methods, sheet_height=32)
    names = [f"class {i}" for i in range(1000)]
    for entry, path in zip(out, photos):
        assert list(entry["predictions"]) == methods and list(entry["seconds"]) == methods
        classes = {m: [p["index"] for p in entry["predictions"][m]] for m in methods}
        assert classes["gradcam"] == classes["cam"] == classes["eigencam"] and len(classes["cam"]) == 2
        photo = read(path)
        for m in methods:  # each panel's box is explain()'s box of that method
            again = explain(net, photo, names, topk=2, size=64, method=m)
            assert [p["box"] for p in again] == [p["box"] for p in entry["predictions"][m]]
        with Image.open(entry["figure"]) as figure:  # 2 rows of (title + photo), columns photo + 3 methods
            h, w = photo.shape[:2]
            assert figure.size == (4 * w + 3 * 6, 2 * (22 + h) + 16)
    with Image.open(tmp_path / "figs" / SHEET_NAME) as sheet:  # one top-1 row per photo at 32 px
        assert sheet.height == 2 * (22 + 32 + 6) + 16  # rows, a gap under each, one footnote
        assert sheet.width == max(4 * round(w * 32 / h) + 3 * 6 for h, w in ((50, 70), (80, 40)))
    with pytest.raises(ValueError, match="repeat"):
        cam_figures(photos, tmp_path / "figs", net=net, method=["cam", "cam"])
    # the CLI, on a local weights file of a small timm model: a grid per photo, the sheet, seconds
    import timm

    weights = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), weights)
    capsys.readouterr()
    assert main(["loc", "cam", *map(str, photos), "--backbone", "resnet10t", "--pretrained-file", str(weights),
                 "--cam-method", "cam", "gradcam", "--size", "64", "--output", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all(" s, gradcam " in line and line.endswith(" s)") for line in printed[:2])
    assert printed[2] == f"all photos, every method: {tmp_path / 'cli' / SHEET_NAME}"
    assert (tmp_path / "cli" / "wide.png").is_file() and (tmp_path / "cli" / SHEET_NAME).is_file()
    jpg = tmp_path / "sheets" / "all.jpg"
    assert main(["loc", "cam", str(photos[1]), "--backbone", "resnet10t", "--pretrained-file", str(weights),
                 "--cam-method", "cam", "layercam", "--size", "64", "--output", str(tmp_path / "cli2"),
                 "--sheet", str(jpg), "--sheet-height", "40"]) == 0
    with Image.open(jpg) as sheet:
        assert sheet.format == "JPEG" and sheet.height == 22 + 40 + 6 + 16
    capsys.readouterr()
    assert main(["loc", "cam", str(photos[1]), "--backbone", "resnet10t", "--pretrained-file", str(weights),
                 "--cam-method", "cam", "layercam", "--output", str(tmp_path / "cli3"),
                 "--sheet", str(tmp_path / "sheet.unknown")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sheet.unknown: expected an image file name" in err[0]


@pytest.mark.parametrize("room", ["loc", "seg"])
def test_rollout_on_a_cnn_is_refused_before_training(room, tmp_path, capsys):
    code = main([room, "train", "--quick", "--epochs", "1", "--device", "cpu", "--cam-method", "rollout",
                 "--output", str(tmp_path / "run"), "--records", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "rollout needs a ViT" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("name", VITS)
def test_rollout_backbones_pass_the_early_check(name):
    from hideseek.cam.model import check_rollout_backbone

    check_rollout_backbone(name)  # no error
    with pytest.raises(ValueError, match="rollout needs a ViT"):
        check_rollout_backbone("resnet18")
