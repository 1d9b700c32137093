"""Tests of pinn.engine.memory: freed buffers stay in the process while a loop runs."""

from __future__ import annotations

import resource

import pytest
import torch

from pinn.engine.memory import _glibc, reuse_freed_memory

BIG = 10 << 20  # 40 MB of float32: above glibc's own mmap ceiling (32 MiB)


def faults_per_allocation(repeats: int = 5) -> list[int]:
    """Minor page faults of each of ``repeats`` allocations (filled, then freed) of BIG floats."""
    faults = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(BIG)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")
def test_freed_buffers_are_reused_inside_and_returned_after():
    pages = BIG * 4 // resource.getpagesize()
    assert min(faults_per_allocation()) > pages // 2  # glibc maps them afresh every time
    with reuse_freed_memory() as applies:
        assert applies
        inside = faults_per_allocation()
    assert max(inside[2:]) < pages // 10  # once in the heap, the same pages serve again
    assert min(faults_per_allocation()) > pages // 2  # the settled thresholds are back
