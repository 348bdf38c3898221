"""Synthetic video benchmark: determinism, exact GT, mp4 round trip through decord, cache."""

import json
import os

import numpy as np
import pytest

from hideseek.action.synthetic import (
    FEATURE_DIM,
    PARTIAL_FILE,
    SyntheticVideo,
    SyntheticVideoConfig,
    frame_descriptors,
    render_video,
    write_benchmark,
)
from hideseek.action.video import VideoReader

TINY = SyntheticVideoConfig(train=3, test=2, min_duration_s=15.0, max_duration_s=16.0, max_instances=2)


def _saturated(frames):
    f = frames.astype(np.float32) / 255
    mx, mn = f.max(-1), f.min(-1)
    return ((mx - mn) / np.maximum(mx, 1e-6) > 0.5) & (mx > 0.3)


def test_videos_are_pure_functions_of_seed_split_index():
    a, b = render_video(TINY, "train", 1), render_video(TINY, "train", 1)
    assert np.array_equal(a["frames"], b["frames"]) and a["instances"] == b["instances"]
    assert not np.array_equal(render_video(TINY, "train", 2)["frames"][:50], a["frames"][:50])
    other_seed = SyntheticVideoConfig(**{**TINY.to_dict(), "seed": 1})
    assert not np.array_equal(render_video(other_seed, "train", 1)["frames"][:50], a["frames"][:50])


@pytest.mark.parametrize("index", range(4))
def test_telling_moments_lie_inside_actions_and_are_the_only_saturated_frames(index):
    out = render_video(TINY, "test" if index % 2 else "train", index // 2)
    frames, n = out["frames"], len(out["frames"])
    assert TINY.min_duration_s * TINY.fps - 1 <= n <= TINY.max_duration_s * TINY.fps + 1
    in_burst = np.zeros(n, bool)
    previous_end = 0
    for (i0, i1), (b0, b1) in zip(out["instances"], out["bursts"]):
        assert previous_end < i0 < i1 <= n and i0 <= b0 < b1 <= i1
        assert TINY.min_action_s * TINY.fps - 1 <= i1 - i0 <= TINY.max_action_s * TINY.fps + 1
        assert (b1 - b0) < (i1 - i0)  # the telling moment is shorter than the action
        in_burst[b0:b1] = True
        previous_end = i1
    has_saturated = _saturated(frames).any(axis=(1, 2))
    assert np.array_equal(has_saturated, in_burst)


def test_descriptor_hand_cases():
    red = np.zeros((2, 32, 32, 3), np.uint8)
    red[..., 0] = 230
    d = frame_descriptors(red)
    assert d.shape == (2, FEATURE_DIM)
    assert d[0, 0] == pytest.approx(25.0) and d[0, 1:12].sum() == 0  # hue bin 0, whole frame
    assert d[1, 20] == 0.0  # no motion between identical frames
    y = np.arange(32)[:, None]
    stripes = np.repeat(((np.sin(y / 2.0) * 0.4 + 0.5) * 255).astype(np.uint8)[None, :, :, None]
                        .repeat(32, axis=2), 3, axis=3)
    orient = frame_descriptors(stripes)[0, 12:20]
    # horizontal stripes: the gradient points along y, orientation pi/2 -> bin 4 of 8
    assert orient.argmax() == 4 and orient[4] > 0.95 * orient.sum()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("synvideo") / "bench"
    return write_benchmark(root, TINY, progress=False)


def test_written_videos_decode_to_the_rendered_frames_at_indices_and_times(bench):
    gt = json.loads((bench / "gt.json").read_text())["database"]
    assert sorted(gt) == ["test_00000", "test_00001", "train_00000", "train_00001", "train_00002"]
    out = render_video(TINY, "test", 1)
    with VideoReader(bench / "videos" / "test_00001.mp4") as reader:
        assert reader.num_frames == len(out["frames"]) and reader.fps == pytest.approx(TINY.fps)
        picks = np.array([0, 17, 5, len(out["frames"]) - 1, 17])
        assert np.array_equal(reader.read(picks), out["frames"][picks])
        times = np.array([0.0, 2.125, 3.0, 7.5])  # 2.125 s = frame 17; the others on frame starts
        assert np.array_equal(reader.read_at(times), out["frames"][np.round(times * TINY.fps).astype(int)])
        assert np.allclose(reader.timestamps(), np.arange(reader.num_frames) / TINY.fps)
        entry = gt["test_00001"]
        assert entry["duration"] == pytest.approx(reader.num_frames / TINY.fps)
    # GT segments are the instance frame ranges in seconds, exactly
    assert [a["segment"] for a in entry["annotations"]] == [[i0 / 8.0, i1 / 8.0] for i0, i1 in out["instances"]]
    assert [a["segment"] for a in entry["telling"]] == [[b0 / 8.0, b1 / 8.0] for b0, b1 in out["bursts"]]
    assert {a["label"] for a in entry["annotations"]} == {f"action{out['label']}"}


def test_features_are_the_descriptor_of_the_decoded_frames_per_snippet(bench):
    out = render_video(TINY, "train", 2)
    feats = np.load(bench / "features" / "train_00002.npy")
    snippets = len(out["frames"]) // TINY.snippet
    expected = frame_descriptors(out["frames"][: snippets * TINY.snippet])
    expected = expected.reshape(snippets, TINY.snippet, -1).mean(axis=1)
    assert feats.shape == (snippets, FEATURE_DIM) and feats.dtype == np.float32
    assert np.allclose(feats, expected, atol=1e-6)


def test_benchmark_is_cached_regenerated_when_partial_and_refuses_foreign_folders(bench, tmp_path):
    stamp = os.stat(bench / "gt.json").st_mtime_ns
    write_benchmark(bench, TINY, progress=False)
    assert os.stat(bench / "gt.json").st_mtime_ns == stamp  # complete: nothing rewritten
    (bench / PARTIAL_FILE).touch()
    (bench / "features" / "train_00000.npy").unlink()
    write_benchmark(bench, TINY, progress=False)
    assert (bench / "features" / "train_00000.npy").is_file() and not (bench / PARTIAL_FILE).exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing"):
        write_benchmark(foreign, TINY, progress=False)


def test_opened_as_video_features(bench):
    opened = SyntheticVideo(TINY, root=bench, progress=False)
    train = opened.videos("train")
    assert [v.video for v in train] == ["train_00000", "train_00001", "train_00002"]
    v = train[0]
    assert v.stride_s == 0.5 and v.features.shape[1] == FEATURE_DIM and len(v.labels) == 1
    assert all(s.end <= v.duration_s for s in v.segments)
    with pytest.raises(ValueError, match="unknown split"):
        opened.videos("val")


def test_config_checks():
    with pytest.raises(ValueError, match="multiple of 32"):
        SyntheticVideoConfig(size=48)
    with pytest.raises(ValueError, match="min_duration_s"):
        SyntheticVideoConfig(min_duration_s=5.0, max_duration_s=6.0)
    with pytest.raises(ValueError, match="unknown synthetic video keys"):
        SyntheticVideoConfig.from_dict({"frames": 3})
