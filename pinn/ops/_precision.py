"""Keep physics in full precision.

Physics ops compute in float32/complex64 (or float64/complex128 when given double input, which
is what ``gradcheck`` needs). Under autocast the CNN may hand them bfloat16 or float16 tensors;
:func:`full_precision` promotes those, and :func:`no_autocast` switches autocast off around
the op body so that nothing inside is silently demoted.
"""

from __future__ import annotations

import contextlib

import torch

_PROMOTE = {
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
    torch.complex32: torch.complex64,
}


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` promoted to float32/complex64 if it is in a half type, else ``x`` itself.

    Integer and boolean tensors become float32.
    """
    if x.dtype in _PROMOTE:
        return x.to(_PROMOTE[x.dtype])
    if not (x.is_floating_point() or x.is_complex()):
        return x.to(torch.float32)
    return x


def real_dtype_of(x: torch.Tensor) -> torch.dtype:
    """The real dtype matching ``x`` (float32 for complex64, float64 for complex128)."""
    return x.real.dtype if x.is_complex() else x.dtype


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which autocast is disabled for ``device``'s type."""
    return torch.autocast(device_type=device.type, enabled=False)
