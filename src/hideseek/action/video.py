"""Frame-accurate video reading for temporal action localization.

:class:`VideoReader` wraps ``decord.VideoReader`` (CPU decoding) and returns frames as
``uint8`` NumPy arrays of shape ``(N, H, W, 3)`` in RGB order. Frames are addressed by
index (``read``), by time in seconds (``read_at``, nearest frame), or grouped into
consecutive fixed-length snippets (``snippet_indices``), optionally resampled to a
target frame rate first.

Resizing (``size=(h, w)``) is done with torch after decoding (bilinear, antialiased,
rounded back to ``uint8``), not by decord's scaler: the result does not depend on the
FFmpeg build, and decord 0.6.0 fails on some output widths when it resizes itself.

:func:`write_test_video` writes frames losslessly with PyAV (H.264 in RGB,
``libx264rgb`` with ``crf=0`` in an ``.mp4``), so tests and synthetic benchmarks can
compare decoded frames bit for bit with the frames that were written.

Known limitation of decord 0.6.0: a few frame widths (e.g. 16 or 48 pixels) cannot be
decoded at all ("The size must exactly match"); :meth:`VideoReader.read` reports this
as a ``ValueError`` naming the file.

``decord`` is imported when a reader is opened and ``av`` when a video is written, so
importing this module needs neither.

Note: importing decord before OpenCV (``cv2``) in one process breaks OpenCV's PNG
decoding (decord's bundled libraries shadow OpenCV's: "libpng error: bad parameters to
zlib"). Import ``cv2`` first when a program needs both; Pillow is not affected.
"""

from __future__ import annotations

import fractions
import math
import numbers
import os
from collections.abc import Sequence

import numpy as np

__all__ = ["VideoReader", "write_test_video"]

PathLike = str | os.PathLike
IndicesLike = Sequence[int] | np.ndarray
TimesLike = float | Sequence[float] | np.ndarray


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be None or (height, width), got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"size must be two positive integers (height, width), got {size!r}")
    return int(h), int(w)


