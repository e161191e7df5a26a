"""Launcher argument checks that need no process group."""

import pytest
import torch

from theorylab.errors import TheorylabError
from verify.runtime.launch import _check_backend


def test_nccl_needs_one_gpu_per_rank(monkeypatch):
    # NCCL aborts with "Duplicate GPU detected" when two ranks share a GPU (seen on an H200);
    # the launcher must refuse before spawning, naming the world size, the GPU count and the fix.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(TheorylabError, match=r"world_size=2 but 1 CUDA device.*gloo"):
        _check_backend("nccl", "cuda", 2)
    assert _check_backend("nccl", "cuda", 1) == "nccl"
    assert _check_backend("gloo", "cuda", 4) == "gloo"


def test_unknown_backend_is_named():
    with pytest.raises(TheorylabError, match="'mpi'"):
        _check_backend("mpi", "cpu")
