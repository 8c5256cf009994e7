"""Comparing recurrent cells on one base config.

Owns: the compare plan (base config x cells x lengths x seeds, through experiments.planning), equal
parameter budgets (budgets.py), the comparison table as a pandas DataFrame (through experiments.tables), and what a
comparison says (summarize: table, runs, verdicts, notes). Running is experiments.executor's, the
verdicts experiments.verdicts', files, tables and plots report's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gru_lab import cells as cell_names
from gru_lab.config import PRESETS, ExperimentConfig, apply_overrides, config_from_raw, load_yaml
from gru_lab.errors import CompareError
from gru_lab.experiments import tables
from gru_lab.experiments.baselines import Baselines, baselines_for, of_run, with_settings
from gru_lab.experiments.budgets import equal_budget_units, recurrent_count, solve_units
from gru_lab.experiments.executor import EventHook, Runner, RunOutcome, execute_runs, isolation_of, run_in_subprocess
from gru_lab.experiments.planning import PlannedRun, plan_runs, results_folder
from gru_lab.experiments.verdicts import baseline_verdicts, check_claims
from gru_lab.runs.records import units_text

EMBEDDED_DEFAULT = PRESETS / "compare_default.yaml"
# The embedded default runs the adding problem at a short and a long T: SimpleRNN learns T=10 and not
# T=40 in 12 epochs, while the gated cells learn both, so the long-dependency verdict has its evidence.
EMBEDDED_LENGTHS = (10, 40)

# ----------------------------------------------------------------------------- planning


@dataclass
class ComparePlan:
    name: str
    source: str  # the base config's path, or "embedded default"
    folder: Path  # <output.dir>/<name>/: the runs' folders and the comparison files
    base: ExperimentConfig
    cells: list[str]
    seeds: list[int]
    lengths: list[int] | None
    units: dict[str, Any]  # units each cell runs with
    budget: int | None  # recurrent-parameter budget under --equal-params
    runs: list[PlannedRun]
    notes: list[str] = field(default_factory=list)

    @property
    def equal_params(self) -> bool:
        return self.budget is not None


def resolve_cells(names: Iterable[str] | None) -> list[str]:
    """Canonical cell names in the order given (default: all, simplest first); a bad name is one line."""
    try:
        return cell_names.resolve(list(names)) if names else list(cell_names.NAMES)
    except ValueError as exc:
        raise CompareError(str(exc)) from None


def parse_lengths(values: Iterable[str] | None) -> list[int] | None:
    """--lengths 10,40 (or repeated) -> [10, 40], sorted, duplicates dropped."""
    if not values:
        return None
    lengths: set[int] = set()
    for value in values:
        for part in str(value).split(","):
            try:
                length = int(part.strip())
            except ValueError:
                raise CompareError("--lengths must be integers separated by commas, e.g. 10,40. "
                                   f"Got {value!r}.") from None
            if length < 2:
                raise CompareError(f"--lengths must all be >= 2 (the adding problem needs two marks). Got {length}.")
            lengths.add(length)
    return sorted(lengths)


def plan_compare(config: str | Path | None = None, overrides: list[str] | None = None,
                 cells: Iterable[str] | None = None, seeds: int = 2, lengths: Iterable[str] | list[int] | None = None,
                 equal_params: bool = False, budget: int | None = None) -> ComparePlan:
    """Every run of the compare, each config validated; raises GruLabError before anything is written."""
    cells = resolve_cells(cells)
    if seeds < 1:
        raise CompareError(f"--seeds must be >= 1. Got {seeds}.")
    if budget is not None and budget < 1:
        raise CompareError(f"--budget must be >= 1 recurrent parameters. Got {budget}.")
    lengths = parse_lengths([str(x) for x in lengths] if lengths else None)
    if config is None:
        source, raw = "embedded default", load_yaml(EMBEDDED_DEFAULT)
        # The default sweep, unless the user chose the data themselves (--set data.length=100 means that T).
        if lengths is None and not any(o.strip().startswith("data") for o in overrides or []):
            lengths = list(EMBEDDED_LENGTHS)
    else:
        source, raw = str(config), load_yaml(config)
    base = config_from_raw(raw, source, overrides or [])  # the base as the user wrote it: errors name their key
    raw, _ = apply_overrides(raw, overrides or [], source)
    if lengths is not None and base.data.name != "adding":
        raise CompareError(f"--lengths sweeps the adding problem's T; {source} has data.name "
                           f"{base.data.name!r}. Drop --lengths or use data.name: adding.")

    notes: list[str] = []
    units: dict[str, Any] = {cell: base.model.units for cell in cells}
    if equal_params or budget is not None:
        budget, units, budget_notes = equal_budget_units(base, cells, budget)
        notes += budget_notes
    points = []
    for length in lengths or [None]:
        for cell in cells:
            point: dict[str, Any] = {"model.cell": cell}
            if budget is not None:
                point.update({"model.units": units[cell], "model.num_layers": len(base.model.layer_units())})
            if length is not None:
                point["data.length"] = length
            points.append(point)

    def describe(point: dict[str, Any], seed: int) -> tuple[str, dict[str, str]]:
        length = point.get("data.length")
        return (f"{source} (compare cell {point['model.cell']}{'' if length is None else f', T={length}'}, "
                f"seed {seed})"), {}

    def prefix(point: dict[str, Any]) -> str:
        length = point.get("data.length")
        return f"{point['model.cell']}{'' if length is None else f'-T{length}'}"

    def label(point: dict[str, Any], seed: int) -> str:
        length = point.get("data.length")
        return f"{cell_names.label(point['model.cell'])}{'' if length is None else f' T={length}'} seed {seed}"

    seed_list = [base.train_seed + i for i in range(seeds)]
    runs = plan_runs(raw, points, seed_list, describe, prefix, label)
    return ComparePlan(base.name, source, results_folder(base), base, cells, seed_list, lengths, units, budget, runs,
                       notes)


# ----------------------------------------------------------------------------- running


@dataclass
class CompareResult:
    plan: ComparePlan
    outcomes: list[RunOutcome]
    interrupted: bool
    isolation: str  # "process" (one worker process a run) or "inline"
    seconds: float
    baselines: dict[str, Baselines] = field(default_factory=dict)  # by cache key: experiments.baselines


def execute(plan: ComparePlan, runner: Runner | None = None, on_event: EventHook | None = None) -> CompareResult:
    """Run what is not finished yet, in plan order, one run at a time (so the runs' timings are not
    disturbed by each other). A failed run is recorded and the rest go on; Ctrl-C stops after the
    current run's worker has exited, keeping every finished run. Events: see executor.execute_runs.
    """
    runner = runner or run_in_subprocess
    started = time.perf_counter()
    outcomes, interrupted = execute_runs(plan.runs, plan.folder, runner, on_event)
    # After the runs, so that fitting it never shares the CPU with a timed run; once per length, cached.
    baselines = baselines_for([with_settings(r.cfg, plan.base) for r in plan.runs], plan.folder,
                              fit=not interrupted)
    return CompareResult(plan, outcomes, interrupted, isolation_of(runner), time.perf_counter() - started,
                         baselines)


# ----------------------------------------------------------------------------- the table


def runs_frame(result: CompareResult):
    """One row per planned run: what it measured (or why it has nothing)."""
    return tables.runs_frame(result.outcomes, lambda run: {
        "cell": run.cell, "length": run.length, "units": units_text(run.cfg.model.units),
        "model": tables.model_text(run.cfg.model)})


COLUMNS = ("runs", "params_total", "params_recurrent", "recurrent_vs_lstm_pct", "s_per_epoch", "fit_seconds",
           "train_samples_per_s", "infer_samples_per_s", "infer_ms_per_sample", "val_metric", "val_mean", "val_std",
           "metric", "metric_mean", "metric_std",
           "beats_baseline", "best_epoch", "cudnn", "kernel", "peak_rss_mib", "mse_vs_baseline", "peak_gpu_mib",
           "errors", "diverged")


def comparison_frame(result: CompareResult):
    """One row per cell (and length): parameters, speed, the test metric over seeds, cuDNN, memory.

    Every number comes from the runs' metrics.json; a cell with no finished run gets its parameter
    counts and cuDNN eligibility from the formulas and rules (the same ones training records) and
    empty measurements.
    """
    import pandas as pd

    from gru_lab.data import spec_for
    from gru_lab.models.kernels import cudnn_blockers

    plan = result.plan
    runs = runs_frame(result)
    lstm_reference = _lstm_reference(plan, runs)
    beats = baseline_verdicts(plan, runs, result.baselines)
    rows = []
    for length in plan.lengths or [None]:
        for cell in plan.cells:
            group = runs[(runs.cell == cell) & (runs.length.isna() if length is None else runs.length == length)]
            cfg = next(r.cfg for r in plan.runs if r.cell == cell and r.length == length)
            stats = tables.group_stats(group, cfg)
            done = group[group.status.isin(tables.DONE)]
            if len(done):
                stats["cudnn"] = done.cudnn.iloc[0]
            else:
                why = cudnn_blockers(cfg.model, spec_for(cfg.data))
                stats["cudnn"] = "yes" if not why else "no: " + "; ".join(why)
            reference = lstm_reference.get(length)
            stats["recurrent_vs_lstm_pct"] = 100 * stats["params_recurrent"] / reference if reference else None
            verdict = beats.get((cell, length))
            stats["beats_baseline"] = verdict.status if verdict else None
            row = {"cell": cell, **({} if plan.lengths is None else {"length": length}), "kind": "recurrent",
                   "units": units_text(cfg.model.units), "model": tables.model_text(cfg.model)}
            row.update({c: stats[c] for c in COLUMNS})
            rows.append(row)
        found = of_run(cfg, plan.base, result.baselines)
        rows += [{"cell": "baseline", **({} if plan.lengths is None else {"length": length}),
                  **tables.baseline_row(b)} for b in (found.items if found else [])]
    frame = pd.DataFrame(rows)
    empty = [c for c in ("mse_vs_baseline", "peak_gpu_mib", "beats_baseline") if frame[c].isna().all()]
    return frame.drop(columns=empty)


def _lstm_reference(plan: ComparePlan, runs) -> dict[int | None, int]:
    """Recurrent parameters of the LSTM each row is measured against, per length: the LSTM runs'
    own count when there is one, else the formulas for the LSTM this compare would have run."""
    from gru_lab.data import spec_for

    reference: dict[int | None, int] = {}
    for length in plan.lengths or [None]:
        lstm = runs[(runs.cell == "lstm") & runs.status.isin(["finished", "reused"])
                    & (runs.length.isna() if length is None else runs.length == length)]
        if len(lstm):
            reference[length] = int(lstm.params_recurrent.iloc[0])
            continue
        cfg = plan.runs[0].cfg
        units = plan.units.get("lstm") if plan.equal_params and "lstm" in plan.units else None
        if plan.equal_params and units is None:
            units = solve_units(plan.base.model, spec_for(cfg.data), "lstm", plan.budget)
        reference[length] = recurrent_count(plan.base.model, spec_for(cfg.data), "lstm", units)
    return reference


def lstm_reference_note(plan: ComparePlan, result: CompareResult) -> str | None:
    finished_lstm = [o for o in result.outcomes if o.run.cell == "lstm" and o.ok]
    if finished_lstm:
        return None
    why = "no LSTM in this compare" if "lstm" not in plan.cells else "no LSTM run finished"
    return (f"recurrent_vs_lstm_pct: {why}, so the LSTM count comes from the formulas "
            "(4u(d+u+1) per layer and direction).")




# ----------------------------------------------------------------------------- what a comparison says

# What chose each run's best epoch (training.fit.best_epoch_rule): never a test number.
BEST_EPOCH_NOTE = ("best epoch: each run's epoch with the best validation loss (train.early_stopping.monitor when "
                   "set; the training loss without a validation split), never a test number; the validation column "
                   "is at the epoch that was tested, shown as (test: N) where it is not the best epoch.")


@dataclass
class Comparison:
    """What `compare` shows and writes: the tables, the verdicts, the notes (and the files, once written)."""

    table: Any  # pandas DataFrame, one row per cell (and length)
    runs: Any  # pandas DataFrame, one row per planned run
    verdicts: list
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    lengths: Any = None  # experiments.by_length.LengthReport: metric by input length, the seeds' ensembles


def summarize(result: CompareResult) -> Comparison:
    plan = result.plan
    notes = list(plan.notes)
    note = lstm_reference_note(plan, result)
    if note:
        notes.append(note)
    if result.isolation == "inline":
        notes.append("runs trained inline (one process): peak RSS is the process's high-water mark, not per run.")
    else:
        notes.append("peak RSS: each run's own worker process (ru_maxrss), so it includes TensorFlow's runtime.")
    notes += tables.baseline_notes(result.baselines.values())
    notes.append(BEST_EPOCH_NOTE)
    from gru_lab.experiments.by_length import length_report

    lengths = length_report(result)
    return Comparison(comparison_frame(result), runs_frame(result),
                      check_claims(plan, runs_frame(result), result.baselines) + lengths.verdicts, notes,
                      lengths=lengths)
