"""pinn against the TensorFlow reference: the same model, data and batch, alternating in one run.

The reference side is the Keras/TF statement of the reference in ``tests/parity``
(``keras_model.py``: the CNN and the training model; ``tf_reference.py``: the physics ops in the
reference's NHWC conventions). What makes the comparison one of the same computation:

- the same network: the Keras CNN (N, gridsize, ``n_filters_scale`` 2, sigmoid, ``pad_object``)
  built from a seed, and pinn's generator with the Keras weights copied in layer by layer
  (``copy_weights``);
- the same physics: ``probe_big=False`` on both sides (the reference's dataclass default
  ``probe_big=True`` has its merge amplify the border branch 1000x, which pinn deliberately does
  not do, docs/DESIGN.md §8 deviation 2), the same normalised default probe (pinn's, handed to TF),
  the same intensity scale ``sqrt(1e5)/(N/2)``, the per-group merge (the reference's intended
  semantics; at HEAD a batch of 16 groups of 4 would take its B*C >= 64 defect branch);
- the same data: one ``bench_train.synthetic_batch`` (Poisson-scale amplitudes, ~1e5 photons per
  pattern, zero-mean group offsets), converted to the reference's layout: ``(B, N, N, C)`` images
  and ``coords_relative`` ``(B, 1, 2, C)`` = ``(x, y)`` of ``centroid - position``;
- the same loss (mean Poisson NLL without the Stirling term, plus 0 x MAE) and Adam (lr 1e-3;
  pinn uses ``keras_adam_eps`` per step, which makes torch's update Keras's);
- checked: each variant's first training step (same weights, same batch) must give the
  TF loss to a relative 1e-4, and the first inference call the same object (relative 1e-4 of
  its maximum); the records carry the measured differences.

Training step, TF: what ``model.fit`` runs, a compiled step (forward with ``training=True``,
loss, ``GradientTape`` gradients, ``optimizer.apply``) in ``tf.function``. Variants:
``graph`` (plain ``tf.function``: Keras 3 does not use XLA on a CPU-only machine, and the
translation is plain TF ops), ``fit-default`` (the same, with the translation compiled by XLA
as the reference's ``Translation`` layer forces it: its ``translate_xla`` runs under
``tf.function(jit_compile=True)``), ``xla`` (the whole step ``jit_compile=True``, the
reference's ``USE_XLA_COMPILE`` option). TF runs on the CPU with oneDNN on (TF's own default on
x86; the parity tests switch it off for determinism), ``--tf-onednn 0`` to compare.
pinn: ``eager`` (the default; its generator is channels-last), ``compile`` (``torch.compile``,
pinn's ``--compile``) and ``bf16`` (autocast to bfloat16, pinn's ``--amp`` on a CPU: the
convolutions run in bfloat16, the physics stays float32; its fastest setting on a CPU with
AVX512-BF16 but *not the same precision* as the reference, so its loss differs by ~1e-3 and
its records say ``same_precision: false``), all with pinn's ``PtychoLoss`` and Adam, as its
training loop runs them.

Inference: the reference's ``diffraction_to_obj`` (CNN with ``training=False``, polar
combination, merge, trim: the object only) in ``tf.function`` [with XLA] on ``--infer-batch``
groups (``predict``'s batch 32; the ``tf.data`` iteration of ``predict`` is left out, which
favours TF), against ``model(amplitude, offsets).object`` under ``torch.no_grad`` on the same
batch and on ``reconstruct``'s batch 64. pinn's forward also computes the predicted
diffraction (extraction, illumination, FFT) that ``.object`` does not need; the
``eager-object-only`` variant (``decode``, ``merge``, ``center_crop``) shows what that costs.

Timing: every variant warms up first (tracing, XLA and inductor compilation), then
``--rounds`` rounds in which each variant runs ``--steps`` steps in a row, the order of the
variants rotating from round to round; each step is timed on its own and the median over all
rounds is reported. Patterns/s = groups x gridsize**2 / step. Ratios are TF time / pinn time
(> 1: pinn faster). ``OMP_WAIT_POLICY=PASSIVE`` is set unless given: idle OpenMP threads of
torch would otherwise spin through TF's turns. The load average is recorded; the machine is
shared.

    python benchmarks/compare_tf.py                                  # gridsize 2 and 1
    python benchmarks/compare_tf.py --gridsize 2 --steps 2 --rounds 2 --tf-variants graph
    python benchmarks/compare_tf.py --profile                        # where the time goes

One JSON record per case goes to results/compare_tf.jsonl (or --json).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from pathlib import Path

TF_VARIANTS = ("graph", "fit-default", "xla")
PINN_VARIANTS = ("eager", "compile", "bf16")
TARGET = 2.5
RTOL = 1e-4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="pinn's device (TF runs on the CPU)")
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--gridsize", type=int, nargs="*", default=[2, 1])
    parser.add_argument("--batch", type=int, default=16, help="groups per training step")
    parser.add_argument("--infer-batch", type=int, default=32,
                        help="groups per inference call on both sides (predict's default)")
    parser.add_argument("--pinn-infer-batch", type=int, nargs="*", default=[64],
                        help="further pinn-only inference batches (reconstruct's default 64)")
    parser.add_argument("--n-filters-scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tf-variants", nargs="*", default=list(TF_VARIANTS),
                        choices=TF_VARIANTS)
    parser.add_argument("--pinn-variants", nargs="*", default=list(PINN_VARIANTS),
                        choices=PINN_VARIANTS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "infer"])
    parser.add_argument("--tf-onednn", choices=["0", "1"], default="1",
                        help="TF_ENABLE_ONEDNN_OPTS (TF's default on x86 is 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of both frameworks (default: theirs, all cores)")
    parser.add_argument("--profile", action="store_true",
                        help="also time the network, the physics and the optimiser apart on "
                             "both sides, and list pinn's top operators")
    parser.add_argument("--json", default=None, help="JSONL file to append records to")
    return parser.parse_args()


ARGS = parse_args()
# before TensorFlow and torch load: keras_model.py would otherwise set oneDNN off (setdefault)
os.environ["TF_ENABLE_ONEDNN_OPTS"] = ARGS.tf_onednn
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
from _common import Recorder, device_from, synchronize  # noqa: E402
from bench_train import step_flops, synthetic_batch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "parity"))
import keras_model as km  # noqa: E402
import tf_reference as tfr  # noqa: E402

import keras  # noqa: E402
from pinn import ops  # noqa: E402
from pinn.config import ModelConfig  # noqa: E402
from pinn.engine.optim import adam_steps_taken, keras_adam_eps  # noqa: E402
from pinn.model import PtychoLoss, build_model  # noqa: E402

if ARGS.threads:
    torch.set_num_threads(ARGS.threads)
    tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)


# ---------------------------------------------------------------------------------------------
# the two sides


class Case:
    """One configuration (N, gridsize, n_filters_scale): the reference's initial weights and
    the conversions between the layouts."""

    def __init__(self, n: int, gridsize: int, n_filters_scale: int, device: torch.device) -> None:
        self.n, self.gridsize, self.channels = n, gridsize, gridsize**2
        self.device = device
        self.config = ModelConfig(size_px=n, gridsize=gridsize, n_filters_scale=n_filters_scale,
                                  probe_big=False)
        self.scale = math.sqrt(1e5) / (n / 2)  # §3.2 with nphotons = 1e5 (synthetic_batch)
        self.keras_reference = self.keras_generator()
        self.initial_weights = self.keras_reference.model.get_weights()
        probe_model = build_model(self.config, intensity_scale=self.scale)
        self.probe = tf.constant(probe_model.probe.detach().numpy())  # the same complex64 probe
        self.log_scale = tf.constant(float(probe_model.log_scale), tf.float32)

    def keras_generator(self) -> km.KerasGenerator:
        generator = km.build_generator(self.n, self.gridsize,
                                       n_filters_scale=self.config.n_filters_scale,
                                       probe_big=False, seed=0)
        if hasattr(self, "initial_weights"):
            generator.model.set_weights(self.initial_weights)
        return generator

    def pinn_model(self):
        model = build_model(self.config, intensity_scale=self.scale)
        km.copy_weights(self.keras_reference, model.generator)  # keeps channels-last strides
        return model.to(self.device)

    def batch(self, groups: int, seed: int) -> dict:
        """The same batch in both layouts: pinn's on ``device``, TF's as constants."""
        pinn = synthetic_batch(self.n, self.gridsize, groups, torch.device("cpu"),
                               torch.Generator().manual_seed(seed))
        # offsets on a 1/16 px grid, exactly zero-mean per group (as test_model_parity does):
        # canvas coordinates are then exact in float32 on both sides, and the reference's
        # batch-mean re-centring is a no-op
        offsets = torch.round(16 * pinn["offsets"].double()) / 16
        offsets[:, -1] -= offsets.sum(dim=1)
        pinn["offsets"] = offsets.float()
        x = pinn["amplitude"].permute(0, 2, 3, 1).contiguous().numpy()  # (B, N, N, C)
        # (B, C, 2) (y, x) = position - centroid  ->  (B, 1, 2, C) (x, y) = centroid - position
        t = (-pinn["offsets"].flip(-1)).permute(0, 2, 1)[:, None].contiguous().numpy()
        return {"pinn": {k: v.to(self.device) for k, v in pinn.items()},
                "tf": (tf.constant(x), tf.constant(t)), "groups": groups}


@contextlib.contextmanager
def xla_translation():
    """Trace with the translation compiled by XLA, as the reference's Translation layer runs
    its ``translate_xla`` (``tf.function(jit_compile=True)``)."""
    plain = tfr._translate_real
    tfr._translate_real = tf.function(plain, jit_compile=True)
    try:
        yield
    finally:
        tfr._translate_real = plain


def trace(fn, args: tuple, variant: str):
    """Trace the tf.function now (with the variant's translation) so later calls reuse it."""
    with xla_translation() if variant == "fit-default" else contextlib.nullcontext():
        fn.get_concrete_function(*args)
    return fn


def tf_train_step(case: Case, data: dict, variant: str):
    """The reference's compiled training step (Keras fit's train_step, §6, §8)."""
    generator = case.keras_generator()
    variables = generator.model.trainable_variables
    optimizer = keras.optimizers.Adam(**km.ADAM)
    optimizer.build(variables)
    padded = case.config.padded_size_px

    @tf.function(jit_compile=variant == "xla")
    def step(x, t):
        with tf.GradientTape() as tape:
            *_, pred_amp, pred_intensity = km.reference_forward(
                generator, x, t, case.probe, case.log_scale, padded)
            loss = km.reference_loss(pred_amp, pred_intensity, x)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    trace(step, data["tf"], variant)
    return lambda: float(step(*data["tf"]))


def tf_infer(case: Case, data: dict, variant: str):
    """The reference's ``diffraction_to_obj`` (§5.4): the trimmed group object only."""
    generator = case.keras_generator()
    padded, n = case.config.padded_size_px, case.n

    @tf.function(jit_compile=variant == "xla")
    def infer(x, t):
        amp, phase = generator.model(x / tf.exp(case.log_scale), training=False)
        obj = tf.complex(amp * tf.cos(phase), amp * tf.sin(phase))
        canvas, _ = tfr._merge(obj, t, padded)
        return tfr._trim_reconstruction(canvas, n)[..., 0]

    trace(infer, data["tf"], variant)
    return lambda: infer(*data["tf"])


def pinn_train_step(case: Case, data: dict, variant: str):
    """pinn's training step as its loop runs it: PtychoLoss, backward, Adam with Keras's eps."""
    model = case.pinn_model()
    runner = torch.compile(model) if variant == "compile" else model
    dtype = torch.bfloat16 if variant == "bf16" else None
    loss_fn = PtychoLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=km.ADAM["learning_rate"],
                                 betas=(km.ADAM["beta_1"], km.ADAM["beta_2"]),
                                 eps=keras_adam_eps(1))
    batch = data["pinn"]

    def step() -> float:
        with torch.autocast(case.device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = loss_fn(runner, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        eps = keras_adam_eps(adam_steps_taken(optimizer) + 1)
        for group in optimizer.param_groups:
            group["eps"] = eps
        optimizer.step()
        return float(loss.detach())  # synchronises

    return step


def pinn_infer(case: Case, data: dict, variant: str):
    model = case.pinn_model().eval()
    amplitude, offsets = data["pinn"]["amplitude"], data["pinn"]["offsets"]
    if variant == "eager-object-only":  # what .object needs, without the predicted diffraction
        def infer():
            with torch.no_grad():
                patches = model.decode(amplitude)
                canvas = model.merge(patches, model.canvas_positions(offsets))
                out = ops.center_crop(canvas, model.size)
            synchronize(case.device)
            return out
        return infer
    runner = torch.compile(model) if variant == "compile" else model
    dtype = torch.bfloat16 if variant == "bf16" else None

    def infer():
        with torch.no_grad(), torch.autocast(case.device.type, dtype=dtype,
                                             enabled=dtype is not None):
            out = runner(amplitude, offsets).object
        synchronize(case.device)
        return out

    return infer


# ---------------------------------------------------------------------------------------------
# timing


def alternate(variants: dict, warmup: int, steps: int, rounds: int) -> tuple[dict, dict]:
    """Warm every variant up, then time ``rounds`` rounds of ``steps`` steps per variant with a
    rotating order. Returns (times per variant, first result per variant)."""
    first = {}
    for name, fn in variants.items():
        tick = time.perf_counter()
        first[name] = fn()
        for _ in range(warmup - 1):
            fn()
        print(f"  warm-up {name}: {time.perf_counter() - tick:.1f} s", flush=True)
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = variants[name]
            for _ in range(steps):
                tick = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - tick)
    return times, first


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def threads() -> dict:
    return {"torch_intra_op": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads(),
            # 0 = TF's default: a pool as large as the machine's logical cores
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "cores": os.cpu_count()}


def environment() -> dict:
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "threads": threads()}


