"""What ``pinn refine`` writes: ``reconstruction.npz``, PNGs and ``report.md``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pinn.refine.run import RefineResult


def covered(result: RefineResult, fraction: float = 0.05) -> np.ndarray:
    """``(H, W)`` bool: pixels whose probe coverage is at least ``fraction`` of its maximum."""
    coverage = result.coverage.numpy()
    return coverage >= fraction * max(float(coverage.max()), 1e-30)


def reconstruction_arrays(result: RefineResult) -> dict[str, np.ndarray]:
    """The NPZ contents: ``pinn reconstruct``'s keys (object, amplitude, phase, coverage,
    origin_px, crop_px) plus probe ``(K, N, N)``, probe_power_fraction ``(K,)``, positions and
    positions_initial ``(M, 2)`` ((y, x) object pixels of each window's centre pixel N//2, the
    scan's convention) and deviance ``(E,)`` per epoch."""
    obj = result.object.numpy()
    return {
        "object": obj, "amplitude": np.abs(obj), "phase": np.angle(obj),
        "coverage": result.coverage.numpy(),
        "origin_px": np.asarray(result.origin_px, dtype=np.int64),
        "crop_px": np.asarray(result.probe.shape[-1], dtype=np.int64),
        "probe": result.probe.numpy(),
        "probe_power_fraction": result.power_fraction.numpy().astype(np.float32),
        "positions": result.positions.numpy(),
        "positions_initial": result.positions_initial.numpy(),
        "deviance": np.asarray([h["train_deviance"] for h in result.history], np.float64),
    }


def save_refinement(result: RefineResult, out_dir: str | Path, seconds: float | None = None,
                    *, start: str | None = None) -> dict[str, Path]:
    """Write ``reconstruction.npz``, ``phase.png``, ``amplitude.png``, ``probe_modes.png``,
    ``positions.png``, ``deviance.png`` and ``report.md`` into ``out_dir``, all or none
    (:func:`pinn.atomic.atomic_write_files`). ``start`` names what the object started from
    (a phrase for the report). Returns the paths by name."""
    from pinn.atomic import atomic_write_files
    from pinn.plotting import encode_png, figure, plot_curves

    out = Path(out_dir)
    arrays = reconstruction_arrays(result)
    mask = covered(result)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    modes = arrays["probe"]
    mode_figures = [figure(np.abs(m), None, f"mode {k}: {100 * p:.1f} % of the power", "gray")
                    for k, (m, p) in enumerate(zip(modes, arrays["probe_power_fraction"]))]
    height = max(f.shape[0] for f in mode_figures)
    modes_png = np.concatenate([np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0)),
                                       constant_values=255) for f in mode_figures], axis=1)
    change = arrays["positions"] - arrays["positions_initial"]
    order = np.arange(1, len(change) + 1, dtype=np.float64)
    epochs = np.arange(1, len(arrays["deviance"]) + 1, dtype=np.float64)
    files = {
        "npz": (out / "reconstruction.npz", buffer.getvalue()),
        "phase": (out / "phase.png", encode_png(figure(arrays["phase"], mask, "phase (rad)",
                                                       "twilight"))),
        "amplitude": (out / "amplitude.png", encode_png(figure(arrays["amplitude"], mask,
                                                               "amplitude", "gray"))),
        "probe": (out / "probe_modes.png", encode_png(modes_png)),
        "positions": (out / "positions.png", encode_png(plot_curves(
            {"dy": (order, change[:, 0]), "dx": (order, change[:, 1])},
            "position correction (px) per scan point", "scan point"))),
        "deviance": (out / "deviance.png", encode_png(plot_curves(
            {"deviance": (epochs, arrays["deviance"])},
            "Poisson deviance per pixel (1 = noise floor)", "epoch", log_y=True))),
    }
    report = _report(result, arrays, seconds, start)
    files["report"] = (out / "report.md", report.encode())
    atomic_write_files({path: data for path, data in files.values()})
    return {name: path for name, (path, _) in files.items()}


def _positions_line(result: RefineResult, change: np.ndarray) -> str:
    started = result.positions_started
    if started is None:
        if not change.any():
            return "Positions: not refined."
        started_text = ""
    else:
        started_text = f" (refined from epoch {started + 1} of {len(result.history)})"
    return (f"Positions{started_text}: largest correction {change.max():.2f} px, "
            f"rms {np.sqrt((change ** 2).mean()):.2f} px.")


def _report(result: RefineResult, arrays: dict[str, np.ndarray], seconds: float | None,
            start: str | None = None) -> str:
    deviance = arrays["deviance"]
    change = np.linalg.norm(arrays["positions"] - arrays["positions_initial"], axis=1)
    lines = ["# pinn refine", ""]
    if start is not None:
        lines += [f"Started from {start}.", ""]
    if seconds is not None:
        lines.append(f"{len(deviance)} epochs in {seconds:.1f} s.")
    lines += [f"Poisson deviance per pixel: {deviance[0]:.3f} after the first epoch, "
              f"{deviance[-1]:.3f} at the end (about 1 at the shot-noise floor).", "",
              "![deviance](deviance.png)", "",
              "Probe modes (power fraction): "
              + ", ".join(f"{100 * p:.1f} %" for p in arrays["probe_power_fraction"]), "",
              "![probe modes](probe_modes.png)", "",
              _positions_line(result, change),
              "", "![positions](positions.png)", "",
              "![phase](phase.png) ![amplitude](amplitude.png)", ""]
    return "\n".join(lines)
