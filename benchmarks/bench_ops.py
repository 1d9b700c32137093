"""Throughput of the physics ops against patch count, patch size and canvas size.

Also compares pinn's reassembly (a scatter-add, O(P * N^2)) with the reference's algorithm
written in torch here: pad every patch to the whole canvas, translate the canvas, and sum
(O(P * canvas)).

    python benchmarks/bench_ops.py [--device cpu|cuda] [--quick] [--json OUT.jsonl]

Writes one JSON record per case to benchmarks/results/bench_ops.jsonl (or --json).
"""

from __future__ import annotations

import argparse

import torch

from _common import Recorder, device_from, peak_memory_bytes, reset_peak_memory, time_it
from pinn import ops


def complex_randn(*shape: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    real = torch.randn(*shape, generator=generator).to(device)
    imag = torch.randn(*shape, generator=generator).to(device)
    return torch.complex(real, imag)


def positions_on(canvas: int, n_patches: int, size: int, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """Random subpixel patch centres keeping every patch inside the canvas, (1, P, 2)."""
    low, high = size // 2 + 1, canvas - size + size // 2 - 1
    return (low + (high - low) * torch.rand(1, n_patches, 2, generator=generator,
                                            dtype=torch.float64)).float().to(device)


def translate_and_sum(patches: torch.Tensor, positions: torch.Tensor, canvas: int,
                      chunk: int = 16) -> torch.Tensor:
    """The reference's reassembly: every patch padded to the canvas, the canvas translated so
    that the patch centre lands on its position, all canvases summed. O(P * canvas**2)."""
    total = torch.zeros(canvas, canvas, dtype=patches.dtype, device=patches.device)
    centre = canvas // 2
    for start in range(0, patches.shape[1], chunk):
        block = patches[0, start:start + chunk]  # (k, n, n)
        padded = ops.center_pad(block, canvas)  # (k, canvas, canvas); canvas and n are even
        shift = positions[0, start:start + chunk] - centre  # (k, 2)
        total += ops.translate(padded, shift).sum(dim=0)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="JSONL file to append records to")
    args = parser.parse_args()
    device = device_from(args.device)
    rec = Recorder("bench_ops", device, args.json)
    gen = torch.Generator().manual_seed(0)
    repeats = 3 if args.quick else args.repeats

    def case(name: str, config: dict, fn, work: float, unit: str) -> dict:
        reset_peak_memory(device)
        timing = time_it(fn, device, repeats=repeats)
        figures = {"median_s": timing["median_s"], "min_s": timing["min_s"],
                   f"{unit}_per_s": work / timing["median_s"],
                   "peak_memory_mb": peak_memory_bytes(device) / 2**20,
                   "times_s": timing["times_s"]}
        return rec.record(name, config, figures)

    # translate: images per second against image size
    for size in (64, 128) if args.quick else (64, 128, 256):
        k = 512 if args.quick else 2048
        images = complex_randn(k, size, size, device=device, generator=gen)
        shift = (torch.rand(k, 2, generator=gen) * 8 - 4).to(device)
        case(f"translate k={k} size={size}", {"op": "translate", "k": k, "size": size},
             lambda: ops.translate(images, shift), k * size * size, "pixels")

    # diffract: patterns per second against size
    for size in (64, 128, 256):
        k = 256 if args.quick else 1024
        field = complex_randn(k, size, size, device=device, generator=gen)
        case(f"diffract k={k} size={size}", {"op": "diffract", "k": k, "size": size},
             lambda: ops.diffract(field), k, "patterns")

    # extract / reassemble / stitch against patch count, patch size and canvas size
    counts = (1000, 10000) if not args.quick else (1000,)
    for n_patches in counts:
        for size in (32, 64, 128):
            canvas_px = 2048
            canvas = complex_randn(1, canvas_px, canvas_px, device=device, generator=gen)
            pos = positions_on(canvas_px, n_patches, size, gen, device)
            patches = complex_randn(1, n_patches, size, size, device=device, generator=gen)
            config = {"patches": n_patches, "patch_size": size, "canvas": canvas_px}
            work = n_patches * size * size
            case(f"extract P={n_patches} N={size} canvas={canvas_px}",
                 {"op": "extract_patches", **config},
                 lambda: ops.extract_patches(canvas, pos, size), work, "pixels")
            case(f"reassemble P={n_patches} N={size} canvas={canvas_px}",
                 {"op": "reassemble_patches", **config},
                 lambda: ops.reassemble_patches(patches, pos, (canvas_px, canvas_px)), work,
                 "pixels")
    for canvas_px in (512, 1024, 2048, 4096):
        n_patches, size = (1000 if args.quick else 10000), 64
        pos = positions_on(canvas_px, n_patches, size, gen, device)
        patches = complex_randn(1, n_patches, size, size, device=device, generator=gen)
        config = {"patches": n_patches, "patch_size": size, "canvas": canvas_px}
        case(f"reassemble P={n_patches} N={size} canvas={canvas_px}",
             {"op": "reassemble_patches", **config},
             lambda: ops.reassemble_patches(patches, pos, (canvas_px, canvas_px)),
             n_patches * size * size, "pixels")
        case(f"stitch P={n_patches} N={size} canvas={canvas_px}", {"op": "stitch", **config},
             lambda: ops.stitch(patches, pos, (canvas_px, canvas_px)),
             n_patches * size * size, "pixels")

    # pinn's scatter against the reference's translate-and-sum, where the latter finishes
    for canvas_px, n_patches in ((256, 200), (512, 200)) if args.quick else \
            ((256, 1000), (512, 1000), (1024, 1000)):
        size = 64
        pos = positions_on(canvas_px, n_patches, size, gen, device)
        patches = complex_randn(1, n_patches, size, size, device=device, generator=gen)
        ours = case(f"reassemble P={n_patches} N={size} canvas={canvas_px} (vs reference)",
                    {"op": "reassemble_patches", "patches": n_patches, "patch_size": size,
                     "canvas": canvas_px},
                    lambda: ops.reassemble_patches(patches, pos, (canvas_px, canvas_px)),
                    n_patches * size * size, "pixels")
        reference = time_it(lambda: translate_and_sum(patches, pos, canvas_px), device,
                            repeats=1, warmup=0)
        difference = (translate_and_sum(patches, pos, canvas_px)
                      - ops.reassemble_patches(patches, pos, (canvas_px, canvas_px))[0]).abs()
        scale = ops.reassemble_patches(patches, pos, (canvas_px, canvas_px)).abs().max()
        rec.record(f"translate-and-sum P={n_patches} N={size} canvas={canvas_px}",
                   {"op": "translate_and_sum", "patches": n_patches, "patch_size": size,
                    "canvas": canvas_px},
                   {"median_s": reference["median_s"],
                    "speedup_of_reassemble": reference["median_s"] / ours["figures"]["median_s"],
                    "max_rel_difference": float(difference.max() / scale),
                    "cost_ratio_canvas_over_patch": canvas_px**2 / size**2})


if __name__ == "__main__":
    main()
