"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test single-threaded: tiny inputs gain nothing from threads, and on a busy machine a
    descheduled OpenMP thread stalls every small op of a deep network."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fid_dirs(tmp_path_factory):
    """A session-wide converted-weights cache and an empty TORCH_HOME (both under pytest's tmp).

    The conversion runs once per test session; a module may override this fixture (the
    conformance tests plant the converted file as pytorch-fid's own weights).
    """
    from facegan.fid import inception as inc

    base = tmp_path_factory.getbasetemp()
    dirs = {"FACEGAN_CACHE": base / "fid-cache", "TORCH_HOME": base / "fid-torch-home"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in dirs.items():
            value.mkdir(exist_ok=True)
            mp.setenv(key, str(value))
        inc.resolve_weights(download=False)
    return dirs


@pytest.fixture(scope="module")
def scorer(fid_dirs):
    """An FID scorer on the CPU with the weights found through ``fid_dirs``."""
    from facegan.fid.features import FIDScorer

    with pytest.MonkeyPatch.context() as mp:
        for key, value in fid_dirs.items():
            mp.setenv(key, str(value))
        return FIDScorer(batch_size=8)


@pytest.fixture
def fid_env(fid_dirs, monkeypatch):
    """Point the FID weights' caches at the requesting module's ``fid_dirs`` (env var -> folder)."""
    for key, value in fid_dirs.items():
        monkeypatch.setenv(key, str(value))
    return fid_dirs


@pytest.fixture(autouse=True)
def _private_facegan_cache(tmp_path_factory, monkeypatch):
    """Every test (and the commands it starts) caches into pytest's folder, never the user's
    ~/.cache/facegan: speed checks and converted weights stay out of the home directory."""
    import os

    if "FACEGAN_CACHE" not in os.environ:
        monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "fid-cache"))
