"""Video reader: frames decode exactly as written, time axis, snippets, resize, errors.

Videos are written into ``tmp_path`` with PyAV in lossless H.264-RGB (``libx264rgb``,
``crf=0``), so decoded frames are compared for exact equality.
"""

import numpy as np
import pytest

pytest.importorskip("decord")
pytest.importorskip("av")

from hideseek.action.video import VideoReader, write_test_video

N, H, W, FPS = 20, 32, 64, 10


def _frames(n=N, h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = _frames()
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_test_video(path, frames, FPS)
    return str(path), frames


def test_metadata(video):
    path, _ = video
    vr = VideoReader(path)
    assert vr.num_frames == len(vr) == N
    assert vr.fps == pytest.approx(FPS)
    assert vr.duration == pytest.approx(N / FPS)
    assert (vr.height, vr.width) == (H, W)
    np.testing.assert_allclose(vr.timestamps(), np.arange(N) / FPS, atol=1e-6)


def test_read_all_and_at_indices_exact(video):
    path, frames = video
    vr = VideoReader(path)
    out = vr.read(np.arange(N))
    assert out.dtype == np.uint8 and out.shape == (N, H, W, 3)
    np.testing.assert_array_equal(out, frames)
    idx = [7, 0, 19, 7, 3]  # unordered, with a repeat
    np.testing.assert_array_equal(vr.read(idx), frames[idx])
    assert vr.read([]).shape == (0, H, W, 3)


def test_read_at_timestamps_nearest_frame(video):
    path, frames = video
    vr = VideoReader(path)
    times = [0.0, 0.5, 0.04, 0.06, 1.23, 1.96, 2.0]
    expect = [0, 5, 0, 1, 12, 19, 19]  # nearest frame start; past the last start -> last
    np.testing.assert_array_equal(vr.index_at(times), expect)
    np.testing.assert_array_equal(vr.read_at(times), frames[expect])
    np.testing.assert_array_equal(vr.read_at(0.7), frames[[7]])
    with pytest.raises(ValueError, match="outside"):
        vr.read_at([-0.5])
    with pytest.raises(ValueError, match="outside"):
        vr.read_at([2.5])


def test_fractional_fps_and_odd_size(tmp_path):
    frames = _frames(n=7, h=30, w=50, seed=1)
    path = write_test_video(tmp_path / "ntsc.mp4", frames, 30000 / 1001)
    vr = VideoReader(path)
    assert vr.fps == pytest.approx(30000 / 1001, rel=1e-6)
    assert vr.num_frames == 7
    assert vr.duration == pytest.approx(7 * 1001 / 30000, rel=1e-6)
    np.testing.assert_array_equal(vr.read(range(7)), frames)
    np.testing.assert_array_equal(vr.read_at(vr.timestamps()), frames)


def test_resize_shape(video):
    path, _ = video
    vr = VideoReader(path, size=(16, 24))
    assert (vr.height, vr.width) == (16, 24)
    out = vr.read([0, 5])
    assert out.shape == (2, 16, 24, 3) and out.dtype == np.uint8
    # a constant frame stays constant after resizing
    const = np.full((2, H, W, 3), (10, 200, 90), dtype=np.uint8)
    p2 = write_test_video(path.replace("clip.mp4", "const.mp4"), const, FPS)
    np.testing.assert_array_equal(VideoReader(p2, size=(8, 8)).read([1])[0],
                                  np.full((8, 8, 3), (10, 200, 90), dtype=np.uint8))
    with pytest.raises(ValueError):
        VideoReader(path, size=(0, 4))


def test_snippet_indices(video):
    path, _ = video
    vr = VideoReader(path)
    s = vr.snippet_indices(snippet=4)
    np.testing.assert_array_equal(s, np.arange(20).reshape(5, 4))
    s = vr.snippet_indices(snippet=8)  # trailing 4 frames dropped
    np.testing.assert_array_equal(s, np.arange(16).reshape(2, 8))
    # downsample 10 -> 5 fps: every other frame, 10 samples -> 2 snippets of 4
    np.testing.assert_array_equal(vr.snippet_indices(snippet=4, fps=5),
                                  [[0, 2, 4, 6], [8, 10, 12, 14]])
    # upsample 10 -> 20 fps: 40 samples, each frame twice (ties go to the earlier frame)
    up = vr.snippet_indices(snippet=8, fps=20)
    assert up.shape == (5, 8)
    np.testing.assert_array_equal(up.reshape(-1), np.repeat(np.arange(20), 2))
    assert vr.snippet_indices(snippet=64).shape == (0, 64)
    with pytest.raises(ValueError):
        vr.snippet_indices(snippet=0)


def test_read_out_of_range(video):
    vr = VideoReader(video[0])
    with pytest.raises(IndexError, match="clip.mp4"):
        vr.read([0, N])
    with pytest.raises(IndexError):
        vr.read([-1])


def test_missing_file(tmp_path):
    p = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoReader(p)


def test_corrupt_file(tmp_path):
    p = tmp_path / "garbage.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="garbage.mp4"):
        VideoReader(p)
    e = tmp_path / "empty.mp4"
    e.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mp4"):
        VideoReader(e)


def test_zero_frame_file(tmp_path):
    p = write_test_video(tmp_path / "zero.mp4", np.zeros((0, H, W, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="zero.mp4"):
        VideoReader(p)


def test_write_test_video_validates(tmp_path):
    with pytest.raises(ValueError):
        write_test_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), FPS)
    with pytest.raises(ValueError):
        write_test_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), FPS)
    with pytest.raises(ValueError):
        write_test_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), 0)
