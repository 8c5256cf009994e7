"""The tutorials' claims judged on a comparison's finished runs: holds, does not hold or inconclusive, each
with the numbers behind it."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from gru_lab import cells as cell_names
from gru_lab.experiments.baselines import of_run
from gru_lab.experiments.budgets import recurrent_count
from gru_lab.experiments.tables import DONE, task_of
from gru_lab.models.kernels import tier
from gru_lab.runs.records import metric_of, units_text

TUTORIAL_FEWER_PCT = (25, 40)  # "GRU has 25-40% fewer parameters than LSTM", as the tutorials put it
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass
class Verdict:
    claim: str
    status: str  # HOLDS, FAILS or INCONCLUSIVE
    detail: str  # the numbers, in a sentence
    numbers: dict[str, Any] = field(default_factory=dict)
    # What was found, in words that name the better side ("GRU more accurate than LSTM (0.91 vs 0.87, beyond
    # the seeds' spread)"), shown with the status so that "does not hold" never stands alone.
    finding: str = ""

    @property
    def text(self) -> str:
        """The status and, where there is one, the finding: "does not hold: GRU more accurate than LSTM (...)"."""
        return f"{self.status}: {self.finding}" if self.finding else self.status


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
    recurrent kernels GRU's and LSTM's runs trained with (models.kernels.kernel_text, several joined by ", ").

    Judged only when both cells trained on kernels of one and the same tier (models.kernels.tier): across
    tiers the ratio measures the implementations, not the cells, so it is inconclusive and says which tiers
    ran. Then a speed claim needs a margin larger than the run-to-run spread: it holds when GRU is faster in
    every pair and its mean seconds per epoch are below LSTM's by more than the seeds' spread
    sqrt(sd_gru^2 + sd_lstm^2); it does not hold when LSTM is faster the same way; anything else (a split, a
    margin inside the spread, fewer than two pairs) is inconclusive. A 5% difference on a shared CPU whose
    runs vary by 20% is not a win.
    """
    pairs = [(gru, lstm) for gru, lstm in pairs if gru and lstm]
    if not pairs:
        return Verdict(CLAIM_SPEED, INCONCLUSIVE, "needs finished GRU and LSTM runs with the same seed.")
    ratios = sorted(gru / lstm for gru, lstm in pairs)
    median = statistics.median(ratios)
    gru_s, lstm_s = [g for g, _ in pairs], [lstm for _, lstm in pairs]
    mean_gru, mean_lstm = statistics.fmean(gru_s), statistics.fmean(lstm_s)
    margin = mean_lstm - mean_gru  # > 0: GRU's epochs are shorter
    spread = math.hypot(statistics.stdev(gru_s), statistics.stdev(lstm_s)) if len(pairs) > 1 else None
    tiers = [_tiers(k) for k in kernels]
    numbers = {"ratio_median": median, "ratio_min": ratios[0], "ratio_max": ratios[-1], "pairs": len(ratios),
               "gru_s_per_epoch": mean_gru, "lstm_s_per_epoch": mean_lstm, "margin_s": margin, "spread_s": spread,
               "tiers": {"gru": sorted(tiers[0]), "lstm": sorted(tiers[1])}}
    beyond = spread is not None and abs(margin) > spread
    detail = (f"GRU {mean_gru:.3g} vs LSTM {mean_lstm:.3g} s/epoch (mean of {len(ratios)} seed pair(s)); "
              f"GRU/LSTM time ratio {median:.2f} (median; per pair {ratios[0]:.2f}-{ratios[-1]:.2f})"
              + ("" if spread is None else f"; difference {abs(margin):.3g} s, {'beyond' if beyond else 'within'} "
                                           f"the seeds' spread {spread:.3g} s") + ".")
    same_tier = len(tiers[0]) == 1 and tiers[0] == tiers[1] and None not in tiers[0]
    if not same_tier:
        ran = ", ".join(f"{cell} {kernel or 'not recorded'} (tier {', '.join(sorted(map(str, t)))})"
                        for cell, kernel, t in zip(("GRU", "LSTM"), kernels, tiers))
        return Verdict(CLAIM_SPEED, INCONCLUSIVE, detail + (
            f" Not judged: the cells trained on kernels of different tiers ({ran}), so the ratio measures the "
            "implementations, not the cells. For like with like: GRU_LAB_COMPILED=0 and --set train.xla=off "
            "(every cell on gru-lab's fused TensorFlow loop)."), numbers, "the cells ran kernels of different tiers")
    detail += f" Both cells trained on the {next(iter(tiers[0]))} tier ({kernels[0]}; {kernels[1]})."
    if spread is None:
        return Verdict(CLAIM_SPEED, INCONCLUSIVE, detail + " One pair has no spread: use --seeds 2 or more.",
                       numbers, "one seed pair: no spread to judge a margin against")
    if beyond and ratios[-1] < 1:
        return Verdict(CLAIM_SPEED, HOLDS, detail, numbers,
                       speed_ratio_text("GRU", "LSTM", median) + " (beyond the seeds' spread)")
    if beyond and ratios[0] > 1:
        return Verdict(CLAIM_SPEED, FAILS, detail, numbers,
                       speed_ratio_text("GRU", "LSTM", median) + " (beyond the seeds' spread)")
    why = "the pairs split" if beyond else "the difference is within the seeds' spread"
    return Verdict(CLAIM_SPEED, INCONCLUSIVE, detail, numbers,
                   f"neither cell faster beyond the run-to-run spread ({why}; time ratio {median:.2f})")


