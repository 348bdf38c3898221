"""Temporal CAM model: masked pooling, normalisation, padding invariance, loss."""

import math

import pytest
import torch

from hideseek.action.model import TemporalCAM, masked_pool, normalize_temporal_cams, video_loss


def _cas():
    # 1 video, 2 classes, T = 5 real snippets + 3 padded (garbage that must be ignored)
    cas = torch.tensor([[[1.0, 5.0, 2.0, 4.0, 3.0, 100.0, 100.0, 100.0],
                         [-1.0, -2.0, -3.0, -4.0, -5.0, 100.0, 100.0, 100.0]]])
    mask = torch.tensor([[True] * 5 + [False] * 3])
    return cas, mask


def test_pooling_uses_real_snippets_only():
    cas, mask = _cas()
    assert masked_pool(cas, mask, "mean").tolist() == [[3.0, -3.0]]
    assert masked_pool(cas, mask, "max").tolist() == [[5.0, -1.0]]
    # k = ceil(5 / 2) = 3: mean of the 3 largest real values
    assert masked_pool(cas, mask, "topk", topk_ratio=2).tolist() == [[4.0, -2.0]]
    # k = ceil(5 / 8) = 1 -> max
    assert masked_pool(cas, mask, "topk", topk_ratio=8).tolist() == [[5.0, -1.0]]


def test_topk_k_follows_each_videos_own_length():
    cas = torch.arange(10.0).repeat(2, 1, 1)  # (2, 1, 10): values 0..9
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :10] = True   # T = 10, r = 4 -> k = 3: mean(9, 8, 7) = 8
    mask[1, :4] = True    # T = 4 -> k = 1: max of 0..3 = 3
    out = masked_pool(cas, mask, "topk", topk_ratio=4)
    assert out[:, 0].tolist() == [8.0, 3.0]
    model = TemporalCAM(3, 2, topk_ratio=4)
    assert (model.topk(10), model.topk(4), model.topk(1)) == (3, 1, 1)


def test_normalize_temporal_cams_is_minmax_over_real_snippets():
    cas, mask = _cas()
    out = normalize_temporal_cams(cas, mask)
    assert torch.allclose(out[0, 0, :5], torch.tensor([0.0, 1.0, 0.25, 0.75, 0.5]))
    assert torch.allclose(out[0, 1, :5], torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert out[0, :, 5:].abs().sum() == 0
    const = normalize_temporal_cams(torch.full((1, 1, 4), 2.0))
    assert const.abs().sum() == 0  # a constant sequence becomes zeros


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("pool", ["mean", "max", "topk"])
def test_a_video_scores_the_same_alone_and_padded_in_a_batch(kernel_size, pool):
    torch.manual_seed(0)
    model = TemporalCAM(6, 3, hidden=8, kernel_size=kernel_size, pool=pool, topk_ratio=3).eval()
    short, long_ = torch.randn(1, 7, 6), torch.randn(1, 12, 6)
    batch = torch.zeros(2, 12, 6)
    batch[0, :7], batch[1] = short[0], long_[0]
    batch[0, 7:] = 55.0  # garbage in the padding must not leak through a kernel or the pool
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, :7], mask[1] = True, True
    logits, cas = model(batch, mask)
    alone_logits, alone_cas = model(short)
    assert torch.allclose(logits[0], alone_logits[0], atol=1e-5)
    assert torch.allclose(cas[0, :, :7], alone_cas[0], atol=1e-5)
    assert cas[0, :, 7:].abs().sum() == 0
    assert torch.allclose(logits[1], model(long_)[0][0], atol=1e-5)


def test_loss_is_multilabel_bce_and_trains(one_thread):
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 2.0]])
    labels = torch.tensor([[1.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert video_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    model = TemporalCAM(4, 2, hidden=16, dropout=0.0)
    x = torch.randn(8, 10, 4)
    y = torch.zeros(8, 2)
    y[:4, 0] = 1
    x[:4, 3:5, 0] += 3.0  # class 0 videos: a short burst in feature 0
    y[4:, 1] = 1
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        loss = video_loss(model(x)[0], y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_bad_inputs_are_named():
    model = TemporalCAM(4, 2)
    with pytest.raises(ValueError, match=r"features must be \(B, T, 4\)"):
        model(torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.zeros(1, 5, 4), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one real snippet"):
        model(torch.zeros(1, 5, 4), torch.zeros(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="odd"):
        TemporalCAM(4, 2, kernel_size=2)
    with pytest.raises(ValueError, match="unknown pool"):
        TemporalCAM(4, 2, pool="avg")
