"""Comparing recurrent cells on one base config.

Owns: planning (base config + cells x lengths x seeds -> per-run configs, each validated before
anything starts, each with an id made of cell, length, seed and the resolved config's hash), equal
parameter budgets, the comparison table as a pandas DataFrame, and the verdicts on the tutorials'
claims as data. Running (one worker process a run, resume, failures, Ctrl-C) is gru_lab.execution's,
shared with sweep; files, tables and plots are report.py's.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gru_lab.config import CELL_ALIASES, CELLS, ExperimentConfig, ModelConfig, apply_overrides, config_from_raw, load_yaml
from gru_lab.errors import CompareError
from gru_lab.runtime import kernel_text
# The running machinery is shared with sweep; these names stay importable from here.
from gru_lab.execution import (EpochEvent, EventHook, RunFailed, RunOutcome, Runner, execute_runs,  # noqa: F401
                               find_finished, isolation_of, run_in_subprocess, run_inline, train_and_save)
from gru_lab.runs import config_hash, measured, metric_of  # noqa: F401

EMBEDDED_DEFAULT = Path(__file__).with_name("compare_default.yaml")
# The embedded default runs the adding problem at a short and a long T: SimpleRNN learns T=10 and not
# T=40 in 12 epochs, while the gated cells learn both, so the long-dependency verdict has its evidence.
EMBEDDED_LENGTHS = (10, 40)
DEFAULT_CELLS = ("simple_rnn", "lstm", "gru")
LABEL = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
TUTORIAL_FEWER_PCT = (25, 40)  # "GRU has 25-40% fewer parameters than LSTM", as the tutorials put it

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

# ----------------------------------------------------------------------------- planning


@dataclass
class PlannedRun:
    run_id: str  # <cell>-[T<length>-]s<seed>-<config hash>: the same config and seed give the same id
    cell: str
    seed: int  # train.seed: weight init and shuffling (the data seed stays the base config's)
    length: int | None  # adding-problem T when the compare sweeps lengths
    raw: dict[str, Any]  # the config as written + this run's keys; the worker validates it again
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return f"{LABEL[self.cell]}{'' if self.length is None else f' T={self.length}'} seed {self.seed}"


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
    """Canonical cell names in the order given; unknown or repeated names are a one-line error."""
    if not names:
        return list(DEFAULT_CELLS)
    cells: list[str] = []
    aliases = sorted(CELL_ALIASES)
    for name in names:
        cell = CELL_ALIASES.get(name.strip().lower(), name.strip().lower())
        if cell not in CELLS:
            raise CompareError(f"unknown cell {name!r}: cells must be among {sorted(CELLS)} "
                               f"or the aliases {aliases} (= simple_rnn).")
        if cell in cells:
            raise CompareError(f"cell {name!r} is given twice (it is {cell}); name each cell once.")
        cells.append(cell)
    return cells


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
                raise CompareError(f"--lengths must be integers separated by commas, e.g. 10,40. Got {value!r}.") from None
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
    seed_list = [base.train_seed + i for i in range(seeds)]

    runs: list[PlannedRun] = []
    for seed in seed_list:  # seed outermost: an interrupted compare already holds whole comparisons
        for length in lengths or [None]:
            for cell in cells:
                run_raw = _variant(raw, cell, seed, length, units[cell] if budget is not None else None,
                                   len(base.model.layer_units()))
                label = f"cell {cell}" + ("" if length is None else f", T={length}") + f", seed {seed}"
                cfg = config_from_raw(run_raw, f"{source} (compare {label})")
                run_id = f"{cell}-{'' if length is None else f'T{length}-'}s{seed}-{config_hash(cfg)}"
                runs.append(PlannedRun(run_id, cell, seed, length, run_raw, cfg))
    folder = Path(base.output.dir) / base.name
    return ComparePlan(base.name, source, folder, base, cells, seed_list, lengths, units, budget, runs, notes)


def _variant(raw: dict, cell: str, seed: int, length: int | None, units: int | None, layers: int) -> dict:
    """The raw config of one run: the base with this cell, seed, length and (equal budgets) units."""
    raw = copy.deepcopy(raw)
    raw.pop("sweep", None)  # sweep settings are not part of a run: they must not change its id
    model = raw["model"] = dict(raw.get("model") or {})
    model["cell"] = cell
    if units is not None:
        model["units"] = units
        model["num_layers"] = layers
    train = raw["train"] = dict(raw.get("train") or {})
    train["seed"] = seed
    if length is not None:
        raw["data"] = dict(raw["data"], length=length)
    return raw


# ----------------------------------------------------------------------------- equal budgets


def recurrent_count(model: ModelConfig, spec, cell: str, units: int | list[int] | None = None) -> int:
    """Recurrent parameters of `model` with another cell (and units), from the exact formulas."""
    from gru_lab.models import count_params

    update: dict[str, Any] = {"cell": cell}
    if units is not None:
        update.update(units=units, num_layers=len(units) if isinstance(units, list) else len(model.layer_units()))
    return count_params(model.model_copy(update=update), spec)["recurrent"]


def solve_units(model: ModelConfig, spec, cell: str, budget: int) -> int:
    """The integer units (the same in every layer) whose recurrent count is closest to budget.

    The count grows strictly with units (every formula is a quadratic with positive coefficients, also
    stacked and bidirectional), so a bisection for the first count >= budget and a look at its
    neighbour below finds the exact minimiser of |count - budget|; ties go to the smaller model.
    """
    def count(u: int) -> int:
        return recurrent_count(model, spec, cell, u)

    lo, hi = 1, 1
    while count(hi) < budget:
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid + 1
    if lo > 1 and budget - count(lo - 1) <= count(lo) - budget:
        return lo - 1
    return lo


def equal_budget_units(base: ExperimentConfig, cells: list[str], budget: int | None) -> tuple[int, dict[str, int], list[str]]:
    """(budget, units per cell, notes). Default budget: the base config's GRU recurrent count."""
    from gru_lab.data import spec_for

    layer_units = base.model.layer_units()
    if len(set(layer_units)) > 1:
        raise CompareError(f"--equal-params sets one units value for every layer; model.units is {layer_units}. "
                           "Give a single model.units (and model.num_layers) instead of a list.")
    spec = spec_for(base.data)
    notes = []
    if budget is None:
        budget = recurrent_count(base.model, spec, "gru")
        notes.append(f"budget {budget:,} recurrent parameters = the base config's GRU with units {layer_units[0]}")
    units = {cell: solve_units(base.model, spec, cell, budget) for cell in cells}
    counts = {cell: recurrent_count(base.model, spec, cell, u) for cell, u in units.items()}
    for cell, u in units.items():
        notes.append(f"{LABEL[cell]}: units {u} -> {counts[cell]:,} recurrent parameters "
                     f"({100 * (counts[cell] - budget) / budget:+.2f}% of the budget)")
    spread = max(counts.values()) / min(counts.values()) - 1
    if spread > 0.02:
        # One more unit adds about 2/u of an LSTM's count: small models cannot get closer.
        notes.append(f"at this budget integer units cannot land within 2% of each other (spread {100 * spread:.1f}%); "
                     "a larger --budget can.")
    return budget, units, notes