def speed_ratio_text(who: str, other: str, ratio: float) -> str:
    """A time ratio (who's seconds / the other's) named by the faster cell, never "1x":
    "GRU 2.40x as fast as LSTM", "LSTM 1.30x as fast as GRU", "GRU as fast as LSTM (time ratio 1.00)"."""
    if ratio <= 0:
        return f"{who}'s time is not measurable"
    if f"{ratio:.2f}" == "1.00":
        return f"{who} as fast as {other} (time ratio {ratio:.3f})"
    faster, slower, times = (who, other, 1 / ratio) if ratio < 1 else (other, who, ratio)
    return f"{faster} {times:.2f}x as fast as {slower}"


def _tiers(kernels: str | None) -> set[str | None]:
    """The tiers of some runs' kernel texts ("compiled, fused+xla" -> {"compiled", "fused"}); {None} unknown."""
    if not kernels:
        return {None}
    return {tier(k.strip()) for k in kernels.split(",")}


def accuracy_verdict(groups: dict[int | None, tuple[list[float], list[float]]], metric: str,
                     higher_is_better: bool) -> Verdict:
    """groups: length (None without a sweep) -> (GRU values, LSTM values) of the test metric.

    Comparable when |mean difference| is inside the seed spread sqrt(sd_gru^2 + sd_lstm^2) at every
    length; not comparable when it is outside at some length. Needs two runs of each.
    """
    parts, statuses, numbers, findings = [], [], {}, []
    better_word = "more accurate" if metric == "accuracy" else f"lower test {metric}"
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
        worse = "LSTM" if better == "GRU" else "GRU"
        means = {"GRU": statistics.fmean(gru), "LSTM": statistics.fmean(lstm)}
        parts.append(f"{at}GRU {means['GRU']:.4g} vs LSTM {means['LSTM']:.4g} test {metric}, "
                     f"difference {diff:+.3g} {'inside' if inside else 'outside'} the seed spread {spread:.3g}")
        findings.append(f"{at}GRU and LSTM within the seeds' spread ({means['GRU']:.3g} vs {means['LSTM']:.3g})"
                        if inside else f"{at}{better} {better_word} than {worse} ({means[better]:.3g} vs "
                                       f"{means[worse]:.3g}, beyond the seeds' spread)")
        statuses.append(HOLDS if inside else FAILS)
        numbers[str(length)] = {"difference": diff, "spread": spread}
    if not statuses:
        return Verdict(CLAIM_ACCURACY, INCONCLUSIVE, "needs finished GRU and LSTM runs.")
    status = FAILS if FAILS in statuses else HOLDS if all(s == HOLDS for s in statuses) else INCONCLUSIVE
    return Verdict(CLAIM_ACCURACY, status, "; ".join(parts) + ".", numbers, "; ".join(findings))


