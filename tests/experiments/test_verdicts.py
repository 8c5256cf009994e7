"""Verdict wording (issue 19, item 7) and one run against its baselines (item 5): a speed claim holds only beyond
the seeds' spread, ratios are never "1x" and never contradict their numbers, a failed claim names the better
side in the verdict itself, and `train` names a loss to any baseline in one line."""

from __future__ import annotations

import re
import statistics

import pytest

from gru_lab.experiments.baselines import Baseline
from gru_lab.experiments.verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    accuracy_verdict,
    baseline_verdict,
    run_verdict,
    speed_ratio_text,
    speed_verdict,
)

ONE_TIER = ("fused", "fused")

SPEED = [
    # 5% shorter epochs in both pairs, but the seeds' epoch times differ by 30% (a shared CPU): not a win.
    ("five-percent-within-spread", [(0.95, 1.0), (1.25, 1.3)], INCONCLUSIVE, "neither cell faster"),
    ("five-percent-beyond-spread", [(0.95, 1.0), (0.951, 1.0)], HOLDS, "GRU 1.05x as fast as LSTM"),
    ("clearly-faster", [(1.0, 2.0), (1.02, 2.1)], HOLDS, "GRU 2.03x as fast as LSTM"),
    ("clearly-slower", [(1.3, 1.0), (1.32, 1.01)], FAILS, "LSTM 1.30x as fast as GRU"),
    ("split-pairs", [(0.8, 1.0), (1.2, 1.0), (0.81, 1.0)], INCONCLUSIVE, "neither cell faster"),
]


@pytest.mark.parametrize("pairs,status,finding", [s[1:] for s in SPEED], ids=[s[0] for s in SPEED])
def test_speed_claims_need_a_margin_beyond_the_seeds_spread(pairs, status, finding):
    v = speed_verdict(pairs, ONE_TIER)
    assert v.status == status and v.finding.startswith(finding), v.finding
    gru, lstm = statistics.fmean(g for g, _ in pairs), statistics.fmean(lo for _, lo in pairs)
    margin, spread = lstm - gru, v.numbers["spread_s"]
    assert (abs(margin) > spread) == (status != INCONCLUSIVE or "split" in v.finding)
    assert not re.search(r"\b1(\.0)?x\b", v.text + v.detail), v.text  # never "1x faster"
    # The words agree with the numbers: the cell named faster has the shorter mean epoch.
    named = re.match(r"(GRU|LSTM) [\d.]+x as fast", v.finding)
    if named:
        assert (named.group(1) == "GRU") == (gru < lstm)


@pytest.mark.parametrize("ratio,text", [
    (0.95, "GRU 1.05x as fast as LSTM"),
    (1.05, "LSTM 1.05x as fast as GRU"),
    (0.999, "GRU as fast as LSTM (time ratio 0.999)"),
    (0.5, "GRU 2.00x as fast as LSTM"),
], ids=["0.95", "1.05", "equal", "half"])
def test_speed_ratio_text_names_the_faster_cell(ratio, text):
    assert speed_ratio_text("GRU", "LSTM", ratio) == text


ACCURACY = [
    ("gru-more-accurate", {None: ([0.905, 0.915], [0.865, 0.875])}, True, FAILS,
     "GRU more accurate than LSTM (0.91 vs 0.87, beyond the seeds' spread)"),
    ("lstm-more-accurate", {None: ([0.70, 0.71], [0.86, 0.87])}, True, FAILS,
     "LSTM more accurate than GRU (0.865 vs 0.705, beyond the seeds' spread)"),
    ("lower-mse-at-one-length", {10: ([0.01, 0.012], [0.011, 0.013]), 40: ([0.02, 0.03], [0.5, 0.52])}, False,
     FAILS, "T=40: GRU lower test mse than LSTM (0.025 vs 0.51, beyond the seeds' spread)"),
    ("comparable", {None: ([0.85, 0.87], [0.86, 0.88])}, True, HOLDS,
     "GRU and LSTM within the seeds' spread (0.86 vs 0.87)"),
]


@pytest.mark.parametrize("groups,higher,status,finding", [a[1:] for a in ACCURACY], ids=[a[0] for a in ACCURACY])
def test_a_failed_accuracy_claim_names_the_better_cell(groups, higher, status, finding):
    v = accuracy_verdict(groups, "accuracy" if higher else "mse", higher)
    assert v.status == status and finding in v.finding, v.finding
    assert v.text.startswith(f"{status}: ")


