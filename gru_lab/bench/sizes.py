"""gru-lab bench --sizes: train and inference throughput over a grid of sizes, against plain Keras and PyTorch,
and the recurrent products' rate against the machine's own peak.

The grid: units x sequence length x batch (UNITS, STEPS, BATCHES), for each cell, on synthetic token ids (an
Embedding in front, the IMDB tutorial's vocabulary and width) and on real-valued steps (FEATURES values a step).
For each (cell, inputs), each variant runs in a process of its own over the grid's sizes, the cheapest first:
gru-lab (the kernel plan's loops, as `gru-lab train` runs them), plain Keras (Keras's layers and its default
compile: no XLA on a CPU) and PyTorch (torch.nn, never importing TensorFlow). At each size the worker builds
the model (Input/Embedding -> recurrent layer -> Dense(1)), takes one warm-up step, then times train steps
(forward, backward and an Adam update on one fixed batch, so that no input pipeline is timed) and inference
calls, each for at least min_seconds; the peak RSS during the size; and, in the same process and through the
same library, the products the recurrence cannot do without, done alone: `chain` (steps dependent
(batch, units) @ (units, gates*units) products, as a loop must do them) and `batched` (the same products as one
matmul, up to PEAK_ROWS rows: the library's peak on this machine at that width).

The rate of the recurrent products is their exact FLOP count (recurrent_flops) over the measured time of the
whole step: a lower bound of the products' own rate, and its share of the batched peak says how much of the
step the products alone, at peak, would take. Returns DataFrames; report/sizes.py renders them.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gru_lab import cells as cell_names
from gru_lab.bench.workers import load_average, worker_answer
from gru_lab.errors import GruLabError
from gru_lab.training.memory import peak_rss_mib, reset_peak_rss

UNITS = (32, 128, 512)
STEPS = (50, 500, 2000)
BATCHES = (16, 128)
INPUTS = ("tokens", "real")
GRIDS = ("quick", "reduced", "full")
# The reduced default keeps the sizes with units x steps up to this: every sequence length at 32 units (sensor and
# series users), 50 and 500 steps at 128, 50 at 512 (text users), both batches (16: teachers); 12 of 18 sizes,
# dropping the three costliest pairs. About 20 minutes on 2 idle cores is the aim (docs/benchmarks.md).
REDUCED_WORK = 64_000
QUICK = {"units": (32, 128), "steps": (50, 500), "batches": (16,)}  # checks the bench, not the speed
VOCABULARY = 10_000  # token inputs: the IMDB tutorial's num_words ...
EMBEDDING_DIM = 128  # ... and its Embedding(max_features, 128)
FEATURES = 8  # real-valued inputs: values a step (a few sensor channels)
PEAK_ROWS = 8192  # the batched peak's product has at most this many rows (2000 x 128 rows would be GBs)
MIN_SECONDS = {"quick": 0.3, "reduced": 1.0, "full": 1.0}  # timing per measurement, after a warm-up
# `--only KEY=V[,V...]` (repeatable) cuts the chosen grid to some of its values, e.g. one size, or the 2,000-step
# points alone, so that one point can be measured (or re-measured after a change) without the whole grid.
ONLY_KEYS = {"units": UNITS, "steps": STEPS, "batch": BATCHES, "inputs": INPUTS}
MAX_REPEATS = 50

GRU_LAB, KERAS, TORCH = "gru-lab", "keras", "pytorch"
# `--alternatives`: gru-lab's layers with its other CPU kernel, the fused TensorFlow loop under XLA (train.xla on
# turns the compiled loops off), so that each size shows whether the plan chose the faster of its own kernels.
FUSED = "gru-lab fused+xla"
VARIANTS = (GRU_LAB, KERAS, TORCH)
PEERS = (KERAS, TORCH)
# The targets, wherever gru-lab's loops run (not on Keras's loop): name -> (ratio column, bound, reading).
TARGETS = {
    "train>=1.5x keras": ("train_vs_keras", 1.5),
    "train>pytorch": ("train_vs_pytorch", 1.0),
    "infer>=2x keras": ("infer_vs_keras", 2.0),
    "products>=50% of peak": ("train_share", 0.5),  # at 128 units and up
    "memory<=keras": ("memory_vs_keras", 1.0),  # at 2,000 steps; a bound from above
    "plan's kernel fastest": ("train_vs_fused", 1.0),  # with --alternatives: the plan's loops against fused+xla
}

PointHook = Callable[[str, str, str], None]  # (cell, inputs, variant) as each worker starts


@dataclass(frozen=True, order=True)
class Size:
    units: int
    steps: int
    batch: int


@dataclass
class SizesResult:
    rows: Any  # pandas DataFrame: one row per (cell, inputs, size, variant)
    ratios: Any  # pandas DataFrame: one row per (cell, inputs, size): gru-lab against each peer, targets missed
    meta: dict[str, Any]  # grid, machine (ISA, cores), load, versions
    folder: Path
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- the plan and the formulas


def work(size: Size) -> int:
    """The recurrent products' multiply-adds of one forward pass, per gate (batch x steps x units^2): the order
    in which the grid runs, the cheapest first."""
    return size.batch * size.steps * size.units ** 2


def parse_only(items: list[str] | None) -> dict[str, tuple]:
    """`--only KEY=V[,V...]` items -> {key: values} (ONLY_KEYS; a key given twice keeps the values of both)."""
    only: dict[str, tuple] = {}
    for item in items or []:
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in ONLY_KEYS:
            raise GruLabError(f"bench --sizes: --only {item!r}: the key must be one of {list(ONLY_KEYS)}, as in "
                              f"--only steps=2000. Got {key!r}.")
        allowed = ONLY_KEYS[key]
        values = []
        for value in (v.strip() for v in text.split(",")):
            chosen = int(value) if key != "inputs" and value.isdigit() else value
            if chosen not in allowed:
                raise GruLabError(f"bench --sizes: --only {item!r}: {key} must be among {list(allowed)}. "
                                  f"Got {value!r}.")
            values.append(chosen)
        only[key] = tuple(dict.fromkeys(only.get(key, ()) + tuple(values)))
    return only


def grid_sizes(grid: str, only: dict[str, tuple] | None = None) -> list[Size]:
    """The sizes of a grid ("quick", "reduced", "full"), the cheapest first; `only` (parse_only) keeps those
    whose units, steps and batch are among its values."""
    if grid not in GRIDS:
        raise GruLabError(f"bench --sizes: the grid must be one of {list(GRIDS)}. Got {grid!r}.")
    if grid == "quick":
        sizes = [Size(u, t, b) for u in QUICK["units"] for t in QUICK["steps"] for b in QUICK["batches"]]
    else:
        sizes = [Size(u, t, b) for u in UNITS for t in STEPS for b in BATCHES
                 if grid == "full" or u * t <= REDUCED_WORK]
    only = only or {}
    sizes = [s for s in sizes if all(getattr(s, k) in only.get(k, (getattr(s, k),)) for k in ("units", "steps",
                                                                                            "batch"))]
    if not sizes:
        given = " ".join(f"{k}={','.join(map(str, v))}" for k, v in only.items())
        held = ", ".join(f"{k} {v}" for k, v in grid_values(grid).items())
        raise GruLabError(f"bench --sizes: --only {given} leaves no size of the {grid} grid (it holds {held}); "
                          "--full has every size.")
    return sorted(sizes, key=lambda s: (work(s), s))


def grid_values(grid: str) -> dict[str, list[int]]:
    """The units, steps and batches a grid holds."""
    sizes = grid_sizes(grid)
    return {k: sorted({getattr(s, k) for s in sizes}) for k in ("units", "steps", "batch")}


def plan_jobs(cells: list[str], grid: str, inputs: tuple[str, ...] = INPUTS,
              variants: tuple[str, ...] = VARIANTS, only: dict[str, tuple] | None = None) -> list[dict[str, Any]]:
    """One job per (cell, inputs, variant): a worker process that measures every size of the grid (cut to
    `only`'s values, parse_only)."""
    unknown = [c for c in cells if c not in cell_names.CELLS]
    if unknown or not cells:
        raise GruLabError(f"bench --sizes: cells must be among {list(cell_names.NAMES)}. Got {unknown or cells}.")
    wrong = [i for i in inputs if i not in INPUTS]
    if wrong or not inputs:
        raise GruLabError(f"bench --sizes: inputs must be among {list(INPUTS)}. Got {wrong or list(inputs)}.")
    sizes = [asdict(s) for s in grid_sizes(grid, only)]
    inputs = tuple(i for i in inputs if i in (only or {}).get("inputs", inputs))
    return [{"cell": c, "inputs": i, "variant": v, "sizes": sizes, "min_seconds": MIN_SECONDS[grid]}
            for c in cells for i in inputs for v in variants]


def recurrent_flops(cell: str, size: Size, training: bool) -> int:
    """FLOPs of the recurrent products (h @ U, gates side by side) in one call on a batch: 2 b t u (g u) forward;
    a train step adds the two products of the backward pass (dz @ U^T for dh, h^T @ dz for dU): 3x."""
    gates = cell_names.CELLS[cell].gates
    forward = 2 * size.batch * size.steps * size.units * gates * size.units
    return 3 * forward if training else forward


def chain_flops(cell: str, size: Size) -> int:
    """FLOPs of the chained peak: steps products of (batch, units) @ (units, gates*units), the forward's."""
    return recurrent_flops(cell, size, training=False)


def batched_rows(size: Size) -> int:
    """Rows of the batched peak's one product: batch x steps, at most PEAK_ROWS."""
    return min(size.batch * size.steps, PEAK_ROWS)


def batched_flops(cell: str, size: Size) -> int:
    return 2 * batched_rows(size) * size.units * cell_names.CELLS[cell].gates * size.units


def gflops(flops: float, seconds: float | None) -> float | None:
    return flops / seconds / 1e9 if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def missed_targets(r: dict[str, Any]) -> list[str]:
    """The targets a ratios row misses (TARGETS). None where a figure is missing (a peer not run): not judged.
    Nothing is judged where gru-lab's plan ran Keras's own loop."""
    if "keras-loop" in str(r.get("kernel") or ""):
        return []
    missed = []
    for name, (column, bound) in TARGETS.items():
        value = r.get(column)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if name.startswith("products") and r["units"] < 128:
            continue
        if name.startswith("memory"):
            if r["steps"] >= 2000 and value > bound:
                missed.append(name)
        elif name.startswith("plan"):
            if value < bound and "compiled" in str(r.get("kernel")):  # only where the plan chose another kernel
                missed.append(name)
        elif name == "train>pytorch":
            if value <= bound:
                missed.append(name)
        elif value < bound:
            missed.append(name)
    return missed


def ratios_frame(rows):
    """Per (cell, inputs, size): gru-lab's train and inference samples/s over each peer's and over the best peer's,
    its memory growth over Keras's, its products' share of the peak, and the targets missed."""
    import pandas as pd

    out = []
    keys = ["cell", "inputs", "units", "steps", "batch"]
    for key, group in rows.groupby(keys, sort=False):
        by = {r["variant"]: r for r in group.to_dict(orient="records") if not isinstance(r.get("error"), str)}
        if GRU_LAB not in by:
            continue
        g = by[GRU_LAB]
        rec: dict[str, Any] = dict(zip(keys, key))
        rec["kernel"] = g.get("kernel")
        for what in ("train", "infer"):
            column = f"{what}_samples_per_s"
            for peer in PEERS:
                rec[f"{what}_vs_{peer}"] = ratio(g[column], by[peer][column]) if peer in by else None
            peers = {p: by[p][column] for p in PEERS if p in by and by[p][column]}
            best = max(peers, key=peers.get) if peers else None
            rec[f"{what}_best_peer"] = best
            rec[f"{what}_vs_best_peer"] = ratio(g[column], peers[best]) if best else None
        rec["memory_vs_keras"] = ratio(g["grown_mib"], by[KERAS]["grown_mib"]) if KERAS in by else None
        for what in ("train", "infer"):
            column = f"{what}_samples_per_s"
            rec[f"{what}_vs_fused"] = ratio(g[column], by[FUSED][column]) if FUSED in by else None
        rec["train_share"] = g.get("train_share")
        rec["infer_share"] = g.get("infer_share")
        rec["targets_missed"] = ", ".join(missed_targets(rec))
        out.append(rec)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- the bench (parent process)


def run_sizes(cells: list[str], grid: str = "reduced", *, inputs: tuple[str, ...] = INPUTS, torch: bool = True,
              output_dir: Path = Path("results"), folder: Path | None = None, on_job: PointHook | None = None,
              isa: str = "native", alternatives: bool = False, only: dict[str, tuple] | None = None) -> SizesResult:
    """Every job of plan_jobs in its own process, one after the other; a failed worker is a note and the bench
    goes on. torch=False (or PyTorch not installed: a note) leaves the pytorch rows out."""
    import pandas as pd

    from gru_lab.bench import torch_peer
    from gru_lab.bench.bench import BUSY_LOAD
    from gru_lab.bench.isa import cpu_flags, describe, machine_isa, worker_env

    notes: list[str] = []
    variants = [GRU_LAB] + ([FUSED] if alternatives else []) + [KERAS]
    if torch and torch_peer.torch_installed():
        variants.append(TORCH)
    elif torch:
        notes.append(torch_peer.INSTALL)
    jobs = plan_jobs(cells, grid, inputs, tuple(variants), only)
    inputs = tuple(dict.fromkeys(j["inputs"] for j in jobs))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env = worker_env(isa)
    load_start, t0 = load_average(), time.perf_counter()
    rows: list[dict[str, Any]] = []
    for job in jobs:
        if on_job:
            on_job(job["cell"], job["inputs"], job["variant"])
        try:
            answer = worker_answer("gru_lab.bench.sizes", {**job, "threads": os.cpu_count()},
                                   f"bench --sizes worker for {job['cell']}/{job['inputs']}/{job['variant']}",
                                   env=env)
        except RuntimeError as exc:
            lines = str(exc).strip().splitlines()
            notes.append(f"{' '.join(dict.fromkeys([lines[0], lines[-1]]))}: no rows for it.")
            continue
        rows += answer["rows"]
        if job["variant"] == TORCH:
            lib = answer.get("library", {})
            said = (f"pytorch {lib.get('version')}, {lib.get('threads')} intra-op threads, OMP_WAIT_POLICY "
                    f"{lib.get('omp_wait_policy')} (OpenMP's default spins at a barrier: fastest on free cores, many "
                    "times slower where another process holds one)")
            if said not in notes:
                notes.append(said)
    frame = pd.DataFrame(rows)
    flags = cpu_flags()
    loads = [v for v in ([load_start] + frame.get("load_before", pd.Series(dtype=float)).tolist()
                         + frame.get("load_after", pd.Series(dtype=float)).tolist()) if v is not None and v == v]
    meta = {
        "started": started, "seconds": round(time.perf_counter() - t0, 1), "grid": grid, "cells": cells,
        "inputs": list(inputs), "variants": variants, "sizes": [asdict(s) for s in grid_sizes(grid, only)],
        "only": {k: list(v) for k, v in (only or {}).items()},
        "isa": isa, "machine_isa": machine_isa(flags), "isa_text": describe(flags, isa), "isa_env": env,
        "cpu_count": os.cpu_count(), "load_min": min(loads, default=None), "load_max": max(loads, default=None),
        "vocabulary": VOCABULARY, "embedding_dim": EMBEDDING_DIM, "features": FEATURES,
        "min_seconds": MIN_SECONDS[grid], "peak_rows": PEAK_ROWS,
    }
    if loads and max(loads) > BUSY_LOAD:
        notes.append(f"other work shared the CPU while this ran (1-minute load average {min(loads)} to {max(loads)} "
                     f"on {os.cpu_count()} cores): the variants ran one after the other, so their ratios are "
                     "noisy and the absolute rates inflated.")
    folder = folder or output_dir / "bench-sizes" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    ratios = ratios_frame(frame) if not frame.empty else pd.DataFrame()
    return SizesResult(rows=frame, ratios=ratios, meta=meta, folder=folder, notes=notes)


# ----------------------------------------------------------------------------- the workers' side


def point_config(cell: str, inputs: str, size: Size, variant: str):
    """The ExperimentConfig of one point: the data section only satisfies the schema (the worker makes the
    arrays); the model is the tutorial's (one recurrent layer, last state, Dense head), sized."""
    from gru_lab.config import config_from_raw

    data = {"name": "imdb", "num_words": VOCABULARY, "maxlen": size.steps, **({"as_real": True}
                                                                              if inputs == "real" else {})}
    raw = {"name": "bench-sizes", "seed": 0, "data": data,
           "model": {"cell": cell, "units": size.units, **({"embedding_dim": EMBEDDING_DIM} if inputs == "tokens"
                                                            else {}),
                     **({"loops": "keras"} if variant == KERAS else {})},
           "train": {"batch_size": size.batch, "optimizer": "adam", "learning_rate": 0.001,
                     **({"xla": "on"} if variant == FUSED else {})}}
    return config_from_raw(raw, "bench --sizes")


def point_spec(inputs: str, size: Size):
    from gru_lab.data.base import InputSpec

    if inputs == "tokens":
        return InputSpec("binary", "tokens", size.steps, 1, 1, VOCABULARY, "pre")
    return InputSpec("binary", "real", size.steps, FEATURES, 1, None, None)


def point_arrays(inputs: str, size: Size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One fixed batch: token ids in [1, VOCABULARY) or standard-normal steps, and 0/1 labels."""
    rng = np.random.default_rng(seed)
    if inputs == "tokens":
        x = rng.integers(1, VOCABULARY, (size.batch, size.steps)).astype(np.int32)
    else:
        x = rng.standard_normal((size.batch, size.steps, FEATURES)).astype(np.float32)
    return x, rng.integers(0, 2, (size.batch, 1)).astype(np.float32)


def peak_weights(cell: str, units: int, seed: int = 0) -> np.ndarray:
    """(units, gates*units) float32 whose first units columns are orthogonal, so that the chained products keep
    h's norm (no overflow, no denormals over 2,000 steps)."""
    rng = np.random.default_rng(seed)
    gates = cell_names.CELLS[cell].gates
    q, _ = np.linalg.qr(rng.standard_normal((units, units)))
    rest = rng.standard_normal((units, (gates - 1) * units)) / np.sqrt(units)
    return np.concatenate([q, rest], axis=1).astype(np.float32)


def timed(fn: Callable[[], Any], min_seconds: float, max_repeats: int = MAX_REPEATS) -> float:
    """Seconds per call of fn (which must block until its work is done), over at least 2 calls and min_seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if (n >= 2 and elapsed >= min_seconds) or n >= max_repeats:
            return elapsed / n


def _measure(cell: str, inputs: str, size: Size, variant: str, build: Callable, min_seconds: float) -> dict:
    """The row of one point: build() makes the model and returns (train_step, infer, peak_chain, peak_batched,
    kernel), each callable blocking until done."""
    gc.collect()
    reset_peak_rss()
    start_rss, before = peak_rss_mib(), load_average()
    t0 = time.perf_counter()
    train_step, infer, chain, batched, kernel = build()
    train_step()
    infer()
    warmup = time.perf_counter() - t0
    train_s = timed(train_step, min_seconds)
    infer_s = timed(infer, min_seconds / 2)
    peak = peak_rss_mib()
    chain()  # traced (TensorFlow) or first run, untimed, as the model's steps were
    batched()
    chain_s = timed(chain, min_seconds / 4)
    batched_s = timed(batched, min_seconds / 4)
    peak_gflops = gflops(batched_flops(cell, size), batched_s)
    row = {"cell": cell, "inputs": inputs, **asdict(size), "variant": variant, "kernel": kernel(),
           "train_step_s": train_s, "infer_s": infer_s,
           "train_samples_per_s": size.batch / train_s, "infer_samples_per_s": size.batch / infer_s,
           "warmup_s": warmup, "peak_rss_mib": peak, "rss_start_mib": start_rss,
           "grown_mib": peak - start_rss if peak is not None and start_rss is not None else None,
           "train_gflops": gflops(recurrent_flops(cell, size, True), train_s),
           "infer_gflops": gflops(recurrent_flops(cell, size, False), infer_s),
           "chain_gflops": gflops(chain_flops(cell, size), chain_s), "peak_gflops": peak_gflops,
           "load_before": before, "load_after": load_average(), "error": None}
    row["train_share"] = ratio(row["train_gflops"], peak_gflops)
    row["infer_share"] = ratio(row["infer_gflops"], peak_gflops)
    return row


def _tf_builder(cell: str, inputs: str, size: Size, variant: str):
    def build():
        import keras
        import tensorflow as tf

        from gru_lab.models.build import build_model
        from gru_lab.training.device import applied, kernels_used, prepare
        from gru_lab.training.fit import _compile_inference, loss_and_metrics, make_optimizer, set_seed

        keras.backend.clear_session()
        cfg = point_config(cell, inputs, size, variant)
        spec = point_spec(inputs, size)
        loss, metrics = loss_and_metrics(spec.task)
        if variant in (GRU_LAB, FUSED):  # as training.fit runs it: the plan's loops, XLA and determinism
            setup = prepare(cfg, spec)
            plan = setup.plan
            set_seed(cfg.train_seed, deterministic_ops=not plan.xla)
            with applied(setup):
                model = build_model(cfg.model, spec)
            model.compile(optimizer=make_optimizer(cfg), loss=loss, metrics=metrics, jit_compile=plan.xla)
        else:  # plain Keras, compiled as the tutorial's script: Keras's default (no XLA on a CPU)
            from tensorflow.python.framework import config as tf_config

            plan = setup = None
            keras.utils.set_random_seed(cfg.train_seed)
            tf_config.disable_op_determinism()
            model = build_model(cfg.model, spec)
            model.compile(optimizer=make_optimizer(cfg, keras_updates=True), loss=loss, metrics=metrics)
        x, y = (tf.constant(a) for a in point_arrays(inputs, size))
        state: dict[str, Any] = {"inference_compiled": False}

        def run(fn):
            if setup is None:
                return fn()
            with applied(setup):
                return fn()

        def train_step():
            run(lambda: model.train_on_batch(x, y))

        def infer():
            if plan is not None and plan.xla_inference and not plan.xla and not state["inference_compiled"]:
                _compile_inference(model)
                state["inference_compiled"] = True
            run(lambda: model.predict_on_batch(x))

        w = tf.constant(peak_weights(cell, size.units))
        h0 = tf.constant(np.random.default_rng(1).standard_normal((size.batch, size.units)).astype(np.float32))
        rows = tf.constant(np.random.default_rng(2).standard_normal((batched_rows(size), size.units))
                           .astype(np.float32))
        units, steps = size.units, size.steps

        @tf.function
        def chain_fn(h):
            return tf.while_loop(lambda i, _: i < steps, lambda i, h: (i + 1, tf.matmul(h, w)[:, :units]),
                                 (tf.constant(0), h), parallel_iterations=1)[1]

        @tf.function
        def batched_fn(a):
            return tf.reduce_sum(tf.matmul(a, w)[:1, :1])  # one scalar back: the product, not a copy, is timed

        def kernel() -> str:
            if plan is None:
                return "keras-loop"
            used = kernels_used(model, plan.device)
            train = "/".join(sorted({k["kernel"] for k in used})) + ("+xla" if plan.xla else "")
            inference = "/".join(sorted({k["inference"] for k in used})) + ("+xla" if plan.xla_inference else "")
            return f"{train}, inference {inference}"

        return (train_step, infer, lambda: chain_fn(h0).numpy(), lambda: batched_fn(rows).numpy(), kernel)

    return build


def _torch_builder(cell: str, inputs: str, size: Size):
    def build():
        import torch
        from torch import nn

        from gru_lab.bench.torch_peer import TORCH_MODULES, torch_model

        torch.manual_seed(0)
        cfg = point_config(cell, inputs, size, TORCH)
        model = torch_model(cfg, VOCABULARY if inputs == "tokens" else None, FEATURES, 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
        bce = nn.BCEWithLogitsLoss()
        xa, ya = point_arrays(inputs, size)
        x = torch.from_numpy(xa.astype(np.int64) if inputs == "tokens" else xa)
        y = torch.from_numpy(ya[:, 0])

        def train_step():
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss = bce(model(x).squeeze(-1), y)
            loss.backward()
            optimizer.step()
            loss.item()

        def infer():
            model.eval()
            with torch.inference_mode():
                model(x).sum().item()

        w = torch.from_numpy(peak_weights(cell, size.units))
        h0 = torch.from_numpy(np.random.default_rng(1).standard_normal((size.batch, size.units)).astype(np.float32))
        rows = torch.from_numpy(np.random.default_rng(2).standard_normal((batched_rows(size), size.units))
                                .astype(np.float32))

        def chain():
            with torch.inference_mode():
                h = h0
                for _ in range(size.steps):
                    h = torch.mm(h, w).narrow(1, 0, size.units)
                h.sum().item()

        def batched():
            with torch.inference_mode():
                torch.mm(rows, w)[0, 0].item()

        return train_step, infer, chain, batched, lambda: f"torch.nn.{TORCH_MODULES[cell]}"

    return build


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """A worker's answer: a row for each size of the job (a size that fails gives a row with its error)."""
    cell, inputs, variant = job["cell"], job["inputs"], job["variant"]
    library: dict[str, Any] = {}
    if variant == TORCH:
        import torch

        if not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(job["threads"])
        library = {"version": torch.__version__, "threads": torch.get_num_threads(),
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default"}
    rows = []
    # The first size runs twice, the first time unrecorded: the library's runtime starts then (its threads, its
    # allocator's first arenas), and would otherwise count as the first size's memory and warm-up.
    for index, s in enumerate(job["sizes"][:1] + job["sizes"]):
        size = Size(**s)
        build = _torch_builder(cell, inputs, size) if variant == TORCH else _tf_builder(cell, inputs, size, variant)
        try:
            row = _measure(cell, inputs, size, variant, build, job["min_seconds"] if index else 0.0)
            if index:
                rows.append(row)
        except Exception as exc:  # out of memory at one size must not cost the others
            from gru_lab.errors import machine_limit

            reason = machine_limit(exc)
            if reason is None and isinstance(exc, RuntimeError) and "alloc" in str(exc).lower():  # PyTorch's
                reason = f"out of memory ({(str(exc).strip().splitlines() or [''])[0][:200]})"
            if reason is None:
                raise
            if index:
                rows.append({"cell": cell, "inputs": inputs, **s, "variant": variant, "error": reason})
    return {"rows": rows, "library": library}


def _worker(job_path: str, answer_path: str) -> None:
    import json

    job = json.loads(Path(job_path).read_text())
    Path(answer_path).write_text(json.dumps(run_job(job)))


if __name__ == "__main__":  # python -m gru_lab.bench.sizes JOB.json ANSWER.json
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _worker(sys.argv[1], sys.argv[2])