# ----------------------------------------------------------------------------- running


@dataclass
class CompareResult:
    plan: ComparePlan
    outcomes: list[RunOutcome]
    interrupted: bool
    isolation: str  # "process" (one worker process a run) or "inline"
    seconds: float


def execute(plan: ComparePlan, runner: Runner | None = None, on_event: EventHook | None = None) -> CompareResult:
    """Run what is not finished yet, in plan order, one run at a time (so the runs' timings are not
    disturbed by each other). A failed run is recorded and the rest go on; Ctrl-C stops after the
    current run's worker has exited, keeping every finished run. Events: see execution.execute_runs.
    """
    runner = runner or run_in_subprocess
    started = time.perf_counter()
    outcomes, interrupted = execute_runs(plan.runs, plan.folder, runner, on_event)
    return CompareResult(plan, outcomes, interrupted, isolation_of(runner), time.perf_counter() - started)


# ----------------------------------------------------------------------------- the table


def runs_frame(result: CompareResult):
    """One row per planned run: what it measured (or why it has nothing)."""
    import pandas as pd

    rows = []
    for o in result.outcomes:
        m = o.metrics or {}
        rows.append({
            "run_id": o.run.run_id, "cell": o.run.cell, "length": o.run.length, "seed": o.run.seed,
            "units": _units_text(o.run.cfg.model.units), "status": o.status,
            **measured(m, _task(result.plan)),
            "cudnn": _cudnn_text(m.get("cudnn")) if m else None,
            "kernel": kernel_text(m.get("execution")) if m else None,
            "folder": str(o.folder) if o.folder else None, "error": o.error,
        })
    return pd.DataFrame(rows)