def summarise(rec: Recorder, kind: str, case: Case, groups_of: dict, times: dict,
              checks: dict, config: dict, load: dict) -> list[tuple]:
    """One record per variant, with ratios to every TF variant. Returns table rows."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    tf_names = [name for name in medians if name.startswith("tf-")]
    best_tf = min(tf_names, key=medians.get) if tf_names else None
    rows = []
    for name, seconds in medians.items():
        patterns = groups_of[name] * case.channels
        rate = patterns / seconds
        figures = {"step_s": seconds, "patterns_per_s": rate,
                   "min_s": min(times[name]), "iqr_s": _iqr(times[name])}
        if not name.startswith("tf-"):
            for tf_name in tf_names:
                tf_rate = groups_of[tf_name] * case.channels / medians[tf_name]
                figures[f"ratio_vs_{tf_name}"] = rate / tf_rate
            if best_tf:
                ratio = figures[f"ratio_vs_{best_tf}"]
                figures.update({"best_tf": best_tf, "ratio_vs_best_tf": ratio,
                                "meets_target_vs_best_tf": ratio >= TARGET})
        figures.update(checks.get(name, {}))
        figures.update(load)
        figures["times_s"] = times[name]
        rec.record(f"{kind} N={case.n} gs={case.gridsize} groups={groups_of[name]} {name}",
                   {**config, "kind": kind, "variant": name, "groups": groups_of[name]},
                   figures)
        rows.append((kind, case.gridsize, name, groups_of[name], seconds, rate,
                     figures.get("ratio_vs_best_tf")))
    return rows


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


# ---------------------------------------------------------------------------------------------
# the phases


def run_train(rec: Recorder, case: Case, args, config: dict) -> list[tuple]:
    data = case.batch(args.batch, seed=0)
    variants = {}
    for v in args.tf_variants:
        variants[f"tf-{v}"] = tf_train_step(case, data, v)
    for v in args.pinn_variants:
        variants[f"pinn-{v}"] = pinn_train_step(case, data, v)
    load_start = loadavg()
    times, first = alternate(variants, args.warmup, args.steps, args.rounds)
    load = {"loadavg_start": load_start, "loadavg_end": loadavg()}
    reference = next((first[n] for n in first if n.startswith("tf-")), None)
    checks = {}
    for name, loss in first.items():
        rel = abs(loss - reference) / abs(reference) if reference is not None else None
        checks[name] = {"first_loss": loss, "first_loss_rel_to_tf": rel,
                        "same_loss": rel is not None and rel <= RTOL}
    for name, check in checks.items():
        check["same_precision"] = not name.endswith("bf16")
        if not check["same_loss"]:
            print(f"  WARNING: {name}'s first loss {check['first_loss']:.7g} differs from TF's "
                  f"{reference:.7g} by {check['first_loss_rel_to_tf']:.2e} (relative)")
    # FLOPs of one forward + backward (pinn's count; the network, which dominates, is the same
    # on both sides)
    flops = step_flops(case.pinn_model(), PtychoLoss(), data["pinn"])
    for name in checks:
        checks[name]["gflop_per_step"] = flops / 1e9
        checks[name]["achieved_gflops"] = flops / 1e9 / statistics.median(times[name])
    groups = {name: args.batch for name in variants}
    return summarise(rec, "train", case, groups, times, checks,
                     {**config, "batch": args.batch}, load)


def run_infer(rec: Recorder, case: Case, args, config: dict) -> list[tuple]:
    data = {args.infer_batch: case.batch(args.infer_batch, seed=1)}
    for groups in args.pinn_infer_batch:
        data.setdefault(groups, case.batch(groups, seed=1))
    variants, groups_of = {}, {}
    for v in args.tf_variants:
        variants[f"tf-{v}"] = tf_infer(case, data[args.infer_batch], v)
        groups_of[f"tf-{v}"] = args.infer_batch
    pinn_variants = list(args.pinn_variants) + ["eager-object-only"]
    for v in pinn_variants:
        for groups in dict.fromkeys([args.infer_batch] + list(args.pinn_infer_batch)):
            if v == "eager-object-only" and groups != args.infer_batch:
                continue
            name = f"pinn-{v}" + (f"-b{groups}" if groups != args.infer_batch else "")
            variants[name] = pinn_infer(case, data[groups], v)
            groups_of[name] = groups
    load_start = loadavg()
    times, first = alternate(variants, args.warmup, args.steps, args.rounds)
    load = {"loadavg_start": load_start, "loadavg_end": loadavg()}
    reference = next((first[n].numpy() for n in first if n.startswith("tf-")), None)
    checks = {}
    for name, out in first.items():
        if reference is None or groups_of[name] != args.infer_batch:
            continue
        value = out.numpy() if name.startswith("tf-") else out.cpu().numpy()
        rel = float(np.abs(value - reference).max() / np.abs(reference).max())
        checks[name] = {"object_rel_to_tf": rel, "same_object": rel <= RTOL,
                        "same_precision": "bf16" not in name}
        if rel > RTOL:
            print(f"  WARNING: {name}'s object differs from TF's by {rel:.2e} of its maximum")
    return summarise(rec, "infer", case, groups_of, times, checks, config, load)


def profile(rec: Recorder, case: Case, args, config: dict) -> None:
    """Where the training step's time goes on each side: the network (forward + backward),
    the physics (forward + backward from fixed decoder outputs), the optimiser update; and
    pinn's top operators (torch.profiler)."""
    data = case.batch(args.batch, seed=0)
    x, t = data["tf"]
    padded = case.config.padded_size_px
    generator = case.keras_generator()
    variables = generator.model.trainable_variables
    amp0, phase0 = generator.model(x / tf.exp(case.log_scale), training=False)
    optimizer = keras.optimizers.Adam(**km.ADAM)
    optimizer.build(variables)
    grads0 = [tf.zeros_like(v) + 1e-3 for v in variables]

    def tf_parts(jit: bool) -> dict:
        @tf.function(jit_compile=jit)
        def network(x):
            with tf.GradientTape() as tape:
                amp, phase = generator.model(x / tf.exp(case.log_scale), training=True)
                total = tf.reduce_sum(amp) + tf.reduce_sum(phase)
            return tape.gradient(total, variables)

        @tf.function(jit_compile=jit)
        def physics(amp, phase, x, t):
            with tf.GradientTape() as tape:
                tape.watch([amp, phase])
                _, pred_amp, pred_intensity = km.reference_physics(
                    amp, phase, t, case.probe, tf.exp(case.log_scale), padded)
                loss = km.reference_loss(pred_amp, pred_intensity, x)
            return tape.gradient(loss, [amp, phase])

        @tf.function(jit_compile=jit)
        def adam(grads):
            optimizer.apply(grads, variables)

        parts = {"network fwd+bwd": lambda: network(x),
                 "physics+loss fwd+bwd": lambda: physics(amp0, phase0, x, t),
                 "adam": lambda: adam(grads0)}
        return {k: _median_time(fn, args) for k, fn in parts.items()}

    model = case.pinn_model()
    batch = data["pinn"]
    params = list(model.parameters())
    amplitude = batch["amplitude"]
    with torch.no_grad():
        amp_t, phase_t = (v.clone() for v in model.generator(amplitude / model.intensity_scale))
    positions = model.canvas_positions(batch["offsets"])
    torch_opt = torch.optim.Adam(params, lr=1e-3, eps=keras_adam_eps(1))

    def network(dtype=None):
        with torch.autocast(case.device.type, dtype=dtype, enabled=dtype is not None):
            amp, phase = model.generator(amplitude / model.intensity_scale)
        grads = torch.autograd.grad(amp.sum() + phase.sum(), params)
        synchronize(case.device)
        return grads

    def physics():
        amp = amp_t.clone().requires_grad_(True)
        phase = phase_t.clone().requires_grad_(True)
        patches = torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))
        canvas = model.merge(patches, positions)
        waves = ops.illuminate(ops.extract_patches(canvas, positions, model.size),
                               model.probe, model.probe_mask)
        pred = model.intensity_scale * ops.diffract(waves)
        loss = ops.poisson_nll(pred.square(), amplitude.square()).mean()
        grads = torch.autograd.grad(loss, [amp, phase])
        synchronize(case.device)
        return grads

    def adam():
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        torch_opt.step()

    rows = {"tf-graph": tf_parts(False), "tf-xla": tf_parts(True),
            "pinn-eager": {"network fwd+bwd": _median_time(network, args),
                           "physics+loss fwd+bwd": _median_time(physics, args),
                           "adam": _median_time(adam, args)},
            "pinn-bf16": {"network fwd+bwd": _median_time(lambda: network(torch.bfloat16), args),
                          "physics+loss fwd+bwd": math.nan, "adam": math.nan}}
    print(f"\nprofile N={case.n} gs={case.gridsize} batch={args.batch} (median ms)")
    print(f"{'part':24s}" + "".join(f"{k:>12s}" for k in rows))
    for part in rows["pinn-eager"]:
        print(f"{part:24s}" + "".join(f"{rows[k][part] * 1e3:12.1f}" for k in rows))
    rec.record(f"profile N={case.n} gs={case.gridsize} groups={args.batch}",
               {**config, "kind": "profile", "groups": args.batch},
               {f"{side} {part} s": seconds for side, parts in rows.items()
                for part, seconds in parts.items() if not math.isnan(seconds)})

    loss_fn = PtychoLoss()
    optimizer_t = torch.optim.Adam(params, lr=1e-3, eps=keras_adam_eps(1))

    def step():
        loss, _ = loss_fn(model, batch)
        optimizer_t.zero_grad(set_to_none=True)
        loss.backward()
        optimizer_t.step()

    for _ in range(2):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print("\npinn eager training step, top operators by self CPU time (3 steps):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18,
                                    max_name_column_width=40))


