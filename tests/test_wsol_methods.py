"""hideseek.localization.wsol_methods: the benchmark's methods' batch changes and losses, hand-checked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hideseek.augment import hide_patches
from hideseek.cam import CAMNet
from hideseek.localization.wsol_methods import (
    WSOL_METHODS,
    cutmix_batch,
    get_wsol_method,
    spg_loss,
    spg_mask,
    wsol_step,
)


def test_parameter_names_and_defaults_are_the_benchmarks():
    params = {name: dict(m.params) for name, m in WSOL_METHODS.items()}
    assert params["has"] == {"has_grid_size": 4, "has_drop_rate": 0.5}
    assert params["acol"] == {"acol_threshold": 0.7}
    assert params["adl"] == {"adl_drop_rate": 0.75, "adl_threshold": 0.9}
    assert params["cutmix"] == {"cutmix_beta": 1.0, "cutmix_prob": 1.0}
    assert params["spg"] == {"spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5,
                             "spg_threshold_2l": 0.05, "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1}
    assert get_wsol_method("base").name == "cam"  # the benchmark's own name for CAM
    with pytest.raises(ValueError, match=r"unknown wsol method 'acoll' \(did you mean acol\?\)"):
        get_wsol_method("acoll")
    with pytest.raises(ValueError, match=r"unknown parameter 'acol_thresh'; valid: acol_threshold"):
        WSOL_METHODS["acol"].resolve({"acol_thresh": 0.5})


def test_spg_mask_foreground_background_ignore_and_the_small_foreground_fallback():
    attention = torch.zeros(2, 1, 8, 8)
    attention[0, 0, :6, :6] = 0.9  # 36 pixels above 0.7: foreground
    attention[0, 0, 6:, 6:] = 0.3  # between low and high: ignored
    attention[1, 0, 0, :4] = torch.tensor([1.0, 0.8, 0.6, 0.5])  # only 1 pixel > 0.7 (< 30): fallback 0.7 x max
    mask = spg_mask(attention, high=0.7, low=0.05)
    assert mask[0, 0, :6, :6].eq(1).all() and mask[0, 0, 6:, 6:].eq(255).all()
    assert mask[0, 0, 0, 7] == 0  # 0 < low: background
    assert mask[1, 0, 0, :4].tolist() == [1.0, 1.0, 255.0, 255.0]  # > 0.7 * 1.0 after the fallback
    assert mask[1, 0, 5, 5] == 0


def test_spg_loss_is_ce_plus_three_guided_bce_terms():
    torch.manual_seed(0)
    b, size = 2, (16, 16)
    out = {"logits": torch.randn(b, 3), "attention": torch.rand(b, 1, *size), "fused_attention": torch.rand(b, 1, *size),
           "logits_b1": torch.randn(b, 1, 4, 4), "logits_b2": torch.randn(b, 1, 4, 4), "logits_c": torch.randn(b, 1, 4, 4)}
    labels = torch.tensor([0, 2])
    params = dict(WSOL_METHODS["spg"].params)

    def term(logits, guide, high, low):
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        mask = spg_mask(guide, high, low)
        keep = mask != 255
        return F.binary_cross_entropy_with_logits(up[keep], mask[keep])

    b2 = torch.sigmoid(F.interpolate(out["logits_b2"], size=size, mode="bilinear", align_corners=False))
    expected = (F.cross_entropy(out["logits"], labels) + term(out["logits_b2"], out["attention"], 0.7, 0.01)
                + term(out["logits_b1"], b2, 0.5, 0.05) + term(out["logits_c"], out["fused_attention"], 0.7, 0.1))
    torch.testing.assert_close(spg_loss(out, labels, params), expected)


def test_cutmix_pastes_one_box_and_weights_by_its_area():
    images = torch.arange(4 * 1 * 10 * 10, dtype=torch.float32).reshape(4, 1, 10, 10)
    labels = torch.tensor([0, 1, 2, 3])
    ids = torch.tensor([7, 3, 9, 1])
    a = cutmix_batch(images, labels, beta=1.0, prob=1.0, seed=0, epoch=2, ids=ids)
    b = cutmix_batch(images, labels, beta=1.0, prob=1.0, seed=0, epoch=2, ids=ids)
    mixed, own, partner, lam = a
    assert torch.equal(mixed, b[0]) and lam == b[3]  # a pure function of (seed, epoch, ids)
    changed = (mixed != images).any(1)  # (B, H, W)
    assert torch.equal(own, labels) and sorted(partner.tolist()) == labels.tolist()  # a permutation
    pasted = changed.any(0)
    if pasted.any():  # one axis-aligned box, the same for every image
        rows, cols = pasted.any(1).nonzero(), pasted.any(0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert lam == pytest.approx(1 - float(area) / 100)
    assert cutmix_batch(images, labels, beta=1.0, prob=0.0, seed=0, epoch=2, ids=ids) is None
    assert cutmix_batch(images, labels, beta=0.0, prob=1.0, seed=0, epoch=2, ids=ids) is None


@pytest.mark.parametrize("name", ["cam", "has", "cutmix"])
def test_steps_on_any_timm_backbone(name):
    torch.manual_seed(0)
    model = CAMNet("resnet18", num_classes=3, feature_stage=2)
    method = WSOL_METHODS[name]
    step = wsol_step(method, method.resolve({}), seed=1)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0]), "index": torch.arange(4)}
    loss = step(model, batch, 0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    if name == "cam":
        assert torch.equal(loss.detach(), F.cross_entropy(model(batch["image"]), batch["label"]).detach())


def test_has_variant_is_one_fixed_grid_of_hide_patches():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x.clone()
            return torch.zeros(x.shape[0], 2, requires_grad=True)

    method = WSOL_METHODS["has"]
    step = wsol_step(method, method.resolve({"has_grid_size": 8, "has_drop_rate": 0.5}), seed=5)
    images = torch.randn(2, 3, 32, 32)
    step(Probe(), {"image": images, "label": torch.tensor([0, 1]), "index": torch.tensor([4, 9])}, 3)
    expected = hide_patches(images, grid_sizes=(8,), p_hide=0.5, seed=5, epoch=3, sample_ids=torch.tensor([4, 9]))
    assert torch.equal(seen["x"], expected)


def test_acol_loss_sums_both_classifiers():
    class TwoHeads(torch.nn.Module):
        returns_dict = True

        def forward(self, x, labels=None):
            return {"logits": x[:, :3], "logit_b": x[:, 3:]}

    method = WSOL_METHODS["acol"]
    step = wsol_step(method, method.resolve({}), seed=0)
    x = torch.randn(2, 6)
    labels = torch.tensor([1, 2])
    loss = step(TwoHeads(), {"image": x, "label": labels, "index": torch.arange(2)}, 0)
    torch.testing.assert_close(loss, F.cross_entropy(x[:, :3], labels) + F.cross_entropy(x[:, 3:], labels))
