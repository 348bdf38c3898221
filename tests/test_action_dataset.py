"""The in-memory snippet-feature dataset every action data source is turned into."""

import numpy as np
import pytest
import torch

from hideseek.action.dataset import FeatureDataset, Segment, VideoFeatures


def _video(name, t, labels=(), segments=(), dim=4):
    return VideoFeatures(video=name, features=np.arange(t * dim, dtype=np.float64).reshape(t, dim),
                         stride_s=0.64, labels=labels, segments=segments, duration_s=t * 0.64)


def test_items_collate_and_ground_truth():
    a = _video("a", 3, segments=(Segment(0.0, 1.2, "Jump"),))
    b = _video("b", 5, labels=("Run",), segments=(Segment(0.5, 2.0, "Run"), Segment(2.5, 3.0, "Jump")))
    ds = FeatureDataset([a, b])
    assert ds.classes == ["Jump", "Run"] and ds.feature_dim == 4
    assert a.features.dtype == np.float32
    item = ds[1]
    assert item["labels"].tolist() == [1.0, 1.0] and item["features"].shape == (5, 4)
    batch = FeatureDataset.collate([ds[0], ds[1]])
    assert batch["features"].shape == (2, 5, 4)
    assert batch["mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert torch.equal(batch["features"][0, 3:], torch.zeros(2, 4))
    assert batch["labels"].tolist() == [[1.0, 0.0], [1.0, 1.0]]
    gt = ds.ground_truth()["database"]
    assert gt["b"]["annotations"][1] == {"segment": [2.5, 3.0], "label": "Jump"}
    assert gt["a"]["subset"] == "test" and gt["a"]["duration"] == pytest.approx(1.92)


@pytest.mark.parametrize("start,end", [(2.0, 1.0), (-1.0, 1.0), (1.0, 1.0), (0.0, float("nan"))])
def test_bad_segments_raise(start, end):
    with pytest.raises(ValueError, match="segment"):
        Segment(start, end, "Jump")


def test_bad_inputs_name_the_video():
    with pytest.raises(ValueError, match="'v'.*\\(T, D\\)"):
        VideoFeatures(video="v", features=np.zeros((0, 4)), stride_s=1.0)
    with pytest.raises(ValueError, match="different feature sizes"):
        FeatureDataset([_video("a", 2), _video("b", 2, dim=3)])
    with pytest.raises(ValueError, match="'a'.*not in the class list"):
        FeatureDataset([_video("a", 2, labels=("Jump",))], classes=["Run"])
