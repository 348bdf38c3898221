"""Shared test set-up: a per-session cache for generated benchmarks, one thread for torch."""

import pytest
import torch

try:  # OpenCV before anything imports decord: decord's bundled libraries, loaded first,
    import cv2  # noqa: F401  # break OpenCV's PNG decoding ("libpng error: bad parameters to zlib")
except ImportError:  # the OpenCV oracle tests skip themselves
    pass


@pytest.fixture(scope="session", autouse=True)
def _hideseek_cache(tmp_path_factory):
    """Generated benchmarks go to a fresh folder per test session, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HIDESEEK_CACHE", str(tmp_path_factory.mktemp("hideseek-cache")))
    yield
    mp.undo()


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (stable timings on a shared 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
