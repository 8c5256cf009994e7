"""gru-lab bench: gru-lab's training path against a plain Keras baseline written the tutorial's way.

For each cell, on the same data, one variant after the other (in one process, or with isolate=True
each in a fresh one): the baseline (Keras layers, model.fit on NumPy
arrays with validation_split, model.evaluate/predict at Keras's default batch of 32, as the IMDB GRU
tutorial's script does) and gru-lab's own path (training.fit.train: tf.data pipelines, the kernel plan's
loops and XLA). Each variant's epochs, train and inference throughput, test metric and peak
memory are measured, and the ratios are computed from those measurements. Returns DataFrames;
report.py writes and prints them.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gru_lab import cells as cell_names
from gru_lab.bench.workers import load_average, worker_answer
from gru_lab.config import PRESETS, ExperimentConfig, config_from_raw
from gru_lab.data.base import Dataset
from gru_lab.errors import GruLabError
from gru_lab.training.memory import peak_rss_mib, reset_peak_rss

# The IMDB GRU tutorial to the letter (configs/imdb_gru_literal.yaml links to it): packaged, so that
# `gru-lab bench` runs after a plain pip install.
DEFAULT_CONFIG = PRESETS / "imdb_gru_literal.yaml"

BASELINE = "keras baseline"
GRU_LAB = "gru-lab"
TORCH = "pytorch"  # `--peers torch`: torch_peer.py
# gru-lab's path with single optimisations switched off, for `bench --ablation` (the pipeline always stays).
ABLATION = {
    "pipeline only": ["model.loops=keras", "train.xla=off"],
    "pipeline + xla": ["model.loops=keras"],
    "pipeline + fused": ["train.xla=off"],  # GRU: the compiled loops (they need XLA off)
    "pipeline + fused + xla": ["train.xla=on"],  # GRU: the fused TensorFlow loop under XLA, no compiled loops
    GRU_LAB: [],
}
BUSY_LOAD = 0.7  # above this 1-minute load average other work shares the cores and the timings are inflated

VariantHook = Callable[[str, str], None]  # (cell, variant) as each starts


@dataclass
class BenchResult:
    rows: Any  # pandas DataFrame: one row per (cell, variant)
    ratios: Any  # pandas DataFrame: one row per (cell, variant other than the baseline)
    meta: dict[str, Any]  # workload, machine, load averages, versions
    folder: Path  # where report.write_bench puts the files
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- data


def synthetic_tokens(cfg: ExperimentConfig, seed: int) -> Dataset:
    """IMDB-shaped token data without the archive: same counts, vocabulary and maxlen, pre-padded
    reviews of IMDB-like lengths, and a label carried by a few sentiment tokens (learnable, but the
    accuracy means little: this exists to time the same amount of work)."""
    d = cfg.data
    rng = np.random.default_rng(seed)
    n_train, n_test = d.n_train or 25_000, d.n_test or 25_000

    # up to 20 pairs of sentiment words (ids 4, 5, 6, 7, ...), fewer where the vocabulary is smaller
    sentiment_pairs = max(1, min(20, (d.num_words - 4) // 2))

    def split(n: int):
        labels = rng.integers(0, 2, n)
        lengths = np.clip(rng.lognormal(5.2, 0.7, n).astype(int) + 1, 10, None)  # median ~180 tokens, long tail
        x = np.zeros((n, d.maxlen), dtype=np.int32)
        for i, (length, label) in enumerate(zip(lengths, labels)):
            length = min(length, d.maxlen)
            words = np.minimum(rng.zipf(1.3, length) + 3, d.num_words - 1)
            sentiment = rng.random(length) < 0.05  # 1 word in 20 leans towards the label
            words[sentiment] = 4 + 2 * rng.integers(0, sentiment_pairs, sentiment.sum()) + label
            words = np.minimum(words, d.num_words - 1)
            words[0] = 1
            if d.padding == "pre":
                x[i, d.maxlen - length:] = words
            else:
                x[i, :length] = words
        return x, labels.astype(np.float32)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return Dataset(name="imdb", task="binary", input_kind="tokens", x_train=x_train, y_train=y_train,
                   x_test=x_test, y_test=y_test, vocab_size=d.num_words, padding=d.padding,
                   extra={"source": "synthetic tokens (IMDB-shaped)", "n_train": n_train, "n_test": n_test})


def bench_data(cfg: ExperimentConfig) -> Dataset:
    """The config's dataset; for IMDB without a readable archive, same-shaped synthetic tokens."""
    from gru_lab.data import load_dataset

    if cfg.data.name == "imdb" and not cfg.data.as_real:
        from gru_lab.data.imdb import resolve_source

        source = resolve_source(cfg.data)
        if source is None or not Path(source).exists():
            return synthetic_tokens(cfg, cfg.seed)
    return load_dataset(cfg.data, cfg.seed)


