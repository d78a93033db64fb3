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


@pytest.fixture
def fid_env(fid_dirs, monkeypatch):
    """Point the FID weights' caches at the requesting module's ``fid_dirs`` (env var -> folder)."""
    for key, value in fid_dirs.items():
        monkeypatch.setenv(key, str(value))
    return fid_dirs