def _median_time(fn, args) -> float:
    for _ in range(args.warmup):
        fn()
    times = []
    for _ in range(max(args.steps, 3)):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def main() -> None:
    args = ARGS
    device = device_from(args.device)
    rec = Recorder("compare_tf", device, args.json)
    print(f"load average {loadavg()}; {environment()}", flush=True)
    rows = []
    for gridsize in args.gridsize:
        case = Case(args.N, gridsize, args.n_filters_scale, device)
        config = {"N": args.N, "gridsize": gridsize, "n_filters_scale": args.n_filters_scale,
                  "probe_big": False, "steps": args.steps, "rounds": args.rounds,
                  "warmup": args.warmup, "environment": environment()}
        if "train" not in args.skip:
            print(f"training step, N={args.N} gridsize={gridsize} batch={args.batch}", flush=True)
            rows += run_train(rec, case, args, config)
        if "infer" not in args.skip:
            print(f"inference, N={args.N} gridsize={gridsize}", flush=True)
            rows += run_infer(rec, case, args, config)
        if args.profile:
            profile(rec, case, args, config)
    print(f"\n{'':6s}{'gs':>3s} {'variant':26s}{'groups':>7s}{'ms/step':>10s}"
          f"{'patterns/s':>12s}{'x best TF':>11s}")
    for kind, gs, name, groups, seconds, rate, ratio in rows:
        shown = f"{ratio:11.2f}" if ratio is not None else f"{'':11s}"
        print(f"{kind:6s}{gs:3d} {name:26s}{groups:7d}{seconds * 1e3:10.1f}{rate:12.1f}{shown}")
    print(f"load average {loadavg()}; target: pinn >= {TARGET}x the best TF variant")


if __name__ == "__main__":
    main()
