"""Synthetic images shared by the metrics tests: smooth noise, Gaussian blobs, a complex
object and a centred phase ramp."""

from __future__ import annotations

import numpy as np


def smooth_noise(shape, sigma, rng):
    """Periodic Gaussian-filtered white noise, zero mean, unit standard deviation."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    gain = np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gain).real
    return (field - field.mean()) / field.std()


def blobs(shape, centres, shift=(0.0, 0.0), sigma=2.5):
    """Sum of Gaussian blobs sampled at ``(y + dy, x + dx)``: ``f(p + shift)``."""
    y, x = np.mgrid[:shape[0], :shape[1]].astype(float)
    y, x = y + shift[0], x + shift[1]
    return sum(np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)) for cy, cx in centres)


def make_object(shape=(96, 96), seed=3, phase_std=0.5):
    rng = np.random.default_rng(seed)
    amplitude = 1 + 0.3 * smooth_noise(shape, 3, rng)
    phase = phase_std * smooth_noise(shape, 3, rng)
    return amplitude * np.exp(1j * phase)


def centred_ramp(shape, gy, gx, offset):
    y, x = np.mgrid[:shape[0], :shape[1]].astype(float)
    return gy * (y - (shape[0] - 1) / 2) + gx * (x - (shape[1] - 1) / 2) + offset
