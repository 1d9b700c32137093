"""Training-step speed of PtychoPINN, and the machine's own ceiling measured in the same run.

For each case (N, gridsize, batch, variant) one optimiser step (forward, Poisson loss,
backward, Adam) is timed over ``--steps`` steps after warm-up; patterns/s counts diffraction
patterns (batch x gridsize**2). The model's FLOPs per step come from
``torch.utils.flop_counter``; dividing by the step time gives the achieved GFLOP/s, quoted as a
fraction of the GFLOP/s of a large 3x3 convolution (forward and backward, the shapes the
network's big layers use) and of a large matmul, measured in the same process.

    python benchmarks/bench_train.py                      # the full grid
    python benchmarks/bench_train.py --N 64 --gridsize 2 --batch 16 --steps 10 --variants eager
    python benchmarks/bench_train.py --device cuda

Variants: eager, channels_last, compile (torch.compile), bf16 (autocast; physics stays float32),
fp16 (CUDA only). Peak memory: CPU peak RSS of the process during the case, or CUDA's
max_memory_allocated. One JSON record per case goes to results/bench_train.jsonl (or --json).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import Recorder, device_from, peak_memory_bytes, reset_peak_memory, time_it
from pinn import ops
from pinn.config import ModelConfig
from pinn.engine.optim import keras_adam_eps
from pinn.model import PtychoLoss, build_model

VARIANTS = ("eager", "channels_last", "compile", "bf16", "fp16")


def synthetic_batch(n: int, gridsize: int, batch: int, device: torch.device,
                    generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Realistic Poisson-like amplitudes (photon units, ~1e5 photons per pattern) and
    zero-mean group offsets, on ``device``."""
    c = gridsize**2
    phase = torch.randn(batch * c, n, n, generator=generator) * 0.3
    obj = torch.polar(0.6 + 0.2 * torch.rand(batch * c, n, n, generator=generator), phase)
    probe = ops.normalize_probe(ops.default_probe(n))
    amplitude = ops.diffract(obj * probe)
    amplitude = amplitude * (1e5 / amplitude.square().sum(dim=(-2, -1), keepdim=True)).sqrt()
    offsets = torch.randn(batch, c, 2, generator=generator) * 2
    offsets = offsets - offsets.mean(dim=1, keepdim=True)
    return {"amplitude": amplitude.reshape(batch, c, n, n).to(device),
            "offsets": offsets.to(device)}


def train_step_fn(model, loss_fn, optimizer, batch, autocast_dtype, device):
    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            loss, _ = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def step_flops(model, loss_fn, batch) -> int:
    """FLOPs of one forward + backward (the optimiser update is negligible)."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = loss_fn(model, batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def conv_ceiling(device: torch.device, repeats: int) -> dict:
    """GFLOP/s of a 3x3 convolution, 128 -> 128 channels on 16 x 32 x 32 (a layer of the
    encoder's size), forward + backward (input and weight gradients), and of a matmul."""
    x = torch.randn(16, 128, 32, 32, device=device, requires_grad=True)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(device)

    def run() -> None:
        conv(x).sum().backward()

    counter = FlopCounterMode(display=False)
    with counter:
        run()
    conv_flops = counter.get_total_flops()
    conv_time = time_it(run, device, repeats=repeats)["median_s"]
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    mm_time = time_it(lambda: a @ b, device, repeats=repeats)["median_s"]
    return {"conv3x3_gflops": conv_flops / conv_time / 1e9,
            "matmul_gflops": 2 * 2048**3 / mm_time / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--N", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--gridsize", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="*", default=[16, 64])
    parser.add_argument("--variants", nargs="*", default=["eager", "channels_last", "compile",
                                                          "bf16"], choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--n-filters-scale", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="JSONL file to append records to")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_from(args.device)
    rec = Recorder("bench_train", device, args.json)
    ceiling = conv_ceiling(device, repeats=5)
    rec.record("ceiling", {"op": "conv3x3 128->128 16x32x32 fwd+bwd; matmul 2048"}, ceiling)

    generator = torch.Generator().manual_seed(0)
    for n in args.N:
        for gridsize in args.gridsize:
            for batch_size in args.batch:
                batch = synthetic_batch(n, gridsize, batch_size, device, generator)
                for variant in args.variants:
                    if variant == "fp16" and device.type != "cuda":
                        continue
                    torch.manual_seed(0)
                    model = build_model(ModelConfig(size_px=n, gridsize=gridsize,
                                                    n_filters_scale=args.n_filters_scale),
                                        intensity_scale=float(1e5**0.5 / (n / 2))).to(device)
                    if variant == "channels_last":
                        model = model.to(memory_format=torch.channels_last)
                    loss_fn = PtychoLoss()
                    flops = step_flops(model, loss_fn, batch)
                    runner = torch.compile(model) if variant == "compile" else model
                    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3,
                                                 eps=keras_adam_eps(1))
                    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(variant)
                    step = train_step_fn(runner, loss_fn, optimizer, batch, dtype, device)
                    reset_peak_memory(device)
                    timing = time_it(step, device, repeats=args.steps, warmup=args.warmup)
                    seconds = timing["median_s"]
                    patterns = batch_size * gridsize**2
                    achieved = flops / seconds / 1e9
                    rec.record(
                        f"N={n} gs={gridsize} batch={batch_size} {variant}",
                        {"N": n, "gridsize": gridsize, "batch": batch_size, "variant": variant,
                         "n_filters_scale": args.n_filters_scale, "steps": args.steps},
                        {"step_s": seconds, "patterns_per_s": patterns / seconds,
                         "gflop_per_step": flops / 1e9, "achieved_gflops": achieved,
                         "fraction_of_conv3x3": achieved / ceiling["conv3x3_gflops"],
                         "fraction_of_matmul": achieved / ceiling["matmul_gflops"],
                         "peak_memory_mb": peak_memory_bytes(device) / 2**20,
                         "times_s": timing["times_s"]})


if __name__ == "__main__":
    main()