class VideoReader:
    """Random-access RGB video reader backed by decord.

    Args:
        path: video file.
        size: optional ``(height, width)``; every returned frame is resized to it.

    Attributes:
        path: the file, as a string.
        fps: average frame rate reported by the container (frames per second).
        num_frames: number of decodable frames (``len(reader)`` too).
        duration: ``num_frames / fps`` seconds, i.e. up to the end of the last frame.
        height, width: size of returned frames (after ``size`` if given).

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a regular file.
        ValueError: the file cannot be opened as a video, has no video stream, or has no
            frames. Every message names the file.
    """

    def __init__(self, path: PathLike, size: tuple[int, int] | None = None):
        self.path = os.fspath(path)
        self.size = _check_size(size)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"video file not found: {self.path!r}")
        import decord

        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0))
        except (decord.DECORDError, RuntimeError) as e:
            msg = str(e)
            if "cannot find video stream" in msg:
                raise ValueError(f"video file {self.path!r} has no video stream "
                                 "(zero-frame or non-video file)") from None
            raise ValueError(f"cannot open video file {self.path!r}: not a readable video "
                             f"({type(e).__name__}: {msg.strip().splitlines()[-1][:200]})"
                             ) from None
        self.num_frames = len(self._vr)
        if self.num_frames == 0:
            raise ValueError(f"video file {self.path!r} has zero frames")
        self.fps = float(self._vr.get_avg_fps())
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"video file {self.path!r} reports an invalid frame rate {self.fps}")
        self.duration = self.num_frames / self.fps
        if self.size is None:
            self.height, self.width = self.read([0]).shape[1:3]
        else:
            self.height, self.width = self.size
        self._ts: np.ndarray | None = None

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"VideoReader({self.path!r}, num_frames={self.num_frames}, fps={self.fps:.4g}, "
                f"size=({self.height}, {self.width}))")

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder; the reader cannot be used afterwards."""
        self._vr = None

    def _reader(self):
        if self._vr is None:
            raise ValueError(f"VideoReader for {self.path!r} is closed")
        return self._vr

    # ------------------------------------------------------------------ time axis
    def timestamps(self) -> np.ndarray:
        """Presentation time (seconds) of the start of each frame, ``float64 (num_frames,)``.

        Taken from the stream's timestamps (so variable frame rate is respected); for a
        constant-rate video frame ``i`` starts at ``i / fps``.
        """
        if self._ts is None:
            ts = self._reader().get_frame_timestamp(np.arange(self.num_frames))
            self._ts = np.asarray(ts, dtype=np.float64)[:, 0].copy()
        return self._ts.copy()

    def index_at(self, times_s: TimesLike) -> np.ndarray:
        """Index of the frame whose start time is nearest to each time (ties: earlier frame).

        Times must lie in ``[0, duration]`` (a small tolerance is allowed); raises
        ``ValueError`` otherwise.
        """
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        if t.ndim != 1:
            raise ValueError(f"times must be a scalar or 1-D, got shape {t.shape}")
        eps = 1e-6
        bad = ~np.isfinite(t) | (t < -eps) | (t > self.duration + eps)
        if bad.any():
            raise ValueError(f"times {t[bad][:5].tolist()} outside [0, {self.duration:.6g}] s "
                             f"of video {self.path!r}")
        ts = self._ts if self._ts is not None else self.timestamps()
        right = np.clip(np.searchsorted(ts, t, side="left"), 0, len(ts) - 1)
        left = np.clip(right - 1, 0, len(ts) - 1)
        # 1e-7 s slack so midpoints that float round-off nudges still go to the earlier frame
        pick_left = np.abs(t - ts[left]) <= np.abs(ts[right] - t) + 1e-7
        return np.where(pick_left, left, right).astype(np.int64)

    # ------------------------------------------------------------------ reading
    def read(self, indices: IndicesLike) -> np.ndarray:
        """Decode the frames at ``indices`` (any order, repeats allowed) in one batch.

        Returns ``uint8 (N, H, W, 3)`` RGB, resized to ``size`` if one was given.
        Raises ``IndexError`` for indices outside ``[0, num_frames)``.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1:
            idx = idx.reshape(-1) if idx.ndim == 0 else idx
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size == 0:
            return np.zeros((0, self.height, self.width, 3), dtype=np.uint8)
        bad = (idx < 0) | (idx >= self.num_frames)
        if bad.any():
            raise IndexError(f"frame indices {idx[bad][:5].tolist()} out of range "
                             f"[0, {self.num_frames}) for video {self.path!r}")
        vr = self._reader()
        from decord import DECORDError

        try:
            frames = vr.get_batch(idx.tolist()).asnumpy()
        except (DECORDError, RuntimeError) as e:
            raise ValueError(f"failed to decode frames of video {self.path!r} "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}); "
                             "decord 0.6.0 cannot decode some frame widths") from None
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if self.size is not None and frames.shape[1:3] != self.size:
            frames = _resize(frames, self.size)
        return frames

    def read_at(self, times_s: TimesLike) -> np.ndarray:
        """Decode the frames nearest to ``times_s`` (seconds); see :meth:`index_at`."""
        return self.read(self.index_at(times_s))

    def snippet_indices(self, snippet: int = 16, fps: float | None = None) -> np.ndarray:
        """Frame indices of consecutive, non-overlapping snippets, ``int64 (S, snippet)``.

        Without ``fps`` the native frames ``0, 1, 2, ...`` are cut into groups of
        ``snippet``. With ``fps`` the video is first resampled to that rate: sample ``k``
        at time ``k / fps`` (for every ``k / fps < duration``) takes the nearest frame
        (:meth:`index_at`), so frames repeat when upsampling and are skipped when
        downsampling. A trailing partial snippet is dropped; a video shorter than one
        snippet gives shape ``(0, snippet)``.
        """
        if isinstance(snippet, bool) or not isinstance(snippet, numbers.Integral) or snippet < 1:
            raise ValueError(f"snippet must be a positive integer, got {snippet!r}")
        if fps is None:
            samples = np.arange(self.num_frames, dtype=np.int64)
        else:
            fps = float(fps)
            if not math.isfinite(fps) or fps <= 0:
                raise ValueError(f"fps must be a positive number, got {fps!r}")
            # number of k >= 0 with k / fps < duration (guard against float round-off)
            n = math.ceil(self.duration * fps - 1e-9)
            samples = self.index_at(np.arange(n, dtype=np.float64) / fps)
        s = len(samples) // snippet
        return samples[: s * snippet].reshape(s, snippet)


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, antialiased resize of ``uint8 (N, H, W, 3)`` to ``size``, back to uint8."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).to(torch.float32)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    y = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(y.numpy())


def write_test_video(path: PathLike, frames: np.ndarray, fps: float) -> str:
    """Write ``uint8 (N, H, W, 3)`` RGB frames losslessly to ``path`` with PyAV.

    Uses H.264 in RGB (``libx264rgb``, ``crf=0``, no colour conversion), so decord
    returns exactly the written pixels. The container follows the suffix; ``.mp4`` is
    the tested one. ``fps`` may be fractional (e.g. ``30000 / 1001``). ``N = 0`` writes a
    header-only file (no video stream survives in ``.mp4``), useful to test error paths.
    Returns the path as a string.
    """
    import av

    path = os.fspath(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError("frames must be uint8 of shape (N, H, W, 3), "
                         f"got {frames.dtype} {frames.shape}")
    _, h, w, _ = frames.shape
    if h < 1 or w < 1:
        raise ValueError(f"frames must have positive height and width, got {frames.shape}")
    fps_f = float(fps)
    if not math.isfinite(fps_f) or fps_f <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    rate = fractions.Fraction(fps_f).limit_denominator(100_000)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264rgb", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        container.start_encoding()
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
