"""Every selection on validation: a sweep whose test and validation disagree names the validation's best, shows
the validation column beside test and states its tie rule; ties go by the rule. Run records are written by hand
(metrics.json's numbers and a history.csv), so no model trains here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gru_lab.experiments.executor import RunOutcome
from gru_lab.experiments.selection import TIE_RULE, ranking, validation_of
from gru_lab.experiments.sweep import SweepResult, plan_sweep, summarize
from gru_lab.report.sweep import sweep_markdown


def base(results: Path) -> dict:
    return {"name": "sel", "seed": 1, "data": {"name": "sine", "window": 6, "n_train": 32, "n_val": 8, "n_test": 8},
            "model": {"cell": "gru", "units": 3}, "train": {"epochs": 2, "batch_size": 16},
            "output": {"dir": str(results), "save_model": False}}


def record(folder: Path, val_losses: list[float], test_mse: float, evaluated: int | None = None) -> dict:
    """A finished regression run's folder: history.csv with these val_loss per epoch, and its metrics."""
    folder.mkdir(parents=True)
    with open(folder / "history.csv", "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["epoch", "seconds", "loss", "val_loss"])
        for epoch, v in enumerate(val_losses, start=1):
            w.writerow([epoch, 0.1, 1.0, v])
    return {"status": "finished", "task": "regression", "test": {"mse": test_mse, "loss": test_mse},
            "evaluated_epoch": evaluated or len(val_losses), "best_epoch": 1, "params": {"total": 40, "recurrent": 30}}


def sweep_of(tmp_path: Path, numbers: list[tuple[list[float], float]]) -> SweepResult:
    """A sweep over model.units = 2, 3, 4 (one seed) whose runs recorded these (val_loss per epoch, test mse)."""
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(base(tmp_path / "results")))
    plan = plan_sweep(path, grid=[f"model.units={','.join(str(2 + i) for i in range(len(numbers)))}"])
    outcomes = []
    for run, (val, test) in zip(plan.runs, numbers):
        folder = plan.folder / run.run_id
        outcomes.append(RunOutcome(run, "finished", folder, record(folder, val, test)))
    return SweepResult(plan, outcomes, False, "inline", 0.0, {"name": "local"}, {})


def test_a_sweep_whose_test_and_validation_disagree_chooses_on_validation(tmp_path):
    # units=2 has the best test mse and the worst validation; units=3 the best validation (at its tested epoch,
    # the last: its epoch 1 was better still, but those weights were not the ones tested).
    result = sweep_of(tmp_path, [([0.9, 0.5], 0.10), ([0.05, 0.20], 0.40), ([0.4, 0.30], 0.20)])
    rep = summarize(result)
    rows = rep.table[rep.table.kind == "recurrent"].to_dict(orient="records")
    assert [r["val_mean"] for r in rows] == pytest.approx([0.5, 0.2, 0.3])
    assert [r["metric_mean"] for r in rows] == pytest.approx([0.1, 0.4, 0.2])
    assert [r["val_rank"] for r in rows] == [3, 1, 2]
    best = [n for n in rep.notes if n.startswith("best: ")]
    assert len(best) == 1 and best[0].startswith("best: model.units=3 ")
    assert "val_mse 0.2" in best[0] and TIE_RULE in best[0] and "never used to choose" in best[0]
    md = sweep_markdown(result, rep)
    header = next(line for line in md.splitlines() if line.startswith("| model.units"))
    assert "rank (val)" in header and header.index("val_mse (mean ± sd)") < header.index("test mse (mean ± sd)")


def test_no_validation_split_chooses_nothing_rather_than_test(tmp_path):
    result = sweep_of(tmp_path, [([0.5], 0.1), ([0.2], 0.4)])
    for o in result.outcomes:
        (o.folder / "history.csv").write_text("epoch,seconds,loss\n1,0.1,1.0\n")
    rep = summarize(result)
    assert not any(n.startswith("best: model.units") for n in rep.notes)
    assert any(n.startswith("best: none chosen") for n in rep.notes)


def test_validation_is_read_at_the_tested_epoch(tmp_path):
    metrics = record(tmp_path / "run", [0.3, 0.1, 0.2], 0.5, evaluated=2)  # early stopping restored epoch 2
    assert validation_of(tmp_path / "run", metrics, "regression") == {"val_value": 0.1, "val_loss": 0.1}
    assert validation_of(None, metrics, "regression") == {"val_value": None, "val_loss": None}


ROW = {"val_mean": 0.9, "val_loss_mean": 0.3, "params_total": 100}
TIES = [
    ("higher-accuracy-wins", True, [ROW, {**ROW, "val_mean": 0.95}], [1, 0]),
    ("lower-mse-wins", False, [ROW, {**ROW, "val_mean": 0.5}], [1, 0]),
    ("tie-lower-val-loss", True, [ROW, {**ROW, "val_loss_mean": 0.2}], [1, 0]),
    ("tie-fewer-params", True, [ROW, {**ROW, "params_total": 50}], [1, 0]),
    ("tie-plan-order", True, [ROW, dict(ROW), dict(ROW)], [0, 1, 2]),
    ("tie-to-12-digits", True, [{**ROW, "val_mean": 0.1 + 0.2}, {**ROW, "val_mean": 0.3, "params_total": 50}],
     [1, 0]),
    ("no-validation-never-chosen", True, [{**ROW, "val_mean": None}, ROW], [1]),
]


