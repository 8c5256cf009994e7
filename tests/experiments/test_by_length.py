"""compare's accuracy by input length, the long-inputs verdict and the ensembles of seeds, on runs whose
evaluation/predictions.npz is written by hand: every number a hand-computed case."""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml

from gru_lab.experiments.by_length import CLAIM_LONG_INPUTS, length_report, struggles
from gru_lab.experiments.compare import CompareResult, plan_compare
from gru_lab.experiments.executor import RunOutcome
from gru_lab.experiments.verdicts import FAILS, HOLDS, INCONCLUSIVE
from gru_lab.files import atomic_write_bytes
from gru_lab.report.compare_lengths import length_markdown, write_length_files

Y = np.array([1, 0, 1, 0, 1, 0, 1, 0])  # lengths 1..8: quartiles (1-2, 3-4, 5-6, 7-8)
RIGHT = np.where(Y == 1, 0.9, 0.1)  # P(pos) that answers every row right with confidence 0.9


def _predictions(folder, positive):
    buf = io.BytesIO()
    np.savez_compressed(buf, y=Y, scores=np.stack([1 - positive, positive], 1), lengths=np.arange(1, 9),
                        truncated=np.arange(1, 9) > 6)
    atomic_write_bytes(folder / "evaluation" / "predictions.npz", buf.getvalue())


@pytest.fixture
def result(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"w{i},{'ab'[i % 2]}\n" for i in range(10)))
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "name": "lengths", "data": {"name": "text", "path": str(tmp_path / "t.csv")},
        "model": {"cell": "gru", "units": 4, "embedding_dim": 4},
        "output": {"dir": str(tmp_path / "results")}}))
    plan = plan_compare(tmp_path / "base.yaml", cells=["rnn", "gru"], seeds=2)
    p = {}
    # SimpleRNN: seed 1 gets row 7 right (0.9) and row 8 wrong (0.8); seed 2 gets both wrong (0.2, 0.7).
    p[("simple_rnn", 0)] = np.r_[RIGHT[:6], 0.9, 0.8]
    p[("simple_rnn", 1)] = np.r_[RIGHT[:6], 0.2, 0.7]
    # GRU: seed 1 misses row 1 (0.3), seed 2 is right everywhere.
    p[("gru", 0)] = np.r_[0.3, RIGHT[1:]]
    p[("gru", 1)] = RIGHT.copy()
    outcomes = []
    for run in plan.runs:
        folder = tmp_path / "runs" / run.run_id
        _predictions(folder, p[(run.cell, run.seed - plan.seeds[0])])
        outcomes.append(RunOutcome(run, "finished", folder=folder, metrics={}))
    return CompareResult(plan, outcomes, False, "inline", 0.0)


def test_accuracy_by_length_per_cell_and_the_long_inputs_verdicts(result, tmp_path):
    report = length_report(result)
    rnn = report.table[report.table.cell == "simple_rnn"]
    assert rnn[["min_length", "max_length", "count"]].values.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2], [7, 8, 2]]
    assert rnn.accuracy_mean.tolist() == [1.0, 1.0, 1.0, 0.25]
    assert rnn.accuracy_sd.iloc[-1] == pytest.approx(np.std([0.5, 0.0], ddof=1))
    assert rnn.truncated_share.tolist() == [0.0, 0.0, 0.0, 1.0]
    gru = report.table[report.table.cell == "gru"]
    assert gru.accuracy_mean.tolist() == [0.75, 1.0, 1.0, 1.0]
    verdicts = {v.claim: v for v in report.verdicts}
    # SimpleRNN: 1.0 -> 0.25, a shortfall of 0.75 against a spread of hypot(0, 0.354) = 0.354.
    rnn_v = verdicts["SimpleRNN struggles with long inputs"]
    assert rnn_v.status == HOLDS and rnn_v.numbers["shortfall"] == pytest.approx(0.75)
    assert rnn_v.numbers["spread"] == pytest.approx(np.std([0.5, 0.0], ddof=1))
    assert verdicts["GRU struggles with long inputs"].status == FAILS  # better on its longest quarter
    assert verdicts[CLAIM_LONG_INPUTS].status == HOLDS


def test_the_ensemble_averages_the_seeds_probabilities(result, tmp_path):
    report = length_report(result)
    ens = report.ensembles.set_index("cell")
    # SimpleRNN: row 7 -> (0.9 + 0.2) / 2 = 0.55, right; row 8 -> 0.75, wrong: 7 of 8. Its seeds: 7/8 and 6/8.
    assert ens.loc["simple_rnn", "accuracy"] == pytest.approx(7 / 8)
    assert ens.loc["simple_rnn", "seeds_accuracy_mean"] == pytest.approx((7 / 8 + 6 / 8) / 2)
    assert ens.loc["simple_rnn", "by_length"] == [1.0, 1.0, 1.0, 0.5]
    # the ensemble's shortfall 0.5 against its seeds' spread 0.354: it struggles too
    assert ens.loc["simple_rnn", "struggles_with_long_inputs"] == HOLDS
    # GRU: row 1 -> (0.3 + 0.9) / 2 = 0.6, right: every row.
    assert ens.loc["gru", "accuracy"] == 1.0
    assert ens.loc["gru", "model"] == "GRU, ensemble of 2 seeds"
    files = write_length_files(report, tmp_path)
    assert {p.name for p in files.values()} == {"comparison_by_length.csv", "comparison_ensembles.csv",
                                                 "by_length.png"}
    text = "\n".join(length_markdown(report))
    assert "## Accuracy by input length" in text and "GRU, ensemble of 2 seeds" in text


@pytest.mark.parametrize("short, long_, status", [
    ((0.9, 0.02), (0.8, 0.02), HOLDS),  # shortfall 0.1 > spread 0.028
    ((0.9, 0.1), (0.8, 0.1), FAILS),  # shortfall 0.1 < spread 0.141
    ((0.9, None), (0.8, None), INCONCLUSIVE),  # one seed: no spread
], ids=["outside-spread", "inside-spread", "one-seed"])
def test_struggles_is_a_shortfall_beyond_the_seed_spread(short, long_, status):
    def bucket(mean, sd, lo):
        return {"accuracy_mean": mean, "accuracy_sd": sd, "runs": 1 if sd is None else 3, "min_length": lo,
                "max_length": lo + 9, "truncated_share": 0.0}

    assert struggles("X", [bucket(*short, 1), bucket(*long_, 90)], "accuracy", True).status == status
    assert struggles("X", [bucket(*short, 1)], "accuracy", True).status == INCONCLUSIVE  # one length only