def long_dependency_verdict(by_length: dict[int, dict[str, list[float]]],
                            validation: dict[int, dict[str, list[float]]]) -> Verdict:
    """by_length: adding-problem T -> cell -> normalised test mse of each run (mse / predict-the-mean mse:
    1 = learned nothing, 0 = perfect); validation: the same runs' validation mse, which chooses the gated cell
    SimpleRNN is set against (the lower mean): choosing it on the test numbers it is then judged on would
    flatter it.

    Holds when, at the longest T, SimpleRNN trails the chosen gated cell by more than the seed spread and
    by more than it does at the shortest T. Does not hold when SimpleRNN is within the spread of (or
    better than) the chosen gated cell at the longest T.
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
        chooser = validation.get(t) or {}
        if any(len(chooser.get(c) or []) == 0 for c in gated):
            return Verdict(CLAIM_LONG, INCONCLUSIVE, f"needs the gated runs' validation mse at T={t} to choose the "
                                                     "gated cell to compare with (data.n_val > 0); never on test.")
        best = min(gated, key=lambda c: statistics.fmean(chooser[c]))
        gap = statistics.fmean(rnn) - statistics.fmean(gated[best])
        spread = math.hypot(statistics.stdev(rnn), statistics.stdev(gated[best]))
        gaps[t] = (gap, spread)
        numbers[str(t)] = {"simple_rnn": statistics.fmean(rnn), best: statistics.fmean(gated[best]),
                           "gap": gap, "spread": spread}
        parts.append(f"T={t}: SimpleRNN {statistics.fmean(rnn):.3f}±{statistics.stdev(rnn):.3f} vs "
                     f"{cell_names.label(best)} "
                     f"{statistics.fmean(gated[best]):.3f}±{statistics.stdev(gated[best]):.3f}")
    short, long_ = lengths[0], lengths[-1]
    gap, spread = gaps[long_]
    detail = ("test mse / predict-the-mean mse, " + "; ".join(parts) + " (the gated cell: the lower mean "
              "validation mse at that T).")
    if gap <= spread:
        return Verdict(CLAIM_LONG, FAILS,
                       detail + f" At T={long_} SimpleRNN is within the seed spread of (or better than) "
                                "the gated cell.", numbers)
    if gap > gaps[short][0]:
        return Verdict(CLAIM_LONG, HOLDS,
                       detail + f" The gap grows from {gaps[short][0]:.3f} to {gap:.3f} as T grows.", numbers)
    return Verdict(CLAIM_LONG, INCONCLUSIVE,
                   detail + f" SimpleRNN trails at T={long_}, but no more than at T={short}.", numbers)


def baseline_verdict(model: str, values: list[float], best, metric: str, higher_is_better: bool,
                     note: str | None = None) -> Verdict:
    """Does a recurrent model (its test metric over seeds) beat the strongest classical baseline of its data
    (best: experiments.baselines.Baseline, or None)? Holds when every seed beats it, does not hold when no
    seed does; one run, or seeds on both sides, is inconclusive."""
    claim = f"{model} beats the classical baseline"
    if best is None:
        return Verdict(claim, INCONCLUSIVE, f"no classical baseline ({note or 'none fitted'}).")
    if not values:
        return Verdict(claim, INCONCLUSIVE, f"no finished run to set against {best.label} ({best.value:.4g}).")
    better = [v > best.value if higher_is_better else v < best.value for v in values]
    mean = statistics.fmean(values)
    sd = f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else ""
    margin = mean - best.value
    detail = (f"{model} {mean:.4g}{sd} test {metric} over {len(values)} seed(s) vs {best.label} {best.value:.4g} "
              f"(fit in {best.fit_seconds:.3g} s, {best.size:,} numbers): {sum(better)} of {len(values)} seed(s) "
              f"better, mean difference {margin:+.3g}.")
    numbers = {"mean": mean, "baseline": best.value, "baseline_name": best.name, "difference": margin,
               "seeds_better": sum(better), "seeds": len(values)}
    if len(values) < 2:
        return Verdict(claim, INCONCLUSIVE, detail + " One run has no spread: use --seeds 2 or more.", numbers)
    if all(better):
        return Verdict(claim, HOLDS, detail, numbers,
                       f"{model} better than {best.label} in every seed ({mean:.4g} vs {best.value:.4g} test {metric})")
    if not any(better):
        return Verdict(claim, FAILS, detail, numbers, f"{best.label} better than {model} in every seed "
                                                      f"({best.value:.4g} vs {mean:.4g} test {metric})")
    return Verdict(claim, INCONCLUSIVE, detail + " The seeds fall on both sides of it.", numbers)


def check_claims(plan, runs, baselines: dict | None = None) -> list[Verdict]:
    """Each claim judged on a compare plan's finished runs (runs: compare.runs_frame); baselines: the compare's
    classical baselines by cache key (CompareResult.baselines), each cell judged against its data's."""
    done = runs[runs.status.isin(DONE)]
    metric, higher = metric_of(task_of(plan.base))

    verdicts = [params_verdict(*_param_pair(plan, done))]

    gru, lstm = done[done.cell == "gru"], done[done.cell == "lstm"]
    paired = gru.merge(lstm, on=["seed", "length"], suffixes=("_gru", "_lstm"), how="inner")
    verdicts.append(speed_verdict(list(zip(paired.s_per_epoch_gru, paired.s_per_epoch_lstm)),
                                  (_kernels_of(gru), _kernels_of(lstm))))

    groups = {}
    for length in plan.lengths or [None]:
        if "gru" in plan.cells and "lstm" in plan.cells:
            groups[length] = (_values_at(gru, length), _values_at(lstm, length))
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
        validation: dict[int, dict[str, list[float]]] = {}
        for row in done.itertuples():
            if row.value is None or not row.baseline_mse:
                continue
            length = int(row.length) if row.length is not None and not _isnan(row.length) else plan.base.data.length
            by_length.setdefault(length, {}).setdefault(row.cell, []).append(float(row.value) / float(row.baseline_mse))
            if row.val_value is not None and not _isnan(row.val_value):
                validation.setdefault(length, {}).setdefault(row.cell, []).append(float(row.val_value))
        verdicts.append(long_dependency_verdict(by_length, validation))
    if baselines is not None:
        verdicts += baseline_verdicts(plan, runs, baselines).values()
    return verdicts


