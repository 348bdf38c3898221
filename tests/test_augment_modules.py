"""Registry, per-sample v2 transform and feature-map hiding inside timm models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hideseek.augment as A
from hideseek.augment import (
    FeatureHide,
    HideAndSeek,
    available,
    create,
    hide_patches,
    insert_feature_hide,
    register,
    using_sample_ids,
)

EXPECTED = {"none", "has", "has-16", "has-32", "has-44", "has-56", "has-mixed", "cutout",
            "random-erasing", "feature-has", "frame-has"}


# small tensors: one intra-op thread keeps timings stable on busy machines
pytestmark = pytest.mark.usefixtures("one_thread")


def _x(shape=(4, 3, 32, 32), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --- registry ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_name_creates_and_runs(name):
    aug = create(name)
    assert isinstance(aug, nn.Module) and aug.kind in ("image", "feature", "video")
    x = _x((2, 5, 6)) if aug.kind == "video" else _x()
    keep = x.clone()
    out = aug(x, sample_ids=[0, 1]) if aug.kind == "video" else aug(x, sample_ids=range(4))
    assert out.shape == x.shape and torch.equal(x, keep)
    aug.set_epoch(1)
    aug.eval()
    assert aug(x) is x


def test_available_lists_builtins():
    assert EXPECTED <= set(available())


def test_presets_match_parameters():
    x = _x()
    assert torch.equal(create("has-32")(x), hide_patches(x, grid_sizes=(32,)))
    assert torch.equal(create("has-mixed", seed=3)(x), hide_patches(x, seed=3))
    assert torch.equal(create("has", grid_sizes=(4, 8), p_hide=0.3)(x),
                       hide_patches(x, grid_sizes=(4, 8), p_hide=0.3))


def test_unknown_name_and_bad_params():
    with pytest.raises(ValueError) as err:
        create("hide-and-seek")
    assert all(n in str(err.value) for n in EXPECTED)
    with pytest.raises(ValueError, match="unknown parameter.*grid"):
        create("has-16", grid=3)
    with pytest.raises(ValueError, match="probability"):
        create("has", p_hide=2.0)
    with pytest.raises(ValueError, match="non-negative"):
        create("has", grid_sizes=(-1,))
    with pytest.raises(ValueError, match="size"):
        create("cutout", size=-3)


def test_register_decorator():
    @register("test-only-invert")
    class Invert(A.Augmentation):
        kind = "image"

        def hide(self, x, sample_ids):
            return -x

    x = _x()
    assert torch.equal(create("test-only-invert")(x), -x)
    assert "test-only-invert" in available()
    with pytest.raises(ValueError, match="already registered"):
        register("test-only-invert")(Invert)


# --- per-sample v2 transform --------------------------------------------------------------

def test_transform_matches_batch_function_per_sample():
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    imgs = _x((3, 3, 40, 24))
    t = HideAndSeek(grid_sizes=(8, 16), seed=7)
    t.set_epoch(2)
    batch = hide_patches(imgs, grid_sizes=(8, 16), seed=7, epoch=2, sample_ids=[10, 11, 12])
    for i in range(3):
        out = t({"image": imgs[i], "sample_id": 10 + i, "label": 1})
        assert list(out) == ["image", "sample_id", "label"] and out["sample_id"] == 10 + i
        assert torch.equal(out["image"], batch[i])
        t.sample_id = 10 + i
        out = v2.Compose([v2.Identity(), t])(tv_tensors.Image(imgs[i]))
        assert isinstance(out, tv_tensors.Image) and torch.equal(out, batch[i])
    t.sample_id = None
    t.set_epoch(2)
    # no id given: a call counter, restarted by set_epoch, numbers the samples
    assert torch.equal(t(imgs[0]), hide_patches(imgs[0], (8, 16), seed=7, epoch=2,
                                                sample_ids=[0]))
    assert torch.equal(t(imgs[1]), hide_patches(imgs[1], (8, 16), seed=7, epoch=2,
                                                sample_ids=[1]))
    t.eval()
    img = imgs[0]
    assert t(img) is img


def test_transform_rejects_pil_and_batches():
    from PIL import Image

    t = HideAndSeek()
    with pytest.raises(TypeError, match="ToImage"):
        t(Image.new("RGB", (8, 8)))
    with pytest.raises(ValueError, match="HideAndSeekBatch"):
        t(_x((2, 3, 8, 8)))


# --- feature maps ---------------------------------------------------------------------------

def test_feature_hide_in_resnet18_changes_outputs_in_train_mode_only():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    keys = list(model.state_dict())
    x = _x((2, 3, 32, 32))  # layer1 maps are 8 x 8

    def run(m, train):
        m.train(train)
        # BatchNorm in eval mode so that train/eval differ only by the hiding
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()
        with torch.no_grad():
            return m(x)

    plain_train, plain_eval = run(model, True), run(model, False)
    assert torch.allclose(plain_train, plain_eval)
    assert insert_feature_hide(model, "layer1", grid_sizes=(3,), seed=1) is model
    assert list(model.state_dict()) == keys  # pretrained weights still load
    assert torch.allclose(run(model, False), plain_eval)
    hidden = run(model, True)
    assert not torch.allclose(hidden, plain_train)
    # deterministic with explicit ids; different ids give different outputs
    with using_sample_ids(model, [5, 6]):
        a = run(model, True)
        b = run(model, True)
    assert torch.equal(a, b)
    model.feature_hide_layer1.set_sample_ids([7, 8])
    assert not torch.equal(run(model, True), a)
    model.feature_hide_layer1.set_sample_ids(None)
    A.set_epoch(model, 0)
    assert torch.equal(run(model, True), hidden)  # counter restarted at 0


def test_feature_hide_gradients_and_convnext_stage():
    timm = pytest.importorskip("timm")
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=2)
    insert_feature_hide(model, "stages.0", grid_sizes=(2,), seed=3)
    assert isinstance(model.feature_hide_stages_0, FeatureHide)
    x = _x((2, 3, 32, 32)).requires_grad_()
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_insert_feature_hide_unknown_name_lists_names():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with pytest.raises(ValueError) as err:
        insert_feature_hide(model, "layer7")
    assert "layer1" in str(err.value) and "layer4" in str(err.value)


def test_feature_hide_module():
    fh = FeatureHide(grid_sizes=(5,), seed=2)
    assert fh.kind == "feature"
    feats = _x((3, 8, 20, 20))
    assert torch.equal(fh(feats, sample_ids=[1, 2, 3]),
                       hide_patches(feats, (5,), seed=2, sample_ids=[1, 2, 3]))
    with pytest.raises(ValueError, match="feature maps"):
        fh(_x((3, 8)))
