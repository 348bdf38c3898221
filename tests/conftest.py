"""Shared test set-up: a per-session cache for generated benchmarks, one thread for torch, and a
guard that keeps one test's global settings from reaching the next."""

import sys

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


def _numba_threads():
    """numba's thread count, or None while numba is not imported (asking never imports it)."""
    numba = sys.modules.get("numba")
    return numba.get_num_threads() if numba is not None else None


def _set_numba_threads(count):
    from hideseek.threads import kept_torch_threads

    with kept_torch_threads():  # numba's first launch may reset torch's count
        sys.modules["numba"].set_num_threads(count)


@pytest.fixture(autouse=True)
def _global_state_guard():
    """Fail a test that leaves torch's thread count, default dtype or grad mode changed, and put
    them back; silently put back what product code sets on purpose (deterministic kernels, numba's
    thread count, which the hiding kernels set to torch's).

    Issue 14: a module fixture left torch on one thread; later training in the same process then
    produced other weights, and an evaluation equality that held by luck failed. Cheap checks
    only: no RNG state (tests seed their own generators).
    """
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    numba_threads = _numba_threads()
    yield
    changed = []
    if torch.get_num_threads() != threads:
        changed.append(f"torch.get_num_threads() {threads} -> {torch.get_num_threads()}")
        torch.set_num_threads(threads)
    if torch.get_default_dtype() != dtype:
        changed.append(f"torch.get_default_dtype() {dtype} -> {torch.get_default_dtype()}")
        torch.set_default_dtype(dtype)
    if torch.is_grad_enabled() != grad:
        changed.append(f"torch.is_grad_enabled() {grad} -> {torch.is_grad_enabled()}")
        torch.set_grad_enabled(grad)
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (
            deterministic, warn_only):
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    if numba_threads is not None and _numba_threads() != numba_threads:
        _set_numba_threads(numba_threads)
    if changed:
        pytest.fail("the test left global state changed (restored now): " + "; ".join(changed), pytrace=False)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (stable timings on a shared 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
