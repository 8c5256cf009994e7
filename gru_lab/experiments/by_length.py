"""What a comparison adds from its runs' evaluation/ folders: each cell's test metric by true input length (the
quartiles of the test texts' token counts), whether a cell "struggles with long inputs", and the ensemble of each
cell's seeds (the mean of their predicted probabilities, or of their forecasts) with its metric and verdicts.

Everything is read from the runs' evaluation/predictions.npz, written when each run finished; a run recorded
before evaluation/ existed is left out, and a note says so.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab import cells as cell_names
from gru_lab.experiments.verdicts import FAILS, HOLDS, INCONCLUSIVE, Verdict
from gru_lab.inference.evaluate import length_buckets

CLAIM_LONG_INPUTS = "SimpleRNN struggles with long inputs (test accuracy by length)"
PREDICTIONS = Path("evaluation") / "predictions.npz"


@dataclass
class LengthReport:
    """compare's length and ensemble tables, their verdicts and notes."""

    table: Any  # pandas DataFrame: cell, length (T), bucket, min/max length, runs, metric mean/sd, truncated share
    ensembles: Any  # pandas DataFrame: one row a cell (and T): the ensemble of its seeds
    verdicts: list[Verdict]
    notes: list[str] = field(default_factory=list)


def _per_row(data, task: str) -> np.ndarray:
    """1/0 correct, or the squared error, per test row."""
    y, scores = data["y"], data["scores"]
    if task == "regression":
        return ((scores - y) ** 2).mean(axis=1)
    return (scores.argmax(axis=1) == y).astype("float64")


def _metric(values: np.ndarray) -> float:
    return float(np.mean(values))


def length_report(result) -> LengthReport:
    """The by-length table, the ensembles and the long-inputs verdicts of a CompareResult."""
    import pandas as pd

    from gru_lab.experiments.tables import task_of
    from gru_lab.runs.records import metric_of

    plan = result.plan
    task = task_of(plan.base)
    metric, higher = metric_of(task)
    rows, ensembles, verdicts, notes, missing = [], [], [], [], 0
    for length in plan.lengths or [None]:
        for cell in plan.cells:
            loaded = []
            for o in result.outcomes:
                if o.run.cell != cell or o.run.length != length or not o.ok or o.folder is None:
                    continue
                path = Path(o.folder) / PREDICTIONS
                if not path.is_file():
                    missing += 1
                    continue
                with np.load(path) as z:
                    loaded.append({k: z[k] for k in z.files})
            if not loaded:
                continue
            frames = [length_buckets(d["lengths"], _per_row(d, task), d.get("truncated"), metric) for d in loaded]
            same = all(len(f) == len(frames[0]) and (f.max_length == frames[0].max_length).all() for f in frames)
            if not same:
                notes.append(f"{cell_names.label(cell)}: its seeds were tested on different rows; by-length "
                             "buckets are shown for its first seed only.")
                frames = frames[:1]
            by_bucket = pd.concat(frames).groupby("bucket")
            first = frames[0]
            cell_rows = []
            for b, group in by_bucket:
                values = group[metric].tolist()
                at = first[first.bucket == b].iloc[0]
                cell_rows.append({"cell": cell, **({} if length is None else {"length": length}), "bucket": int(b),
                                  "min_length": int(at.min_length), "max_length": int(at.max_length),
                                  "count": int(at["count"]), "truncated_share": float(at.truncated_share),
                                  "runs": len(values), f"{metric}_mean": statistics.fmean(values),
                                  f"{metric}_sd": statistics.stdev(values) if len(values) > 1 else None,
                                  "seed_values": values})
            # Inputs of one length (series windows, synthetic sequences) have nothing to judge by length.
            verdict = struggles(cell_names.label(cell) + ("" if length is None else f" at T={length}"), cell_rows,
                                metric, higher) if len(cell_rows) > 1 else None
            for r in cell_rows:
                r["struggles_with_long_inputs"] = verdict.status if verdict else None
            rows += cell_rows
            verdicts += [verdict] if verdict else []
            if len(plan.seeds) < 2:
                continue
            row, long_verdict = _ensemble_row(cell, length, loaded, task, metric, higher, cell_rows, same)
            verdicts += [long_verdict] if long_verdict else []
            best = _baseline(result, cell, length)
            if best is not None and row.get(metric) is not None:
                beats = ensemble_beats(row, best, metric, higher)
                row["beats_baseline"] = beats.status
                verdicts.append(beats)
            ensembles.append(row)
    if missing:
        notes.append(f"{missing} finished run(s) have no evaluation/ (recorded before it existed) and are left out "
                     "of the length and ensemble tables; `gru-lab evaluate RUN` writes one.")
    claim = _claim(plan, verdicts)
    table = pd.DataFrame(rows)
    return LengthReport(table.drop(columns=["seed_values"]) if len(table) else table, pd.DataFrame(ensembles),
                        [claim] + verdicts if claim else verdicts, notes)