@pytest.mark.parametrize("higher,rows,order", [t[1:] for t in TIES], ids=[t[0] for t in TIES])
def test_the_tie_rule(higher, rows, order):
    # A test number in a row must never move it: the rows carry a test metric that disagrees with validation.
    rows = [{**r, "metric_mean": -i if higher else i} for i, r in enumerate(rows)]
    assert ranking(rows, higher) == order


def test_compare_shows_validation_beside_test_and_says_what_chose_the_best_epoch(tmp_path):
    from gru_lab.experiments.compare import BEST_EPOCH_NOTE, CompareResult, plan_compare
    from gru_lab.experiments.compare import summarize as compare_summary
    from gru_lab.report.compare import comparison_markdown

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(base(tmp_path / "results")))
    plan = plan_compare(path, cells=["gru", "lstm"], seeds=1)
    numbers = {"gru": ([0.3, 0.25], 0.5), "lstm": ([0.2, 0.1], 0.6)}
    outcomes = [RunOutcome(r, "finished", plan.folder / r.run_id,
                           record(plan.folder / r.run_id, *numbers[r.cell])) for r in plan.runs]
    result = CompareResult(plan, outcomes, False, "inline", 0.0, {})
    comp = compare_summary(result)
    rows = comp.table[comp.table.kind == "recurrent"].set_index("cell")
    assert rows.val_mean.to_dict() == pytest.approx({"gru": 0.25, "lstm": 0.1})
    assert BEST_EPOCH_NOTE in comp.notes
    header = next(line for line in comparison_markdown(result, comp).splitlines() if line.startswith("| model"))
    assert header.index("val_mse (mean ± sd)") < header.index("test mse (mean ± sd)")


def test_the_leaderboard_ranks_on_validation_and_ties_never_fall_back_on_test(tmp_path, runner):
    from gru_lab.cli import app
    from gru_lab.experiments.selection import rank_on_validation
    from gru_lab.runs.records import leaderboard_frame

    # (run id, val_loss per epoch, test mse): b and c tie on validation; c has the better test, b the earlier id.
    runs = [("a-run", [0.5], 0.1), ("b-run", [0.2], 0.4), ("c-run", [0.2], 0.3), ("d-run", None, 0.05)]
    for run_id, val, test in runs:
        folder = tmp_path / "lab" / run_id
        metrics = record(folder, val or [0.1], test)
        if val is None:  # no validation split: history without val_loss
            (folder / "history.csv").write_text("epoch,seconds,loss\n1,0.1,1.0\n")
        (folder / "metrics.json").write_text(json.dumps({**metrics, "name": "lab", "run_id": run_id}))
        (folder / "config.yaml").write_text(yaml.safe_dump(base(tmp_path)))
    board = rank_on_validation(leaderboard_frame(tmp_path), tmp_path)
    assert list(board.run_id) == ["b-run", "c-run", "a-run", "d-run"]
    assert [None if r is pd.NA else r for r in board["rank"]] == [1, 2, 3, None]
    assert list(board.val_value[:3]) == pytest.approx([0.2, 0.2, 0.5])
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "leaderboard.md").read_text()
    assert "ranked within each dataset by the validation metric" in md and "never used to rank" in md
    assert md.index("b-run") < md.index("c-run") < md.index("a-run") < md.index("d-run")
    assert "| - | lab | d-run |" in md  # unranked: no validation


@pytest.mark.parametrize("rec,text", [
    ({"diverged": float("nan")}, "-"),  # a classical baseline's row: no validation, nothing diverged
    ({"diverged": 0}, "-"),
    ({"diverged": 2}, "diverged"),
], ids=["baseline-row", "none-diverged", "all-diverged"])
def test_an_empty_validation_cell(rec, text):
    from gru_lab.report.format import format_cell

    assert format_cell("val_mean", None, rec) == text


def test_compare_sets_simple_rnn_against_the_gated_cell_validation_chose(tmp_path):
    from gru_lab.experiments.compare import CompareResult, plan_compare
    from gru_lab.experiments.compare import summarize as compare_summary
    from gru_lab.experiments.verdicts import CLAIM_LONG, FAILS

    raw = {**base(tmp_path / "results"), "data": {"name": "adding", "length": 10, "n_train": 32, "n_val": 8,
                                                   "n_test": 8}}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(raw))
    plan = plan_compare(path, cells=["rnn", "gru", "lstm"], seeds=2, lengths=["10,40"])
    # (validation mse, test mse) per cell at T=40; at T=10 every cell learns. GRU has the best test, LSTM the best
    # validation; SimpleRNN is within the spread of LSTM.
    at_40 = {"simple_rnn": [(0.4, 0.3), (0.4, 0.5)], "gru": [(0.05, 0.01), (0.05, 0.02)],
             "lstm": [(0.02, 0.30), (0.02, 0.40)]}
    outcomes = []
    for r in plan.runs:
        val, test = at_40[r.cell][plan.seeds.index(r.seed)] if r.length == 40 else (0.01, 0.01)
        folder = plan.folder / r.run_id
        metrics = {**record(folder, [val], test), "data": {"baseline_mse": 1.0}}
        outcomes.append(RunOutcome(r, "finished", folder, metrics))
    verdict = {v.claim: v for v in compare_summary(CompareResult(plan, outcomes, False, "inline", 0.0, {})).verdicts}
    long_dep = verdict[CLAIM_LONG]
    assert long_dep.status == FAILS and "T=40: SimpleRNN 0.400±0.141 vs LSTM 0.350" in long_dep.detail
