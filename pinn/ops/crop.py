"""Centred cropping and zero padding that keep the centre pixel ``(H//2, W//2)`` fixed."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from pinn.ops._checks import check_min_dims, check_shape_pair, check_tensor


def _size_pair(size: object) -> tuple[int, int]:
    """``size`` as an int ``s`` (meaning ``(s, s)``) or a pair ``(h, w)`` of positive ints."""
    if isinstance(size, numbers.Integral):
        size = (size, size)
    return check_shape_pair("size", size)


def _margins(name: str, big: int, small: int) -> tuple[int, int]:
    if (big - small) % 2:
        raise ValueError(f"{name}: sizes {big} and {small} differ by an odd number of pixels; "
                         "the centre pixel would move, so choose sizes of equal parity")
    return (big - small) // 2, (big - small) // 2


def center_crop(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central ``size`` window of ``image (..., H, W)``: pixel ``(H//2, W//2)`` becomes the
    output's pixel ``(h//2, w//2)``. Sizes must have the parity of the image's."""
    check_tensor("image", image)
    check_min_dims("image", image, 2, "(..., H, W)")
    h, w = _size_pair(size)
    height, width = image.shape[-2:]
    if h > height or w > width or h <= 0 or w <= 0:
        raise ValueError(f"cannot crop {(h, w)} out of an image of {(height, width)}")
    top, _ = _margins("center_crop", height, h)
    left, _ = _margins("center_crop", width, w)
    return image[..., top:top + h, left:left + w]


def center_pad(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Zero-pad ``image (..., h, w)`` evenly to ``size``, keeping the centre pixel aligned."""
    check_tensor("image", image)
    check_min_dims("image", image, 2, "(..., H, W)")
    h, w = _size_pair(size)
    height, width = image.shape[-2:]
    if h < height or w < width:
        raise ValueError(f"cannot pad an image of {(height, width)} to the smaller {(h, w)}")
    top, bottom = _margins("center_pad", h, height)
    left, right = _margins("center_pad", w, width)
    if image.is_complex():
        real = torch.view_as_real(image.resolve_conj())
        return torch.view_as_complex(F.pad(real, (0, 0, left, right, top, bottom)).contiguous())
    return F.pad(image, (left, right, top, bottom))