def _task(plan: ComparePlan) -> str:
    from gru_lab.data import spec_for

    return spec_for(plan.base.data).task


def _kernels_of(frame) -> str | None:
    """The distinct kernel texts of some runs, in order, or None when none was recorded."""
    return ", ".join(dict.fromkeys(k for k in frame.kernel.dropna())) or None


def _units_text(units: Any) -> str:
    return ",".join(str(u) for u in units) if isinstance(units, list) else str(units)


def _cudnn_text(cudnn: list[dict] | None) -> str | None:
    if cudnn is None:
        return None
    reasons = list(dict.fromkeys(r for c in cudnn for r in c["reasons"]))
    return "yes" if all(c["eligible"] for c in cudnn) else "no: " + "; ".join(reasons)


def comparison_frame(result: CompareResult):
    """One row per cell (and length): parameters, speed, the test metric over seeds, cuDNN, memory.

    Every number comes from the runs' metrics.json; a cell with no finished run gets its parameter
    counts and cuDNN eligibility from the formulas and rules (the same ones training records) and
    empty measurements.
    """
    import pandas as pd

    from gru_lab.data import spec_for
    from gru_lab.models import count_params, cudnn_eligibility

    plan = result.plan
    runs = runs_frame(result)
    metric, _ = metric_of(_task(plan))
    lstm_reference = _lstm_reference(plan, runs)
    rows = []
    for length in plan.lengths or [None]:
        for cell in plan.cells:
            group = runs[(runs.cell == cell) & (runs.length.isna() if length is None else runs.length == length)]
            done = group[group.status.isin(["finished", "reused"])]
            cfg = next(r.cfg for r in plan.runs if r.cell == cell and r.length == length)
            spec = spec_for(cfg.data)
            if len(done):
                total, recurrent = int(done.params_total.iloc[0]), int(done.params_recurrent.iloc[0])
                cudnn = done.cudnn.iloc[0]
            else:
                counts = count_params(cfg.model, spec)
                total, recurrent = counts["total"], counts["recurrent"]
                verdicts = cudnn_eligibility(cfg.model, spec)
                cudnn = _cudnn_text([{"eligible": v.eligible, "reasons": v.reasons} for v in verdicts])
            reference = lstm_reference.get(length)
            values = [float(v) for v in done.value.dropna()]
            row = {
                "cell": cell,
                **({} if plan.lengths is None else {"length": length}),
                "units": _units_text(cfg.model.units),
                "runs": f"{len(done)}/{len(group)}",
                "params_total": total,
                "params_recurrent": recurrent,
                "recurrent_vs_lstm_pct": 100 * recurrent / reference if reference else None,
                "s_per_epoch": _median(done.s_per_epoch),
                "train_samples_per_s": _median(done.train_samples_per_s),
                "infer_samples_per_s": _median(done.infer_samples_per_s),
                "infer_ms_per_sample": _median(done.infer_ms_per_sample),
                "metric": f"test_{metric}",
                "metric_mean": statistics.fmean(values) if values else None,
                "metric_std": statistics.stdev(values) if len(values) > 1 else None,
                "best_epoch": ", ".join(str(int(e)) for e in done.best_epoch.dropna()) or None,
                "cudnn": cudnn,
                "kernel": _kernels_of(done),
                "peak_rss_mib": _max(done.peak_rss_mib),
            }
            if metric == "mse":
                baselines = [float(b) for b in done.baseline_mse.dropna()]
                row["mse_vs_baseline"] = (row["metric_mean"] / statistics.fmean(baselines)
                                          if values and baselines else None)
            if done.peak_gpu_mib.notna().any():
                row["peak_gpu_mib"] = _max(done.peak_gpu_mib)
            failed = group[group.status == "failed"]
            row["errors"] = "; ".join(f"{r.run_id}: {r.error}" for r in failed.itertuples()) or None
            rows.append(row)
    return pd.DataFrame(rows)


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
    return f"recurrent_vs_lstm_pct: {why}, so the LSTM count comes from the formulas (4u(d+u+1) per layer and direction)."