def test_a_baseline_verdict_names_the_better_side():
    ridge = Baseline("ridge", "ridge on the window", "test_mse", 0.028, 0.1, 10, "the window", 100, 50)
    lost = baseline_verdict("GRU(8)", [1.7, 1.76], ridge, "mse", False)
    assert lost.status == FAILS and lost.finding == "ridge on the window better than GRU(8) in every seed (0.028 vs " \
                                                    "1.73 test mse)"
    won = baseline_verdict("GRU(8)", [0.01, 0.02], ridge, "mse", False)
    assert won.status == HOLDS and won.finding.startswith("GRU(8) better than ridge on the window in every seed")


def series_record(test: float, mean: float = 2.1, last: float = 0.31, ridge: float = 0.028) -> dict:
    return {"task": "regression", "test": {"mse": test}, "data": {"baseline_mse": mean},
            "classical_baseline": {"items": [
                {"name": "last_value", "label": "last value", "value": last},
                {"name": "ridge", "label": "ridge on the window (alpha 1)", "value": ridge}]}}


RUNS = [
    # The series run: mse 1.73 against last value 0.31 and ridge 0.028.
    ("series-loses", series_record(1.73), FAILS,
     "GRU(8) loses to last value 0.31, ridge on the window (alpha 1) 0.028: its test mse is 1.73; "
     "it beats predict the mean 2.1."),
    ("series-wins", series_record(0.01), HOLDS,
     "GRU(8) beats every baseline: test mse 0.01 vs predict the mean 2.1, last value 0.31, ridge on the window "
     "(alpha 1) 0.028"),
    ("a-tie-is-no-win", series_record(0.028), FAILS, "GRU(8) loses to ridge on the window (alpha 1) 0.028"),
    ("text-loses-to-majority",
     {"task": "multiclass", "test": {"accuracy": 0.5}, "data": {"majority_accuracy": 0.6, "majority_class": "pos"},
      "classical_baseline": {"items": [{"name": "tfidf_logreg", "label": "TF-IDF + logistic", "value": 0.8}]}},
     FAILS, "GRU(8) loses to always 'pos' 0.6, TF-IDF + logistic 0.8: its test accuracy is 0.5."),
    ("naive-last-value-from-data", {"task": "regression", "test": {"mse": 0.5},
                                    "data": {"baseline_mse": 1.0, "last_value_mse": 0.2}},
     FAILS, "GRU(8) loses to repeat the last value 0.2: its test mse is 0.5; it beats predict the mean 1."),
]


@pytest.mark.parametrize("metrics,status,line", [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_one_run_against_every_baseline_it_recorded(metrics, status, line):
    v = run_verdict("GRU(8)", metrics)
    assert v.status == status and v.detail.startswith(line), v.detail


def test_no_verdict_without_a_baseline_or_a_test_metric():
    assert run_verdict("GRU(8)", {"task": "regression", "test": {"mse": 0.1}}) is None
    assert run_verdict("GRU(8)", {"task": "regression", "test": {}, "data": {"baseline_mse": 1.0}}) is None


def test_the_gated_cell_simple_rnn_is_set_against_is_chosen_on_validation():
    from gru_lab.experiments.verdicts import long_dependency_verdict

    # On test GRU looks best at T=40 (0.01) and SimpleRNN trails it; validation prefers LSTM, which SimpleRNN
    # matches within the spread: the choice on validation decides the verdict.
    test = {10: {"simple_rnn": [0.10, 0.12], "gru": [0.01, 0.02], "lstm": [0.02, 0.03]},
            40: {"simple_rnn": [0.30, 0.50], "gru": [0.01, 0.02], "lstm": [0.30, 0.40]}}
    validation = {10: {"simple_rnn": [0.1, 0.1], "gru": [0.01, 0.01], "lstm": [0.02, 0.02]},
                  40: {"simple_rnn": [0.4, 0.4], "gru": [0.05, 0.05], "lstm": [0.02, 0.02]}}
    chosen = long_dependency_verdict(test, validation)
    assert chosen.status == FAILS and "LSTM" in chosen.detail and "T=40: SimpleRNN 0.400" in chosen.detail
    assert long_dependency_verdict(test, test).status == HOLDS  # what choosing on test would have said
    none = long_dependency_verdict(test, {})
    assert none.status == INCONCLUSIVE and "never on test" in none.detail