# ----------------------------------------------------------------------------- memory and load


def _release_previous_models() -> None:
    """Free the previous variant's models and graphs so its memory does not count against the next."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


# ----------------------------------------------------------------------------- the two paths


def release_shuffle_seed() -> None:
    """Unset TensorFlow's global seed so that Keras reshuffles NumPy training arrays every epoch.

    The IMDB GRU tutorial's script sets no seed, and then Keras does reshuffle every epoch. With a global seed set,
    Keras 3's array adapter serves the very same batch order in every epoch (its shuffle op restarts from
    the same seed with each epoch's iterator): not the script's training, and a few points less accurate
    (docs/benchmarks.md). TensorFlow refuses unseeded random ops under op determinism, which the script
    never turns on either."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
    tf.random.set_seed(None)


def run_baseline(cfg: ExperimentConfig, data: Dataset) -> dict[str, Any]:
    """The IMDB GRU tutorial's script: Keras layers, fit on NumPy with validation_split, evaluate/predict
    at batch 32."""
    import keras
    from tensorflow.python.framework import config as tf_config

    from gru_lab.models.build import build_model
    from gru_lab.training.fit import loss_and_metrics, make_optimizer, timing_callback

    keras.utils.set_random_seed(cfg.train_seed)
    tf_config.disable_op_determinism()  # the tutorial's script never turns it on
    t = cfg.train
    model = build_model(cfg.model.model_copy(update={"loops": "keras"}), data.spec)
    loss, metric_names = loss_and_metrics(data.task)
    model.compile(optimizer=make_optimizer(cfg, keras_updates=True), loss=loss, metrics=metric_names)
    release_shuffle_seed()  # the seed fixed the initial weights (the same as gru-lab's); the order is the script's
    fit_kwargs: dict[str, Any] = {}
    n_fit = len(data.x_train)
    if data.x_val is not None:
        fit_kwargs["validation_data"] = (data.x_val, data.y_val)
    elif t.validation_split > 0:
        fit_kwargs["validation_split"] = t.validation_split
        n_fit = int(np.floor(len(data.x_train) * (1.0 - t.validation_split)))
    timing = timing_callback(None, None, -(-n_fit // t.batch_size))
    model.fit(data.x_train, data.y_train, epochs=t.epochs, batch_size=t.batch_size, callbacks=[timing],
              verbose=0, **fit_kwargs)
    t0 = time.perf_counter()
    test = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    eval_seconds = time.perf_counter() - t0
    model.predict(data.x_test[:32], verbose=0)  # trace the predict step first, as gru-lab's evaluate does
    t0 = time.perf_counter()
    model.predict(data.x_test, verbose=0)
    predict_seconds = time.perf_counter() - t0
    history = timing.rows
    return {
        "history": history, "n_fit": n_fit, "test": {k: float(v) for k, v in test.items()},
        "eval_seconds": eval_seconds, "inference_samples_per_second": len(data.x_test) / predict_seconds,
        "kernel": "keras-loop", "eval_batch": 32,
    }


def run_gru_lab(cfg: ExperimentConfig, data: Dataset) -> dict[str, Any]:
    from gru_lab.models.kernels import kernel_text
    from gru_lab.training.fit import eval_batch, train

    result = train(cfg, data)
    m = result.metrics
    if result.status != "finished":
        raise KeyboardInterrupt
    return {
        "history": result.history, "n_fit": m["n_train_fit"], "test": m["test"],
        "eval_seconds": m["eval_seconds"], "inference_samples_per_second": m["inference_samples_per_second"],
        "kernel": f"{kernel_text(m['execution'])}, inference {kernel_text(m['execution'], inference=True)}",
        "eval_batch": eval_batch(cfg.train, m["execution"]["compiled_loops"]),
    }


def _row(cell: str, variant: str, out: dict[str, Any], peak: float | None, load: tuple) -> dict[str, Any]:
    history = out["history"]
    epoch_s = [r["seconds"] for r in history]
    train_s = [r["train_seconds"] for r in history]
    metric = "accuracy" if "accuracy" in out["test"] else "loss"
    row: dict[str, Any] = {
        "cell": cell, "variant": variant, "epochs": len(history),
        "s_per_epoch": statistics.median(epoch_s) if epoch_s else None,
        "train_samples_per_s": out["n_fit"] / statistics.median(train_s) if train_s else None,
        "infer_samples_per_s": out["inference_samples_per_second"],
        "eval_s": out["eval_seconds"], "eval_batch": out["eval_batch"],
        f"test_{metric}": out["test"].get(metric), "peak_rss_mib": peak, "kernel": out["kernel"],
        "load_before": load[0], "load_after": load[1],
    }
    for i, (s, ts) in enumerate(zip(epoch_s, train_s), start=1):
        row[f"epoch_{i}_s"] = s
        row[f"epoch_{i}_train_s"] = ts
    return row


def recipe_variant(name: str) -> str:
    """The variant name of gru-lab's path on another recipe (`--recipe CONFIG`), e.g. "gru-lab (imdb_gru)"."""
    return f"{GRU_LAB} ({name})"


def _references(variant: str) -> list[str]:
    """The runs a variant is compared with: the keras baseline and PyTorch (every other variant), and gru-lab's
    run of the bench's own config (another recipe's variant)."""
    if variant == BASELINE:
        return []
    if variant == TORCH:
        return [BASELINE]
    return [BASELINE, TORCH] + ([GRU_LAB] if variant.startswith(f"{GRU_LAB} (") else [])


def ratios_frame(rows):
    """One row per (cell, variant, reference run of the same cell): the variant's numbers against the reference's."""
    import pandas as pd

    metric = next((c for c in rows.columns if c.startswith("test_")), None)
    out = []
    for cell, group in rows.groupby("cell", sort=False):
        by_variant = {r["variant"]: r for _, r in group.iterrows()}
        for variant, r in by_variant.items():
            for reference in _references(variant):
                if reference not in by_variant:
                    continue
                b = by_variant[reference]
                out.append({
                    "cell": cell, "variant": variant, "reference": reference,
                    "train_speedup": r["train_samples_per_s"] / b["train_samples_per_s"],
                    "epoch_speedup": b["s_per_epoch"] / r["s_per_epoch"],
                    "infer_speedup": r["infer_samples_per_s"] / b["infer_samples_per_s"],
                    f"{(metric or 'metric').removeprefix('test_')}_diff_points": ((100 * (r[metric] - b[metric]))
                                                                                 if metric else None),
                    "peak_rss_ratio": (r["peak_rss_mib"] / b["peak_rss_mib"]
                                       if r["peak_rss_mib"] and b["peak_rss_mib"] else None),
                })
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- the bench


def bench_configs(cfg: ExperimentConfig, cells: list[str], overrides: list[str]) -> dict[str, ExperimentConfig]:
    """The config of each cell: cfg with model.cell replaced (and --set overrides applied again)."""
    raw = cfg.model_dump(mode="json")
    configs = {}
    for cell in cells:
        cell_raw = {**raw, "model": {**raw["model"], "cell": cell}}
        configs[cell] = config_from_raw(cell_raw, f"bench ({cell})", overrides)
    return configs


def check_cells(cells: list[str]) -> None:
    """The bench's --cells, each a cell gru-lab knows."""
    unknown = [c for c in cells if c not in cell_names.CELLS]
    if unknown:
        raise GruLabError(f"bench: cells must be among {list(cell_names.NAMES)}. Got {unknown}.")


def run_bench(cfg: ExperimentConfig, cells: list[str], *, ablation: bool = False, overrides: list[str] | None = None,
              folder: Path | None = None, on_variant: VariantHook | None = None, isolate: bool = False,
              peers: list[str] | None = None, recipes: list[ExperimentConfig] | None = None) -> BenchResult:
    """Baseline and gru-lab (and with ablation, gru-lab with single optimisations off) for each cell; with
    peers=["torch"], the same model in PyTorch; with recipes, gru-lab's path on each of those configs too
    (model.cell replaced by the cell), e.g. the masked recipe beside the literal one.

    In one process by default, one variant after the other on the same loaded data. isolate=True runs
    each variant in a fresh worker process instead (`python -m gru_lab.bench`): slower to start, but each
    peak RSS is that variant's own, not inflated by what earlier variants left in the allocator. The
    PyTorch peer always runs in its own process."""
    import pandas as pd

    check_cells(cells)
    peers, recipes = list(peers or []), list(recipes or [])
    _check_peers_and_recipes(cfg, peers, recipes)
    configs = bench_configs(cfg, cells, overrides or [])
    recipe_configs = {recipe_variant(r.name): bench_configs(r, cells, overrides or []) for r in recipes}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t_load = time.perf_counter()
    data = bench_data(cfg)
    load_seconds = time.perf_counter() - t_load
    datasets = {_data_key(cfg): data}
    variants = dict(ABLATION) if ablation else {GRU_LAB: []}
    notes = [_rss_note(isolate)]
    if not isolate and not reset_peak_rss():
        notes.append("peak RSS could not be reset between variants (no /proc/self/clear_refs): "
                     "each figure is the process's peak so far.")
    peer_status = _peer_status(cfg, peers, data.task)
    rows = []
    for cell in cells:
        plan = [(BASELINE, configs[cell])]
        plan += [(name, config_from_raw(configs[cell].model_dump(mode="json"), "bench", extra))
                 for name, extra in variants.items()]
        plan += [(name, by_cell[cell]) for name, by_cell in recipe_configs.items()]
        for variant, variant_cfg in plan:
            if on_variant:
                on_variant(cell, variant)
            if isolate:
                rows.append(_in_worker(variant_cfg, cell, variant))
                continue
            key = _data_key(variant_cfg)
            if key not in datasets:  # another recipe's data (its padding, say)
                datasets[key] = bench_data(variant_cfg)
            rows.append(_in_process(variant_cfg, datasets[key], cell, variant))
        if peer_status.get("torch") == "ran":
            if on_variant:
                on_variant(cell, TORCH)
            row = _torch_row(configs[cell], data, cell, peer_status, notes)
            if row is not None:
                rows.append(row)
    frame = pd.DataFrame(rows)
    if (frame["variant"] == TORCH).any():
        notes.append("the pytorch rows ran in a process of their own, which imports no TensorFlow: their peak RSS "
                     "is that process's (PyTorch's runtime and the data included).")
    loads = [v for v in frame["load_before"].tolist() + frame["load_after"].tolist() if v is not None]
    if loads and max(loads) > BUSY_LOAD:
        notes.append(f"other work shared the CPU while this ran (1-minute load average up to {max(loads)} on "
                     f"{os.cpu_count()} cores): absolute times are inflated; the ratios compare variants "
                     "that ran one after the other.")
    meta = bench_meta(cfg, cells, data, started, load_seconds, ablation)
    from gru_lab.bench.isa import cpu_flags, describe, requested_isa

    meta["isa"] = describe(cpu_flags(), requested_isa())
    meta["peers"] = peer_status
    meta["recipes"] = {recipe_variant(r.name): r.name for r in recipes}
    folder = folder or Path(cfg.output.dir) / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return BenchResult(rows=frame, ratios=ratios_frame(frame), meta=meta, folder=folder, notes=notes)


def _check_peers_and_recipes(cfg: ExperimentConfig, peers: list[str], recipes: list[ExperimentConfig]) -> None:
    from gru_lab.bench.torch_peer import PEERS

    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise GruLabError(f"bench: --peers must be among {list(PEERS)}. Got {unknown}.")
    names = [cfg.name] + [r.name for r in recipes]
    repeated = sorted({n for n in names[1:] if names.count(n) > 1})
    if repeated:
        raise GruLabError(f"bench: each --recipe config needs a name of its own (its variant is named after it); "
                          f"{repeated} appears more than once among the bench's config and its recipes.")


def _data_key(cfg: ExperimentConfig) -> str:
    return f"{cfg.data.model_dump_json()} seed={cfg.seed}"


def _rss_note(isolate: bool) -> str:
    if isolate:
        return ("each variant ran in its own fresh process (--isolate): peak RSS is that process's "
                "ru_maxrss, TensorFlow's runtime and the loaded data included.")
    return ("all variants ran in one process, one after the other; peak RSS is the peak during each "
            "variant, which includes what earlier variants left allocated (rss_at_start_mib in bench.csv). "
            "Use --isolate for per-variant peaks.")


def _in_process(cfg: ExperimentConfig, data: Dataset, cell: str, variant: str) -> dict[str, Any]:
    _release_previous_models()
    reset_peak_rss()
    start_rss, before = peak_rss_mib(), load_average()
    out = run_baseline(cfg, data) if variant == BASELINE else run_gru_lab(cfg, data)
    row = _row(cell, variant, out, peak_rss_mib(), (before, load_average()))
    row["rss_at_start_mib"] = start_rss
    return row


def _peer_status(cfg: ExperimentConfig, peers: list[str], task: str) -> dict[str, Any]:
    """Per peer asked for: "ran", or why it did not run (not installed: how to get it; a model it cannot build)."""
    from gru_lab.bench import torch_peer

    status: dict[str, Any] = {}
    if "torch" in peers:
        reasons = torch_peer.unsupported(cfg, task)
        if not torch_peer.torch_installed():
            status["torch"] = torch_peer.INSTALL
        elif reasons:
            status["torch"] = f"not run: the PyTorch peer does not build this model ({'; '.join(reasons)})"
        else:
            status["torch"] = "ran"
    return status


def _torch_row(cfg: ExperimentConfig, data: Dataset, cell: str, peer_status: dict[str, Any],
               notes: list[str]) -> dict[str, Any] | None:
    """The PyTorch peer's row (its own process); a failed peer is a note, and the bench goes on."""
    from gru_lab.bench import torch_peer

    try:
        answer = torch_peer.run_in_process(cfg, data)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()  # "PyTorch peer failed (exit N):", then its stderr: say the last line
        notes.append(f"the PyTorch peer failed for {cell} ({' '.join(dict.fromkeys([lines[0], lines[-1]]))}): "
                     "no pytorch row for it.")
        return None
    peer_status["torch_version"] = answer["torch"]["version"]
    peer_status["torch_threads"] = answer["torch"]["threads"]
    peer_status["torch_omp_wait_policy"] = answer["torch"]["omp_wait_policy"]
    row = _row(cell, TORCH, answer["out"], answer["peak"], tuple(answer["load"]))
    row["rss_at_start_mib"] = None
    return row


def bench_meta(cfg: ExperimentConfig, cells: list[str], data: Dataset, started: str, load_seconds: float,
               ablation: bool) -> dict[str, Any]:
    from gru_lab.training.fit import device_info

    t = cfg.train
    n_fit = len(data.x_train) if data.x_val is not None or not t.validation_split else \
        int(np.floor(len(data.x_train) * (1.0 - t.validation_split)))
    return {
        "config": cfg.name, "started": started, "cells": cells, "ablation": ablation,
        "data": data.extra.get("source", data.name), "data_load_seconds": round(load_seconds, 2),
        "n_train_fit": n_fit, "n_val": len(data.x_train) - n_fit if data.x_val is None else len(data.x_val),
        "n_test": len(data.x_test), "timesteps": data.timesteps, "epochs": t.epochs, "batch_size": t.batch_size,
        "units": cfg.model.units, "embedding_dim": cfg.model.embedding_dim,
        "environment": device_info(),
    }


# ----------------------------------------------------------------------------- isolated variants


def _in_worker(cfg: ExperimentConfig, cell: str, variant: str) -> dict[str, Any]:
    """One variant in a fresh Python process; its row comes back as JSON in a temporary file."""
    job = {"config": cfg.model_dump(mode="json"), "cell": cell, "variant": variant}
    return worker_answer("gru_lab.bench.bench", job, f"bench worker for {cell}/{variant}")


def _worker(job_path: str, answer_path: str) -> None:
    import json

    job = json.loads(Path(job_path).read_text())
    cfg = config_from_raw(job["config"], "bench worker")
    data = bench_data(cfg)
    before = load_average()
    out = run_baseline(cfg, data) if job["variant"] == BASELINE else run_gru_lab(cfg, data)
    row = _row(job["cell"], job["variant"], out, peak_rss_mib(), (before, load_average()))
    row["rss_at_start_mib"] = None
    Path(answer_path).write_text(json.dumps(row))


if __name__ == "__main__":  # the isolated-variant worker: python -m gru_lab.bench.bench JOB.json ROW.json
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _worker(sys.argv[1], sys.argv[2])
