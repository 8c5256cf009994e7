"""`gru-lab evaluate` and the evaluation/ every finished run writes: every number against scikit-learn or an exact
hand-computed case, the files, and the user's mistakes (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics

from gru_lab.cli import app
from gru_lab.data.base import Samples
from gru_lab.inference.evaluate import Scored, calibration, ensemble, evaluate_scored, length_buckets
from tests.conftest import assert_user_error


def _scored(y, p, lengths=None, classes=None, truncated=None, texts=None) -> Scored:
    y, p = np.asarray(y), np.asarray(p, dtype="float64")
    k = p.shape[1]
    lengths = np.arange(len(y)) + 1 if lengths is None else np.asarray(lengths)
    samples = Samples(lengths, truncated, [f"f:{i + 1}" for i in range(len(y))],
                      (lambda i: texts[i]) if texts else None)
    return Scored("binary" if k == 2 else "multiclass", y, p, samples, classes or [f"c{i}" for i in range(k)])


# ----------------------------------------------------------------------------- exact cases


def test_a_four_row_binary_case_by_hand():
    # P(pos): 0.9 right, 0.8 wrong (true neg), 0.3 right (neg), 0.4 wrong (true pos)
    y = [1, 0, 0, 1]
    pos = np.array([0.9, 0.8, 0.3, 0.4])
    ev = evaluate_scored(_scored(y, np.stack([1 - pos, pos], 1), lengths=[3, 3, 10, 10],
                                 truncated=np.array([False, False, True, True]),
                                 texts=["a", "b", "c", "d"]), buckets=2, mistakes=2)
    r = ev.record
    assert r["accuracy"] == 0.5
    assert r["confusion"]["counts"] == [[1, 1], [1, 1]]
    assert r["confusion"]["row_normalized"] == [[0.5, 0.5], [0.5, 0.5]]
    # ROC AUC: of the 4 (pos, neg) pairs, pos ranks above neg in (0.9>0.8, 0.9>0.3, 0.4>0.3): 3/4.
    assert r["roc"]["c1"]["auc"] == pytest.approx(0.75)
    # Confidence (top class): 0.9, 0.8, 0.7, 0.6 -> bins 9, 8, 7, 6, one row each, right 1, 0, 1, 0.
    # ECE = 1/4 (|1-.9| + |0-.8| + |1-.7| + |0-.6|) = 1.8 / 4.
    assert r["calibration"]["ece"] == pytest.approx(0.45)
    # Mistakes, most confident first: row 2 (0.8, true c0), then row 4 (0.6 for c0, true c1).
    assert [(m["source"], m["true"], m["predicted"], m["text"]) for m in r["mistakes"]] == [
        ("f:2", "c0", "c1", "b"), ("f:4", "c1", "c0", "d")]
    assert [m["score"] for m in r["mistakes"]] == pytest.approx([0.8, 0.6])
    # Lengths 3, 3 | 10, 10: one right, one wrong in each; the long ones were cut.
    assert [(b["min_length"], b["max_length"], b["count"], b["accuracy"], b["truncated_share"])
            for b in r["by_length"]] == [(3, 3, 2, 0.5, 0.0), (10, 10, 2, 0.5, 1.0)]


def test_length_buckets_are_quartiles_and_ties_never_straddle_an_edge():
    lengths = np.array([1, 2, 3, 4, 5, 6, 7, 8])
    frame = length_buckets(lengths, lengths * 10.0, None, "mse")
    assert frame[["min_length", "max_length", "count"]].values.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2], [7, 8, 2]]
    assert frame.mse.tolist() == [15.0, 35.0, 55.0, 75.0]
    tied = length_buckets(np.array([5, 5, 5, 5, 5, 9]), np.ones(6), None, "accuracy")
    assert tied[["min_length", "max_length", "count"]].values.tolist() == [[5, 5, 5], [9, 9, 1]]
    assert len(length_buckets(np.full(7, 30), np.ones(7), None, "accuracy")) == 1


def test_calibration_bins_by_hand():
    confidence = np.array([0.55, 0.58, 0.95, 1.0])
    correct = np.array([True, False, True, True])
    bins, ece = calibration(confidence, correct)
    assert bins[["low", "count"]].values.tolist() == [[0.5, 2], [0.9, 2]]  # 1.0 falls in the last bin
    assert ece == pytest.approx(0.5 * abs(0.5 - 0.565) + 0.5 * abs(1 - 0.975))


def test_an_ensemble_is_the_mean_of_the_runs_probabilities_on_the_same_rows():
    a = _scored([0, 1], [[0.9, 0.1], [0.6, 0.4]])
    b = _scored([0, 1], [[0.3, 0.7], [0.0, 1.0]])
    a.runs, b.runs = ["a"], ["b"]
    both = ensemble([a, b])
    assert np.allclose(both.scores, [[0.6, 0.4], [0.3, 0.7]]) and both.runs == ["a", "b"]
    assert evaluate_scored(both).record["accuracy"] == 1.0
    other = _scored([1, 1], [[0.5, 0.5], [0.5, 0.5]])
    other.runs = ["c"]
    with pytest.raises(Exception, match="scored other rows"):
        ensemble([a, other])


def test_series_errors_by_horizon_step_and_the_naive_forecast_by_hand():
    # 2 windows, horizon 2, one target; scaling x2 + 10 back to file units.
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    forecast = np.array([[1.0, 3.0], [2.0, 4.0]])
    naive = np.array([[0.0, 0.0], [3.0, 3.0]])
    s = Scored("regression", y, forecast, Samples(np.full(2, 5), times=[1, 2], time_label="t"),
               series={"targets": ["v"], "horizon": 2, "naive": naive,
                       "scaling": {"method": "standard", "center": {"v": 10.0}, "scale": {"v": 2.0}}})
    r = evaluate_scored(s).record
    assert r["mse"] == pytest.approx(0.5) and r["mae"] == pytest.approx(0.5)
    # step 1: errors 0, -1 -> 0.5; step 2: 1, 0 -> 0.5. Naive: step 1: 1, 0 -> 0.5; step 2: 4, 1 -> 2.5.
    assert [(h["step"], h["mse"], h["naive_mse"]) for h in r["by_horizon"]] == [(1, 0.5, 0.5), (2, 0.5, 2.5)]
    # residuals in file units (x2): actual - forecast = 0, -2 | 2, 0 -> mean 0, mae 1, sd sqrt(2)
    assert r["residuals"]["targets"]["v"]["mean"] == pytest.approx(0.0)
    assert r["residuals"]["targets"]["v"]["mae"] == pytest.approx(1.0)
    assert r["residuals"]["targets"]["v"]["sd"] == pytest.approx(2 ** 0.5)
    # naive in file units: |2 - 0|, |4 - 0|, |6 - 6|, |8 - 6| x2 ... = 2 x (1, 2, 0, 1) / 4 = 2
    assert r["residuals"]["targets"]["v"]["naive_mae"] == pytest.approx(2.0)


# ----------------------------------------------------------------------------- against scikit-learn


@st.composite
def predictions(draw):
    k = draw(st.integers(2, 4))
    n = draw(st.integers(k, 40))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    raw = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n * k, max_size=n * k))).reshape(n, k)
    lengths = np.array(draw(st.lists(st.integers(1, 50), min_size=n, max_size=n)))
    return y, raw / raw.sum(axis=1, keepdims=True), lengths


@settings(max_examples=40, deadline=None)
@given(predictions())
def test_every_classification_number_matches_scikit_learn(drawn):
    y, p, lengths = drawn
    k = p.shape[1]
    r = evaluate_scored(_scored(y, p, lengths)).record
    predicted = p.argmax(axis=1)
    assert r["accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert r["confusion"]["counts"] == metrics.confusion_matrix(y, predicted, labels=list(range(k))).tolist()
    normalized = np.array(r["confusion"]["row_normalized"])
    present = np.bincount(y, minlength=k) > 0
    assert np.allclose(normalized[present].sum(axis=1), 1.0, atol=1e-5)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(y, predicted, labels=list(range(k)),
                                                                             zero_division=0)
    assert [c["precision"] for c in r["per_class"]] == pytest.approx(precision.tolist())
    assert [c["recall"] for c in r["per_class"]] == pytest.approx(recall.tolist())
    assert [c["f1"] for c in r["per_class"]] == pytest.approx(f1.tolist())
    assert [c["support"] for c in r["per_class"]] == support.tolist()
    for c in ([1] if k == 2 else range(k)):
        truth = (y == c).astype(int)
        name = f"c{c}"
        if truth.min() == truth.max():
            assert name not in r["roc"]
            continue
        assert r["roc"][name]["auc"] == pytest.approx(metrics.roc_auc_score(truth, p[:, c]))
        assert r["pr"][name]["average_precision"] == pytest.approx(metrics.average_precision_score(truth, p[:, c]))
    # ECE from its definition, bin by bin
    confidence, correct = p.max(axis=1), predicted == y
    which = np.minimum((confidence * 10).astype(int), 9)
    ece = sum(np.mean(which == b) * abs(correct[which == b].mean() - confidence[which == b].mean())
              for b in range(10) if (which == b).any())
    assert r["calibration"]["ece"] == pytest.approx(ece)
    # by length: every row in one bucket, each bucket's accuracy its rows'
    assert sum(b["count"] for b in r["by_length"]) == len(y)
    for b in r["by_length"]:
        at = (lengths >= b["min_length"]) & (lengths <= b["max_length"])
        assert at.sum() == b["count"] and correct[at].mean() == pytest.approx(b["accuracy"])


# ----------------------------------------------------------------------------- runs and the command


def test_every_finished_run_writes_its_test_evaluation(text_run):
    m = json.loads((text_run / "metrics.json").read_text())
    ev = json.loads((text_run / "evaluation" / "evaluation.json").read_text())
    assert ev["accuracy"] == pytest.approx(m["test"]["accuracy"], abs=1e-6)
    assert ev["n"] == m["n_test"] and m["evaluation_seconds"] > 0
    saved = np.load(text_run / "evaluation" / "predictions.npz")
    counts = metrics.confusion_matrix(saved["y"], saved["scores"].argmax(axis=1), labels=[0, 1]).tolist()
    assert ev["confusion"]["counts"] == counts
    for name in ("confusion", "roc_pr", "reliability", "by_length"):
        assert (text_run / "evaluation" / f"{name}.png").stat().st_size > 1000
    assert all(src.startswith(str(text_run.parent.parent.parent / "reviews.csv") + ":")
               for src in (r["source"] for r in ev["mistakes"]))


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_evaluate_scores_a_run_again_and_as_an_ensemble(runner, text_run, tmp_path):
    m = json.loads((text_run / "metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", str(text_run), "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    one = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    assert one["accuracy"] == pytest.approx(m["test"]["accuracy"], abs=1e-6)
    assert "Most confident mistakes" in result.stdout or one["accuracy"] == 1.0
    # The same run twice is an ensemble of two equal members: the same probabilities.
    result = runner.invoke(app, ["evaluate", str(text_run), str(text_run), "--out", str(tmp_path / "two")])
    assert result.exit_code == 0, result.output
    two = np.load(tmp_path / "two" / "predictions.npz")
    assert np.allclose(two["scores"], np.load(tmp_path / "one" / "predictions.npz")["scores"])
    assert json.loads((tmp_path / "two" / "evaluation.json").read_text())["runs"] == [str(text_run)] * 2


def test_evaluate_on_a_series_file_against_the_naive_forecast(runner, series_run, tmp_path):
    data = series_run.parent.parent.parent / "weather.csv"
    result = runner.invoke(app, ["evaluate", str(series_run), "--data", str(data), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    ev = json.loads((tmp_path / "s" / "evaluation.json").read_text())
    saved = np.load(tmp_path / "s" / "predictions.npz")
    assert ev["mse"] == pytest.approx(float(np.mean((saved["scores"] - saved["y"]) ** 2)))
    # Every window of the 120 rows (window 6, horizon 2, stride 1); the naive forecast repeats the last value.
    assert ev["n"] == 120 - 6 - 2 + 1
    assert [h["step"] for h in ev["by_horizon"]] == [1, 2]
    assert {"forecast.png", "errors.png", "by_length.png"} <= {p.name for p in (tmp_path / "s").iterdir()}


@pytest.mark.parametrize("args, says", [
    (["{text}", "--data", "{series_data}"], "holds numbers only"),
    (["{series}", "--data", "{text_data}"], "no column 'temp'"),
    (["{text}", "--data", "{wrong}"], "no column 'text'"),
    (["{text}", "{series}"], "needs runs of the same data"),
    (["{unfinished}"], "not a finished run folder"),
    (["{text}", "--out", "{busy}"], "never overwrites"),
], ids=["series-file-for-text", "text-file-for-series", "wrong-columns", "mixed-ensemble", "unfinished", "out-exists"])
def test_user_mistakes_are_one_line_and_write_nothing(runner, text_run, series_run, tmp_path, args, says):
    root = text_run.parent.parent.parent
    (tmp_path / "wrong.csv").write_text("words,label\nhello,pos\n")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.yaml").write_text("name: x\n")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    paths = {"text": text_run, "series": series_run, "series_data": series_run.parent.parent.parent / "weather.csv",
             "text_data": root / "reviews.csv", "wrong": tmp_path / "wrong.csv",
             "unfinished": tmp_path / "unfinished", "busy": tmp_path / "busy"}
    before = {p: sorted(x.name for x in p.iterdir()) for p in (text_run, series_run)}
    out = [] if "--out" in args else ["--out", str(tmp_path / "new")]
    result = runner.invoke(app, ["evaluate", *[a.format(**paths) for a in args], *out])
    assert says in assert_user_error(result, tmp_path / "new")
    assert before == {p: sorted(x.name for x in p.iterdir()) for p in (text_run, series_run)}
    assert sorted(x.name for x in (tmp_path / "busy").iterdir()) == ["keep.txt"]