def baseline_verdicts(plan, runs, baselines: dict) -> dict[tuple[str, int | None], Verdict]:
    """(cell, length) -> whether that cell beats its data's strongest classical baseline; none when the
    compare has baseline: none."""
    done = runs[runs.status.isin(DONE)]
    metric, higher = metric_of(task_of(plan.base))
    found = {}
    for length in plan.lengths or [None]:
        for cell in plan.cells:
            cfg = next(r.cfg for r in plan.runs if r.cell == cell and r.length == length)
            base = of_run(cfg, plan.base, baselines)
            if base is None or plan.base.baseline.kind == "none":
                continue
            model = cell_names.describe(cell, cfg.model.units, cfg.model.num_layers, cfg.model.bidirectional,
                                        cfg.model.pooling) + ("" if length is None else f" at T={length}")
            found[(cell, length)] = baseline_verdict(model, _values_at(done[done.cell == cell], length), base.best(),
                                                     metric.removeprefix("test_"), higher, base.note)
    return found


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _param_pair(plan, done) -> tuple[int | None, int | None, str]:
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
            f"formulas at units {units_text(units)}, since {why}")



def _kernels_of(frame) -> str | None:
    """The distinct kernel texts of some runs, in order, or None when none was recorded."""
    return ", ".join(dict.fromkeys(k for k in frame.kernel.dropna())) or None


def _values_at(frame, length: int | None) -> list[float]:
    """The test metric of some runs at one adding-problem length (None: a compare without lengths)."""
    at = frame[frame.length.isna()] if length is None else frame[frame.length == length]
    return [float(v) for v in at.value.dropna()]


def run_baselines(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, test value) of every baseline one run's record holds, naive then classical: predict the mean,
    repeat the last value, the majority class (its data's), then its classical_baseline's items."""
    data = metrics.get("data") or {}
    classical = (metrics.get("classical_baseline") or {}).get("items") or []
    names = {b.get("name") for b in classical}
    found = []
    if data.get("baseline_mse") is not None:
        found.append(("predict the mean", float(data["baseline_mse"])))
    if data.get("last_value_mse") is not None and "last_value" not in names:
        found.append(("repeat the last value", float(data["last_value_mse"])))
    if data.get("majority_accuracy") is not None:
        found.append((f"always '{data.get('majority_class')}'", float(data["majority_accuracy"])))
    found += [(b["label"], float(b["value"])) for b in classical if b.get("value") is not None]
    return found


def run_verdict(model: str, metrics: dict[str, Any]) -> Verdict | None:
    """One finished run against every baseline its record holds (run_baselines): holds when its test metric is
    better than each, does not hold when some baseline is as good or better (named, with both numbers). None
    when the run has no test metric or no baseline. One run has no seed spread: the detail says so."""
    metric, higher = metric_of(metrics.get("task") or "regression")
    value = (metrics.get("test") or {}).get(metric)
    baselines = run_baselines(metrics)
    if value is None or not baselines:
        return None
    claim = f"{model} beats its baselines"
    lost = [(label, b) for label, b in baselines if not (value > b if higher else value < b)]
    beaten = [(label, b) for label, b in baselines if (label, b) not in lost]
    listed = ", ".join(f"{label} {b:.4g}" for label, b in (lost or beaten))
    numbers = {"value": value, "baselines": dict(baselines), "lost_to": [label for label, _ in lost]}
    if not lost:
        return Verdict(claim, HOLDS, f"{model} beats every baseline: test {metric} {value:.4g} vs {listed} (one run: "
                                     "compare or sweep with --seeds 2 or more judges it against the seeds' spread).",
                       numbers)
    also = f"; it beats {', '.join(f'{label} {b:.4g}' for label, b in beaten)}" if beaten else ""
    return Verdict(claim, FAILS, f"{model} loses to {listed}: its test {metric} is {value:.4g}{also}.", numbers)
