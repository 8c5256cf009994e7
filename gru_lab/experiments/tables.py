"""The table builder compare and sweep share: one row per planned run from its metrics.json, and the
statistics of a group of runs (a compared cell, a grid point) over seeds. Every number comes from the
runs' records; a group with no finished run gets its parameter counts from the exact formulas.
"""

from __future__ import annotations

import statistics
from typing import Any

from gru_lab import cells
from gru_lab.data import spec_for
from gru_lab.experiments.selection import validation_metric, validation_of
from gru_lab.models.kernels import kernel_text
from gru_lab.models.plan import count_params
from gru_lab.runs.records import measured, metric_of, missing

DONE = ("finished", "reused")


def task_of(cfg) -> str:
    return spec_for(cfg.data).task


def runs_frame(outcomes, columns=lambda _run: {}):
    """One row per planned run: the command's own columns (columns(run)), status, what it measured (or why
    it has nothing), the kernels it ran, where its folder is."""
    import pandas as pd

    rows = []
    for o in outcomes:
        m = o.metrics or {}
        threads = ((m.get("environment") or {}).get("threads") or {}).get("intra_op")
        rows.append({
            "run_id": o.run.run_id, "point": o.run.point, **columns(o.run), "seed": o.run.seed, "status": o.status,
            **measured(m, task_of(o.run.cfg)),
            **(validation_of(o.folder, m, task_of(o.run.cfg)) if o.ok else {"val_value": None, "val_loss": None}),
            "cudnn": cudnn_text(m.get("cudnn")) if m else None,
            "kernel": kernel_text(m.get("execution")) if m else None,
            "threads": threads, "run_seconds": o.seconds,
            "folder": str(o.folder) if o.folder else None, "error": o.error,
        })
    return pd.DataFrame(rows)


def group_stats(group, cfg) -> dict[str, Any]:
    """The statistics of some planned runs of one config (rows of runs_frame) over their seeds."""
    done = group[group.status.isin(DONE)]
    metric, _ = metric_of(task_of(cfg))
    values = [float(v) for v in done.value.dropna()]
    val = [float(v) for v in done.val_value.dropna()]
    if len(done) and not done.params_total.isna().all():
        total, recurrent = int(done.params_total.iloc[0]), int(done.params_recurrent.iloc[0])
    else:
        counts = count_params(cfg.model, spec_for(cfg.data))
        total, recurrent = counts["total"], counts["recurrent"]
    baseline = mean(done.baseline_mse)
    failed = group[group.status.isin(["failed", "diverged"])]
    diverged = int((group.status == "diverged").sum())
    return {
        # a diverged run has no test metric: counted here, never averaged
        "runs": f"{len(done)}/{len(group)}" + (f" ({diverged} diverged)" if diverged else ""),
        "diverged": diverged,
        "params_total": total,
        "params_recurrent": recurrent,
        "s_per_epoch": median(done.s_per_epoch),
        "fit_seconds": mean(done.fit_seconds),
        "train_samples_per_s": median(done.train_samples_per_s),
        "infer_samples_per_s": median(done.infer_samples_per_s),
        "infer_ms_per_sample": median(done.infer_ms_per_sample),
        # validation beside test: what a selection reads (experiments.selection), at the epoch that was tested
        "val_metric": validation_metric(task_of(cfg))[1],
        "val_mean": statistics.fmean(val) if val else None,
        "val_std": statistics.stdev(val) if len(val) > 1 else None,
        "val_loss_mean": mean(done.val_loss),
        "metric": f"test_{metric}",
        "metric_mean": statistics.fmean(values) if values else None,
        "metric_std": statistics.stdev(values) if len(values) > 1 else None,
        # mse / the mse of predicting the mean: 1 = learned nothing, 0 = perfect
        "mse_vs_baseline": statistics.fmean(values) / baseline if metric == "mse" and values and baseline else None,
        "best_epoch": ", ".join(epoch_text(r.best_epoch, r.evaluated_epoch) for r in done.itertuples()
                                if not missing(r.best_epoch)) or None,
        "kernel": ", ".join(dict.fromkeys(k for k in done.kernel.dropna())) or None,
        "peak_rss_mib": maximum(done.peak_rss_mib),
        "peak_gpu_mib": maximum(done.peak_gpu_mib),
        "errors": "; ".join(f"{r.run_id}: {r.error}" for r in failed.itertuples()) or None,
    }


def epoch_text(best, evaluated) -> str:
    """A run's best epoch, and the epoch its test metric was taken at when that is another one: "11 (test: 12)"."""
    text = str(int(best))
    return text if missing(evaluated) or int(evaluated) == int(best) else f"{text} (test: {int(evaluated)})"


def model_text(m) -> str:
    """A model config as tables name it: "GRU(32)", "BiGRU(32)", "2-layer GRU(32)" (cells.describe)."""
    return cells.describe(m.cell, m.units, m.num_layers, m.bidirectional, m.pooling)


def baseline_row(b) -> dict[str, Any]:
    """A classical baseline (experiments.baselines.Baseline) as a row of a compare or sweep table: its test
    metric, fit time and size (numbers it keeps) where a recurrent row has its runs'."""
    return {"kind": "baseline", "model": b.label, "runs": "1 fit", "params_total": b.size, "fit_seconds": b.fit_seconds,
            "metric": b.metric, "metric_mean": b.value}


def baseline_notes(found) -> list[str]:
    """What each classical baseline saw and where it came from, or why there is none (Baselines of a plan)."""
    notes = []
    for baselines in found:
        if baselines.note:
            notes.append(baselines.note)
        for b in baselines.items:
            notes.append(f"classical baseline {b.label}: sees {b.sees}; fitted on the same {b.n_train:,} training "
                         f"rows as the recurrent runs, scored on the same {b.n_test:,} test rows"
                         + (" (reused from an earlier run of this command)." if baselines.cached else "."))
    return list(dict.fromkeys(notes))


def cudnn_text(cudnn: list[dict] | None) -> str | None:
    """A run record's cuDNN eligibility (on a GPU) in one cell: "yes" or "no: reasons"."""
    if cudnn is None:
        return None
    reasons = list(dict.fromkeys(r for c in cudnn for r in c["reasons"]))
    return "yes" if all(c["eligible"] for c in cudnn) else "no: " + "; ".join(reasons)


def median(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return statistics.median(values) if values else None


def mean(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return statistics.fmean(values) if values else None


def maximum(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return max(values) if values else None

