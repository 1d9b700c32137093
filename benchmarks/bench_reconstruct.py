"""Inference + stitching throughput of ``pinn.reconstruct`` on 10,000 and 100,000 positions,
with bounded memory (the patterns are streamed, never all in memory).

The scan is a :class:`SimulatedScan`: a :class:`pinn.data.ScanSource` that computes each
requested pattern on the fly, deterministically (a smooth random complex object, a raster of
positions with fixed sub-pixel jitter, ``|FFT(object patch * probe)|`` through
``pinn.ops.extract_patches``/``illuminate``/``diffract``, no noise), so nothing of size
``M x N x N`` ever exists. 100,000 x 64 x 64 float32 would be 1.6 GB on its own.

The model is untrained (``build_model(ModelConfig(...))``; the weights do not change the speed).
``--network stub`` replaces its CNN by a stand-in that costs nothing (the object patch is the
first input pattern; the probe weights still come from the real model), which measures the rest
of the pipeline (source, grouping, stitching) and its memory at sizes where the CNN would take
an hour on a CPU; the network's own memory does not grow with M. One end-to-end ``reconstruct``
per case is timed after a small warm-up run, and split into: the source (``read`` and the
``pattern_energy`` pass: here simulation, in real use file reads), the network (forward hooks),
stitching (``pinn.ops.stitch_sums``) and the rest (grouping, illumination weights,
copies). Figures per case: wall time, positions/s end to end and without the source (inference +
stitching alone), patterns/s through the network (``gridsize**2`` per position), the time
shares, the peak resident set of the process during the case (CPU; reset before each case) or
CUDA's max_memory_allocated, and the canvas size.

    python benchmarks/bench_reconstruct.py                                  # 10k and 100k
    python benchmarks/bench_reconstruct.py --positions 10000 --gridsize 1 --threads 1
    python benchmarks/bench_reconstruct.py --device cuda --batch-size 256
    python benchmarks/bench_reconstruct.py --positions 10000 100000 --network stub

One JSON record per case goes to results/bench_reconstruct.jsonl (or --json).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import (
    Recorder,
    device_from,
    peak_memory_bytes,
    reset_peak_memory,
    synchronize,
)

from pinn import ops
from pinn.config import ModelConfig
from pinn.data import intensity_scale, make_probe
from pinn.data.scan import check_read_indices, pattern_energy
from pinn.model import build_model
import pinn.reconstruct as reconstruct_module
from pinn.reconstruct import reconstruct


class SimulatedScan:
    """A :class:`pinn.data.ScanSource` of ``M`` positions whose patterns are simulated when
    read.

    Geometry: a row-major raster with ``step_px`` pixels between neighbours and a fixed
    uniform jitter of +-``jitter_px`` (seeded), over a smooth random complex object
    (amplitude ``0.7 +- 0.15``, phase ``+-0.5`` rad, features of ``~4 px``) just large enough
    for every ``N x N`` window. Patterns: ``diffract(illuminate(extract_patches(object,
    positions), probe))``, float32 amplitudes with zero frequency at ``(N//2, N//2)``.

    Memory: the object (``H x W`` complex64: about 14 MB for 100,000 positions at 4 px steps),
    the positions ``(M, 2)`` float64, and per ``read`` of ``k`` patterns a few ``k x N x N``
    temporaries.
    """

    def __init__(self, m: int, n: int = 64, *, step_px: float = 4.0, jitter_px: float = 0.5,
                 seed: int = 0, energy_chunk: int = 1024) -> None:
        self.n_scans, self._n, self.energy_chunk = int(m), int(n), int(energy_chunk)
        gen = torch.Generator().manual_seed(seed)
        cols = math.ceil(math.sqrt(m))
        rows = math.ceil(m / cols)
        margin = n // 2 + 2
        k = torch.arange(m)
        grid = torch.stack([k // cols, k % cols], dim=1).to(torch.float64) * step_px + margin
        jitter = (torch.rand(m, 2, generator=gen, dtype=torch.float64) * 2 - 1) * jitter_px
        self.positions = grid + jitter  # (M, 2) float64 (y, x)
        shape = (int(margin + step_px * (rows - 1) + n), int(margin + step_px * (cols - 1) + n))
        self.object = smooth_object(shape, gen)  # (H, W) complex64
        self.probe = make_probe("default", n)  # (N, N) complex64
        self.reads = 0  # patterns simulated
        self.seconds = 0.0  # wall time spent in read and pattern_energy

    @property
    def N(self) -> int:  # noqa: N802 - the patch size is called N everywhere
        return self._n

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """``(k,)`` int64 indices -> ``(k, N, N)`` float32 amplitudes, simulated now."""
        tick = time.perf_counter()
        index = check_read_indices(indices, self.n_scans)
        centres = self.positions[index].to(torch.float32)  # (k, 2)
        patches = ops.extract_patches(self.object, centres, self._n)  # (k, N, N) complex64
        amplitude = ops.diffract(ops.illuminate(patches, self.probe))  # (k, N, N) float32
        self.reads += index.numel()
        self.seconds += time.perf_counter() - tick
        return amplitude

    def pattern_energy(self) -> torch.Tensor:
        """``(M,)`` float64 ``sum amplitude**2`` per pattern, simulated chunk by chunk."""
        energy = torch.empty(self.n_scans, dtype=torch.float64)  # filled in place (no
        for lo in range(0, self.n_scans, self.energy_chunk):  # list of parts: see NpzScanStream)
            hi = min(lo + self.energy_chunk, self.n_scans)
            energy[lo:hi] = pattern_energy(self.read(torch.arange(lo, hi)))
        return energy


def smooth_object(shape: tuple[int, int], gen: torch.Generator, sigma: float = 2.0
                  ) -> torch.Tensor:
    """A smooth random complex transmission ``(H, W)`` complex64."""

    def field() -> torch.Tensor:
        ky = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
        kx = torch.fft.fftfreq(shape[1], dtype=torch.float64)[None, :]
        gain = torch.exp(-2 * math.pi**2 * sigma**2 * (ky**2 + kx**2))
        noise = torch.randn(shape, generator=gen, dtype=torch.float64)
        out = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real
        return (out - out.mean()) / out.std()

    return torch.polar(0.7 + 0.15 * field(), 0.5 * field()).to(torch.complex64)


class Stopwatch:
    """Accumulates the wall time of calls wrapped by :meth:`wrap` (device synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.calls = device, 0.0, 0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            synchronize(self.device)
            tick = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(self.device)
            self.seconds += time.perf_counter() - tick
            self.calls += 1
            return out
        return timed


def network_stopwatch(model: torch.nn.Module, device: torch.device) -> Stopwatch:
    """Times every forward call of ``model`` with hooks."""
    watch = Stopwatch(device)
    state = {}

    def before(module, inputs):
        synchronize(device)
        state["tick"] = time.perf_counter()

    def after(module, inputs, output):
        synchronize(device)
        watch.seconds += time.perf_counter() - state["tick"]
        watch.calls += 1

    model.register_forward_pre_hook(before)
    model.register_forward_hook(after)
    return watch


class StubNetwork(torch.nn.Module):
    """The interface of a PtychoPINN that reconstruct uses, without the CNN: the object of a
    group is its first pattern (as complex64), so the cost is negligible and the output still
    depends on the input. ``illumination`` (the probe weights) is the real model's."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        # no passes over the scan either: they need the real model's probe and read it again
        self.config = dataclasses.replace(model.config, projection_passes=0)
        self.size, self.real = model.size, model
        self.register_buffer("intensity_scale", model.intensity_scale.detach().clone())

    def illumination(self, offsets: torch.Tensor) -> torch.Tensor:
        return self.real.illumination(offsets)

    def forward(self, amplitude: torch.Tensor, offsets: torch.Tensor, steps: int = 0,
                blur_px: float | None = None):
        from types import SimpleNamespace

        return SimpleNamespace(object=amplitude[:, 0].to(torch.complex64))  # (B, N, N)


def run_case(m: int, n: int, gridsize: int, batch_size: int, device: torch.device,
             n_filters_scale: int, network: str = "unet", projection_steps: int = 0,
             projection_passes: int = 0) -> dict:
    """One timed end-to-end reconstruct of ``m`` simulated positions; returns the figures.
    The network's time includes the model's ``projection_steps``; ``passes_s`` is the time of
    the passes over the scan (the stub makes none): the part of ``other_s`` that is theirs plus
    their pattern reads, which ``source_s`` counts too."""
    reset_peak_memory(device)
    source = SimulatedScan(m, n)
    model = build_model(ModelConfig(size_px=n, gridsize=gridsize,
                                    n_filters_scale=n_filters_scale,
                                    projection_steps=projection_steps,
                                    projection_passes=projection_passes),
                        probe=source.probe, intensity_scale=intensity_scale(1e5, n))
    if network == "stub":
        model = StubNetwork(model)
    network = network_stopwatch(model, device)
    stitching, passing = Stopwatch(device), Stopwatch(device)
    original, original_passes = ops.stitch_sums, reconstruct_module.scan_passes
    ops.stitch_sums = stitching.wrap(original)  # reconstruct calls ops.stitch_sums
    reconstruct_module.scan_passes = passing.wrap(original_passes)
    try:
        synchronize(device)
        tick = time.perf_counter()
        result = reconstruct(model, source, batch_size=batch_size, device=device,
                             progress=False, neighbors=4, seed=0)
        synchronize(device)
        total = time.perf_counter() - tick
    finally:
        ops.stitch_sums = original
        reconstruct_module.scan_passes = original_passes
    peak = peak_memory_bytes(device)
    assert result.n_positions == m and bool(torch.isfinite(result.object).all())
    data_bytes = m * n * n * 4
    rest = total - source.seconds - network.seconds - stitching.seconds
    return {
        "wall_s": total,
        "positions_per_s": m / total,
        "patterns_per_s": result.n_groups * gridsize**2 / total,  # through the network
        "positions_per_s_without_source": m / (total - source.seconds),
        "source_s": source.seconds,
        "network_s": network.seconds,
        "stitch_s": stitching.seconds,
        "passes_s": passing.seconds,
        "other_s": rest,
        "source_share": source.seconds / total,
        "network_share": network.seconds / total,
        "stitch_share": stitching.seconds / total,
        "source_patterns": source.reads,  # simulated: the energy pass and every batch
        "groups": result.n_groups,
        "canvas": list(result.object.shape),
        "peak_memory_mb": peak / 2**20,
        "all_patterns_float32_mb": data_bytes / 2**20,
    }


def current_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--positions", type=int, nargs="*", default=[10_000, 100_000],
                        help="scan sizes M (default: 10000 100000)")
    parser.add_argument("--gridsize", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--N", type=int, default=64, help="pattern size (default: 64)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="groups per forward pass (default: 64, reconstruct's default)")
    parser.add_argument("--n-filters-scale", type=int, default=2,
                        help="network width (default: 2, the reference's)")
    parser.add_argument("--network", nargs="*", choices=("unet", "stub"), default=["unet"],
                        help="the untrained PtychoPINN (default) and/or a stand-in without the "
                             "CNN (pipeline and memory only)")
    parser.add_argument("--projection-steps", type=int, default=ModelConfig().projection_steps,
                        metavar="K", help="the model's projection steps per group (default: "
                                          "pinn's; the stub network ignores them)")
    parser.add_argument("--projection-passes", type=int,
                        default=ModelConfig().projection_passes, metavar="K",
                        help="the model's passes over the scan (default: pinn's; the stub "
                             "network makes none)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="JSONL file to append records to")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_from(args.device)
    rec = Recorder("bench_reconstruct", device, args.json)
    torch.set_grad_enabled(False)
    for network in args.network:
        for gridsize in args.gridsize:
            run_case(256, args.N, gridsize, args.batch_size, device, args.n_filters_scale,
                     network, args.projection_steps, args.projection_passes)  # warm-up
            for m in args.positions:
                config = {"positions": m, "N": args.N, "gridsize": gridsize,
                          "batch_size": args.batch_size, "network": network,
                          "n_filters_scale": args.n_filters_scale,
                          "projection_steps": args.projection_steps,
                          "projection_blur_px": ModelConfig().projection_blur_px,
                          "projection_sync_rounds": ModelConfig().projection_sync_rounds,
                          "projection_passes": args.projection_passes if network != "stub"
                          else 0,
                          "source": "simulated on the fly (raster, 4 px steps)",
                          "rss_before_case_mb": current_rss_mb()}
                figures = run_case(m, args.N, gridsize, args.batch_size, device,
                                   args.n_filters_scale, network, args.projection_steps,
                                   args.projection_passes)
                steps = (f" projection={args.projection_steps} passes={args.projection_passes}"
                         if network != "stub" else "")
                rec.record(f"reconstruct M={m} N={args.N} gridsize={gridsize} "
                           f"batch={args.batch_size} network={network}{steps}", config, figures)


if __name__ == "__main__":
    main()