def struggles(model: str, buckets: list[dict[str, Any]], metric: str, higher_is_better: bool,
              spread: float | None = None) -> Verdict:
    """A model "struggles with long inputs" when its metric on the longest quarter of the test inputs falls short
    of its shortest quarter's by more than the seeds' spread, sqrt(sd_short^2 + sd_long^2). Two seeds at least
    (or a spread given: an ensemble is judged with its seeds' spread), and two length buckets."""
    claim = f"{model} struggles with long inputs"
    if len(buckets) < 2:
        return Verdict(claim, INCONCLUSIVE, "every test input has the same length: nothing to compare by length.")
    short, long_ = buckets[0], buckets[-1]
    a, b = short[f"{metric}_mean"], long_[f"{metric}_mean"]
    shortfall = (a - b) if higher_is_better else (b - a)
    if spread is None:
        if short["runs"] < 2 or long_["runs"] < 2:
            return Verdict(claim, INCONCLUSIVE, f"shortest inputs {a:.4g}, longest {b:.4g} test {metric}: one run "
                                                "has no seed spread; use --seeds 2 or more.",
                           {"short": a, "long": b, "shortfall": shortfall})
        spread = math.hypot(short[f"{metric}_sd"], long_[f"{metric}_sd"])
    detail = (f"test {metric} on the shortest quarter ({short['min_length']:,}-{short['max_length']:,} tokens) "
              f"{a:.4g}, on the longest ({long_['min_length']:,}-{long_['max_length']:,}, "
              f"{long_['truncated_share']:.0%} cut to maxlen) {b:.4g}: a shortfall of {shortfall:+.3g} against a "
              f"seed spread of {spread:.3g}.")
    numbers = {"short": a, "long": b, "shortfall": shortfall, "spread": spread}
    return Verdict(claim, HOLDS if shortfall > spread else FAILS, detail, numbers)


def _claim(plan, verdicts: list[Verdict]) -> Verdict | None:
    """The tutorials' fourth claim on the compare's own test data: SimpleRNN's verdict, the gated cells' beside."""
    if plan.base.data.name == "adding" or not any(v.claim.endswith(" struggles with long inputs") for v in verdicts):
        return None  # the adding problem is judged on its lengths T (experiments.verdicts); one length: nothing
    if "simple_rnn" not in plan.cells:
        return Verdict(CLAIM_LONG_INPUTS, INCONCLUSIVE, "no SimpleRNN in this compare.")
    rnn = next((v for v in verdicts if v.claim.startswith(cell_names.label("simple_rnn") + " ")), None)
    if rnn is None:
        return Verdict(CLAIM_LONG_INPUTS, INCONCLUSIVE, "no finished SimpleRNN run with an evaluation/.")
    suffix = " struggles with long inputs"
    others = "; ".join(f"{v.claim.removesuffix(suffix)}: {v.status}" for v in verdicts
                       if v is not rnn and v.claim.endswith(suffix) and "ensemble" not in v.claim)
    detail = rnn.detail + (f" The other cells struggle: {others}." if others else "")
    return Verdict(CLAIM_LONG_INPUTS, rnn.status, detail, rnn.numbers)


def _baseline(result, cell: str, length):
    """The strongest classical baseline of this cell's data, or None (baseline: none, or none fitted)."""
    from gru_lab.experiments.baselines import of_run

    plan = result.plan
    if plan.base.baseline.kind == "none":
        return None
    cfg = next(r.cfg for r in plan.runs if r.cell == cell and r.length == length)
    found = of_run(cfg, plan.base, result.baselines)
    return found.best() if found is not None else None


def _ensemble_row(cell: str, length, loaded: list[dict], task: str, metric: str, higher: bool,
                  cell_rows: list[dict], same_rows: bool) -> tuple[dict[str, Any], Verdict | None]:
    row: dict[str, Any] = {"cell": cell, **({} if length is None else {"length": length}),
                           "model": f"{cell_names.label(cell)}, ensemble of {len(loaded)} seeds", "seeds": len(loaded)}
    identical = same_rows and all(np.array_equal(d["y"], loaded[0]["y"]) for d in loaded)
    if len(loaded) < 2 or not identical:
        row["note"] = "one seed: no ensemble" if len(loaded) < 2 else "the seeds were tested on different rows"
        return row, None
    scores = np.mean([d["scores"] for d in loaded], axis=0)
    mean = {"y": loaded[0]["y"], "scores": scores}
    per_row = _per_row(mean, task)
    singles = [_metric(_per_row(d, task)) for d in loaded]
    row.update({metric: _metric(per_row), f"seeds_{metric}_mean": statistics.fmean(singles),
                f"seeds_{metric}_sd": statistics.stdev(singles)})
    frame = length_buckets(loaded[0]["lengths"], per_row, loaded[0].get("truncated"), metric)
    buckets = [{**r, f"{metric}_mean": r[metric], "runs": 1} for r in frame.to_dict(orient="records")]
    spread = (math.hypot(cell_rows[0][f"{metric}_sd"], cell_rows[-1][f"{metric}_sd"])
              if len(cell_rows) > 1 and cell_rows[0][f"{metric}_sd"] is not None else None)
    verdict = struggles(row["model"], buckets, metric, higher, spread) if spread is not None else None
    row["struggles_with_long_inputs"] = verdict.status if verdict else None
    row["by_length"] = [round(b[metric], 6) for b in buckets]
    return row, verdict


def ensemble_beats(row: dict[str, Any], best, metric: str, higher: bool) -> Verdict:
    """Does the ensemble beat the strongest classical baseline? One ensemble is one number: it holds when it is
    better, and does not hold when it is not."""
    claim = f"{row['model']} beats the classical baseline"
    value = row.get(metric)
    if best is None or value is None:
        return Verdict(claim, INCONCLUSIVE, "no ensemble or no classical baseline to set against it.")
    better = value > best.value if higher else value < best.value
    return Verdict(claim, HOLDS if better else FAILS,
                   f"{value:.4g} test {metric} vs {best.label} {best.value:.4g} (difference {value - best.value:+.3g}; "
                   f"its seeds alone: {row[f'seeds_{metric}_mean']:.4g} ± {row[f'seeds_{metric}_sd']:.2g}).",
                   {"ensemble": value, "baseline": best.value})
