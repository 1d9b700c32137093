"""Helpers shared by the tests of :mod:`pinn.ops`: random inputs, inner products, positions
whose fractional parts stay away from integers, compiled calls and hypothesis strategies.

Positions for gradient checks keep their fractional parts in [0.2, 0.8]: bilinear sampling is
piecewise linear in the position with kinks at integers, and ``gradcheck``'s finite
differences (eps 1e-6) must not cross one.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

REAL_DTYPES = (torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
HALF_DTYPES = (torch.bfloat16, torch.float16)
FULL_OF = {torch.float32: torch.float32, torch.float64: torch.float64,
           torch.complex64: torch.complex64, torch.complex128: torch.complex128,
           torch.bfloat16: torch.float32, torch.float16: torch.float32}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand(shape, dtype=torch.float32, gen: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal values (complex: independent real and imaginary parts)."""
    if dtype.is_complex:
        real_dtype = torch.float64 if dtype == torch.complex128 else torch.float32
        parts = torch.randn(*shape, 2, generator=gen, dtype=real_dtype)
        return torch.view_as_complex(parts).to(dtype)
    if dtype in HALF_DTYPES:
        return torch.randn(*shape, generator=gen).to(dtype)
    return torch.randn(*shape, generator=gen, dtype=dtype)


def fractional_positions(shape, low: float, high: float, gen: torch.Generator | None = None,
                         dtype=torch.float64) -> torch.Tensor:
    """Positions ``shape + (2,)`` uniform over integers in [low, high) plus a fraction in
    [0.2, 0.8]: floor() is locally constant, so gradients are smooth there."""
    whole = torch.randint(int(low), int(high), (*shape, 2), generator=gen).to(dtype)
    frac = 0.2 + 0.6 * torch.rand(*shape, 2, generator=gen, dtype=dtype)
    return whole + frac


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b> = sum(a * conj(b))`` in double precision."""
    a = a.to(torch.complex128) if a.is_complex() else a.double()
    b = b.to(torch.complex128) if b.is_complex() else b.double()
    return (a * b.conj()).sum()


def compiled(fn, backend: str = "aot_eager"):
    """``fn`` compiled as one graph (a graph break fails the test)."""
    torch._dynamo.reset()
    return torch.compile(fn, backend=backend, fullgraph=True)


@st.composite
def positions_strategy(draw, n_positions: int, height: int, width: int, margin: int):
    """``(n_positions, 2)`` float64 positions in ``[-margin, H + margin)`` x
    ``[-margin, W + margin)``, so some patches lie partly or fully outside the canvas."""
    values = draw(st.lists(
        st.tuples(st.floats(-margin, height + margin - 1e-6),
                  st.floats(-margin, width + margin - 1e-6)),
        min_size=n_positions, max_size=n_positions))
    return torch.tensor(values, dtype=torch.float64).reshape(n_positions, 2)


class _RecordOps(TorchDispatchMode):
    """Records ``(op name, largest tensor numel among its inputs and outputs)`` per aten call."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        self.calls.append((func.overloadpacket.__name__, max((t.numel() for t in tensors),
                                                             default=0)))
        return out


def ops_touching(fn, *args, numel: int) -> list[str]:
    """Names of the aten ops run by ``fn(*args)`` that read or write a tensor of at least
    ``numel`` elements (used to show that an op never computes over a whole canvas)."""
    with _RecordOps() as record:
        fn(*args)
    return [name for name, size in record.calls if size >= numel]


# Ops that touch a canvas-sized tensor without computing over it: views, and the single
# zero allocation plus index_add / index_select of a scatter or gather (O(touched rows)).
VIEW_OPS = {"view", "_unsafe_view", "reshape", "view_as_real", "view_as_complex", "squeeze",
            "unsqueeze", "alias", "expand", "slice", "select", "as_strided", "detach",
            "_reshape_alias", "t", "permute", "transpose", "resolve_conj", "contiguous"}