def _median(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return statistics.median(values) if values else None


def _max(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return max(values) if values else None


# ----------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    claim: str
    status: str  # HOLDS, FAILS or INCONCLUSIVE
    detail: str  # the numbers, in a sentence
    numbers: dict[str, Any] = field(default_factory=dict)


CLAIM_PARAMS = "GRU has fewer parameters than LSTM"
CLAIM_SPEED = "GRU trains faster than LSTM"
CLAIM_ACCURACY = "GRU's accuracy is comparable to LSTM's"
CLAIM_LONG = "SimpleRNN struggles with long dependencies"


def params_verdict(gru: int | None, lstm: int | None, source: str) -> Verdict:
    """Recurrent parameters of GRU and LSTM at the same units."""
    if not gru or not lstm:
        return Verdict(CLAIM_PARAMS, INCONCLUSIVE, "no parameter counts to compare.")
    fewer = 100 * (1 - gru / lstm)
    lo, hi = TUTORIAL_FEWER_PCT
    inside = "inside" if lo <= fewer <= hi else "outside"
    detail = (f"GRU {gru:,} vs LSTM {lstm:,} recurrent parameters ({source}): {fewer:.1f}% fewer; "
              f"{inside} the tutorials' {lo}-{hi}%.")
    return Verdict(CLAIM_PARAMS, HOLDS if gru < lstm else FAILS, detail,
                   {"gru_recurrent": gru, "lstm_recurrent": lstm, "fewer_pct": fewer})


def speed_verdict(pairs: list[tuple[float, float]], kernels: tuple[str | None, str | None] = (None, None)) -> Verdict:
    """pairs: (GRU, LSTM) median seconds per epoch of runs that share seed and length; kernels: the
    recurrent kernels GRU's and LSTM's runs trained with (runtime.kernel_text).

    Holds when GRU is faster in every pair, does not hold when it is slower in every pair;
    with fewer than two pairs there is no spread to judge, and a split is inconclusive. When the two
    cells ran different kernels the detail says so: the ratio then measures the implementations too.
    """
    pairs = [(g, l) for g, l in pairs if g and l]
    if not pairs:
        return Verdict(CLAIM_SPEED, INCONCLUSIVE, "needs finished GRU and LSTM runs with the same seed.")
    ratios = sorted(g / l for g, l in pairs)
    median = statistics.median(ratios)
    numbers = {"ratio_median": median, "ratio_min": ratios[0], "ratio_max": ratios[-1], "pairs": len(ratios)}
    detail = (f"GRU/LSTM seconds per epoch = {median:.2f} (median of {len(ratios)} seed pair(s); "
              f"spread {ratios[0]:.2f}-{ratios[-1]:.2f}); GRU is {100 * abs(1 - median):.0f}% "
              f"{'faster' if median < 1 else 'slower'}.")
    gru_kernel, lstm_kernel = kernels
    if gru_kernel and lstm_kernel and gru_kernel != lstm_kernel:
        detail += (f" The cells ran different kernels (GRU {gru_kernel}, LSTM {lstm_kernel}), so the ratio "
                   "measures the implementations too; for like with like run the compare with GRU_LAB_NATIVE=0 "
                   "and --set train.xla=off (both cells on gru-lab's fused TensorFlow loop).")
    if len(ratios) < 2:
        return Verdict(CLAIM_SPEED, INCONCLUSIVE, detail + " One pair has no spread: use --seeds 2 or more.", numbers)
    if ratios[-1] < 1:
        return Verdict(CLAIM_SPEED, HOLDS, detail, numbers)
    if ratios[0] >= 1:
        return Verdict(CLAIM_SPEED, FAILS, detail, numbers)
    return Verdict(CLAIM_SPEED, INCONCLUSIVE, detail + " The spread straddles 1.", numbers)


def accuracy_verdict(groups: dict[int | None, tuple[list[float], list[float]]], metric: str,
                     higher_is_better: bool) -> Verdict:
    """groups: length (None without a sweep) -> (GRU values, LSTM values) of the test metric.

    Comparable when |mean difference| is inside the seed spread sqrt(sd_gru^2 + sd_lstm^2) at every
    length; not comparable when it is outside at some length. Needs two runs of each.
    """
    parts, statuses, numbers = [], [], {}
    for length, (gru, lstm) in groups.items():
        at = "" if length is None else f"T={length}: "
        if len(gru) < 2 or len(lstm) < 2:
            parts.append(f"{at}{len(gru)} GRU and {len(lstm)} LSTM run(s), too few for a spread")
            statuses.append(INCONCLUSIVE)
            continue
        diff = statistics.fmean(gru) - statistics.fmean(lstm)
        spread = math.hypot(statistics.stdev(gru), statistics.stdev(lstm))
        better = "GRU" if (diff > 0) == higher_is_better else "LSTM"
        inside = abs(diff) <= spread
        parts.append(f"{at}GRU {statistics.fmean(gru):.4g} vs LSTM {statistics.fmean(lstm):.4g} test {metric}, "
                     f"difference {diff:+.3g} {'inside' if inside else 'outside'} the seed spread {spread:.3g}"
                     + ("" if inside else f" ({better} better)"))
        statuses.append(HOLDS if inside else FAILS)
        numbers[str(length)] = {"difference": diff, "spread": spread}
    if not statuses:
        return Verdict(CLAIM_ACCURACY, INCONCLUSIVE, "needs finished GRU and LSTM runs.")
    status = FAILS if FAILS in statuses else HOLDS if all(s == HOLDS for s in statuses) else INCONCLUSIVE
    return Verdict(CLAIM_ACCURACY, status, "; ".join(parts) + ".", numbers)


def long_dependency_verdict(by_length: dict[int, dict[str, list[float]]]) -> Verdict:
    """by_length: adding-problem T -> cell -> normalised test mse of each run (mse / predict-the-mean mse:
    1 = learned nothing, 0 = perfect).

    Holds when, at the longest T, SimpleRNN trails the best gated cell by more than the seed spread and
    by more than it does at the shortest T. Does not hold when SimpleRNN is within the spread of (or
    better than) the best gated cell at the longest T.
    """
    lengths = sorted(t for t, cells in by_length.items() if cells)
    if len(lengths) < 2:
        return Verdict(CLAIM_LONG, INCONCLUSIVE,
                       "needs the adding problem at two or more lengths (e.g. --lengths 10,40 on data.name: adding).")
    gaps, parts, numbers = {}, [], {}
    for t in (lengths[0], lengths[-1]):
        cells = by_length[t]
        rnn = cells.get("simple_rnn") or []
        gated = {c: v for c, v in cells.items() if c != "simple_rnn" and len(v) >= 2}
        if len(rnn) < 2 or not gated:
            return Verdict(CLAIM_LONG, INCONCLUSIVE,
                           f"needs two or more finished SimpleRNN and gated (GRU/LSTM) runs at T={t}.")
        best = min(gated, key=lambda c: statistics.fmean(gated[c]))
        gap = statistics.fmean(rnn) - statistics.fmean(gated[best])
        spread = math.hypot(statistics.stdev(rnn), statistics.stdev(gated[best]))
        gaps[t] = (gap, spread)
        numbers[str(t)] = {"simple_rnn": statistics.fmean(rnn), best: statistics.fmean(gated[best]),
                           "gap": gap, "spread": spread}
        parts.append(f"T={t}: SimpleRNN {statistics.fmean(rnn):.3f}±{statistics.stdev(rnn):.3f} vs "
                     f"{LABEL[best]} {statistics.fmean(gated[best]):.3f}±{statistics.stdev(gated[best]):.3f}")
    short, long_ = lengths[0], lengths[-1]
    gap, spread = gaps[long_]
    detail = "test mse / predict-the-mean mse, " + "; ".join(parts) + "."
    if gap <= spread:
        return Verdict(CLAIM_LONG, FAILS, detail + f" At T={long_} SimpleRNN is within the seed spread of (or better than) the best gated cell.", numbers)
    if gap > gaps[short][0]:
        return Verdict(CLAIM_LONG, HOLDS, detail + f" The gap grows from {gaps[short][0]:.3f} to {gap:.3f} as T grows.", numbers)
    return Verdict(CLAIM_LONG, INCONCLUSIVE, detail + f" SimpleRNN trails at T={long_}, but no more than at T={short}.", numbers)


def check_claims(result: CompareResult) -> list[Verdict]:
    """Each claim judged on this compare's finished runs."""
    plan = result.plan
    runs = runs_frame(result)
    done = runs[runs.status.isin(["finished", "reused"])]
    metric, higher = metric_of(_task(plan))

    verdicts = [params_verdict(*_param_pair(plan, done))]

    gru, lstm = done[done.cell == "gru"], done[done.cell == "lstm"]
    paired = gru.merge(lstm, on=["seed", "length"], suffixes=("_gru", "_lstm"), how="inner")
    verdicts.append(speed_verdict(list(zip(paired.s_per_epoch_gru, paired.s_per_epoch_lstm)),
                                  (_kernels_of(gru), _kernels_of(lstm))))

    groups = {}
    for length in plan.lengths or [None]:
        def values(frame):
            at = frame[frame.length.isna()] if length is None else frame[frame.length == length]
            return [float(v) for v in at.value.dropna()]
        if "gru" in plan.cells and "lstm" in plan.cells:
            groups[length] = (values(gru), values(lstm))
    verdicts.append(accuracy_verdict(groups, metric, higher) if groups else
                    Verdict(CLAIM_ACCURACY, INCONCLUSIVE, "needs both GRU and LSTM in the compare."))

    if plan.base.data.name != "adding":
        verdicts.append(Verdict(CLAIM_LONG, INCONCLUSIVE,
                                f"the evidence is the adding problem at two or more lengths; this compare trained on "
                                f"'{plan.base.data.name}'."))
    elif "simple_rnn" not in plan.cells:
        verdicts.append(Verdict(CLAIM_LONG, INCONCLUSIVE, "no SimpleRNN in this compare."))
    else:
        by_length: dict[int, dict[str, list[float]]] = {}
        for row in done.itertuples():
            if row.value is None or not row.baseline_mse:
                continue
            length = int(row.length) if row.length is not None and not _isnan(row.length) else plan.base.data.length
            by_length.setdefault(length, {}).setdefault(row.cell, []).append(float(row.value) / float(row.baseline_mse))
        verdicts.append(long_dependency_verdict(by_length))
    return verdicts


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _param_pair(plan: ComparePlan, done) -> tuple[int | None, int | None, str]:
    """GRU and LSTM recurrent counts at the same units: measured when both ran that way, else formulas."""
    from gru_lab.data import spec_for

    gru, lstm = done[done.cell == "gru"], done[done.cell == "lstm"]
    if len(gru) and len(lstm) and not plan.equal_params:
        return int(gru.params_recurrent.iloc[0]), int(lstm.params_recurrent.iloc[0]), "measured, same units"
    spec = spec_for(plan.runs[0].cfg.data)
    units = plan.base.model.layer_units()
    why = ("--equal-params gave them different units" if plan.equal_params else
           "GRU and LSTM did not both run" if not (len(gru) and len(lstm)) else "")
    return (recurrent_count(plan.base.model, spec, "gru", units), recurrent_count(plan.base.model, spec, "lstm", units),
            f"formulas at units {_units_text(units)}, since {why}")

