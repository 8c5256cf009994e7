"""compare: plans validated up front, exact parameter counts, equal budgets, resume after a kill,
failures that lose nothing, verdicts, and the CLI (`compare`, `report`) end to end."""

from __future__ import annotations

import csv
import json
import shutil
import statistics

import pytest
import yaml

from gru_lab.cli import app
from gru_lab.data import spec_for
from gru_lab.errors import GruLabError
from gru_lab.experiments import compare, executor
from gru_lab.experiments import verdicts as claims
from gru_lab.experiments.compare import (
    CompareResult,
    comparison_frame,
    execute,
    plan_compare,
    recurrent_count,
    solve_units,
    summarize,
)
from gru_lab.experiments.executor import RunFailed, RunOutcome
from gru_lab.experiments.verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    accuracy_verdict,
    long_dependency_verdict,
    params_verdict,
    speed_verdict,
)
from gru_lab.report.compare import write_comparison
from gru_lab.runs.folder import unfinished_folders
from gru_lab.runs.records import leaderboard_frame
from tests.conftest import assert_user_error
from tests.test_cells import formula


def tiny(results, **model) -> dict:
    """A compare base that trains in about a second a run: 32 short sine windows, 1 epoch."""
    return {
        "name": "cmp", "seed": 3,
        "data": {"name": "sine", "window": 6, "n_train": 32, "n_val": 8, "n_test": 8},
        "model": {"cell": "gru", "units": 3, **model},
        "train": {"epochs": 1, "batch_size": 16},
        "output": {"dir": str(results), "save_model": False, "evaluation": False},
    }


def write(path, raw: dict):
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Counting:
    """A runner that trains in this process and remembers what it trained; can fail or be interrupted."""

    def __init__(self, fail_cell: str | None = None, ctrl_c_at: int | None = None):
        self.trained: list[str] = []
        self.fail_cell, self.ctrl_c_at = fail_cell, ctrl_c_at

    def __call__(self, run, on_epoch=None):
        if run.cell == self.fail_cell:
            raise RuntimeError("simulated crash in this run")
        if self.ctrl_c_at is not None and len(self.trained) == self.ctrl_c_at:
            def press_ctrl_c(info):  # Ctrl-C in the middle of fit, as a user would press it
                raise KeyboardInterrupt

            return executor.train_and_save(run.cfg, run.run_id, press_ctrl_c)
        folder = executor.run_inline(run, on_epoch)
        self.trained.append(run.run_id)
        return folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """rnn, lstm and gru, one seed each, trained inline."""
    tmp = tmp_path_factory.mktemp("compare")
    path = write(tmp / "base.yaml", tiny(tmp / "results"))
    plan = plan_compare(path, cells=["rnn", "lstm", "gru"], seeds=1)
    return execute(plan, runner=executor.run_inline)


# ----------------------------------------------------------------------------- the table


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_table_parameter_counts_equal_the_formulas(finished):
    frame = comparison_frame(finished)
    table = frame[frame.kind == "recurrent"].set_index("cell")
    assert list(table.index) == ["simple_rnn", "lstm", "gru"]
    assert list(table.model) == ["SimpleRNN(3)", "LSTM(3)", "GRU(3)"]
    for cell in table.index:
        recurrent = formula(cell, 1, 3)
        assert table.loc[cell, "params_recurrent"] == recurrent
        assert table.loc[cell, "params_total"] == recurrent + (3 + 1)  # + Dense(3 -> 1)
        assert table.loc[cell, "recurrent_vs_lstm_pct"] == pytest.approx(100 * recurrent / formula("lstm", 1, 3))
    assert table.loc["simple_rnn", "cudnn"].startswith("no: ") and table.loc["gru", "cudnn"] == "yes"


def test_table_numbers_come_from_the_run_records(finished):
    table = comparison_frame(finished).set_index("cell")
    for outcome in finished.outcomes:
        m = json.loads((outcome.folder / "metrics.json").read_text())
        row = table.loc[outcome.run.cell]
        assert row["s_per_epoch"] == m["median_epoch_seconds"]
        assert row["metric_mean"] == m["test"]["mse"] and row["runs"] == "1/1"
        assert row["infer_ms_per_sample"] == m["inference_ms_per_sample"]
        assert row["peak_rss_mib"] == m["peak_memory"]["rss_mib"] > 0
        assert row["params_total"] == m["params"]["total"]


def test_relative_to_lstm_uses_the_formulas_when_no_lstm_ran(tmp_path):
    plan = plan_compare(write(tmp_path / "b.yaml", tiny(tmp_path / "r", units=5)), cells=["gru", "rnn"], seeds=1)
    result = CompareResult(plan, [RunOutcome(r, "not run") for r in plan.runs], False, "inline", 0.0)
    comp = summarize(result)
    gru = comp.table.set_index("cell").loc["gru"]
    assert gru["recurrent_vs_lstm_pct"] == pytest.approx(100 * formula("gru", 1, 5) / formula("lstm", 1, 5))
    assert gru["params_recurrent"] == formula("gru", 1, 5) and gru["runs"] == "0/1"
    assert any("no LSTM in this compare" in note for note in comp.notes)


# ----------------------------------------------------------------------------- planning


def test_plan_validates_every_variant_and_ids_are_deterministic(tmp_path):
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "r"))
    plan = plan_compare(path, cells=["gru", "simplernn"], seeds=3)
    assert [(r.cell, r.seed) for r in plan.runs] == [(c, s) for s in (3, 4, 5) for c in ("gru", "simple_rnn")]
    assert len({r.run_id for r in plan.runs}) == 6
    assert all(r.run_id.startswith(f"{r.cell}-s{r.seed}-") for r in plan.runs)
    assert [r.run_id for r in plan_compare(path, cells=["gru", "rnn"], seeds=3).runs] == [r.run_id for r in plan.runs]
    assert all(r.cfg.seed == 3 for r in plan.runs)  # same data for every run; only train.seed varies
    # A setting that is fine for GRU but not for SimpleRNN is caught before anything runs.
    with pytest.raises(GruLabError, match="compare cell simple_rnn.*recurrent_activation"):
        plan_compare(path, ["model.recurrent_activation=hard_sigmoid"], cells=["gru", "rnn"])
    assert not (tmp_path / "r").exists()


def test_lengths_sweep_the_adding_problem(tmp_path):
    raw = tiny(tmp_path / "r")
    raw["data"] = {"name": "adding", "length": 20, "n_train": 16, "n_val": 8, "n_test": 8}
    plan = plan_compare(write(tmp_path / "b.yaml", raw), cells=["rnn"], seeds=1, lengths=["8,4", "8"])
    assert plan.lengths == [4, 8] and [r.cfg.data.length for r in plan.runs] == [4, 8]
    assert plan_compare(None).lengths == list(compare.EMBEDDED_LENGTHS)  # the embedded default brings its own
    chosen = plan_compare(None, ["data.length=20"], cells=["gru"], seeds=1)  # ... unless the user picks T
    assert chosen.lengths is None and chosen.runs[0].cfg.data.length == 20


# ----------------------------------------------------------------------------- equal budgets

BUDGET_CASES = [
    ("adding-64", {"name": "adding", "length": 10}, {"units": 64}, None),
    ("sine-bi-stacked", {"name": "sine", "window": 8}, {"units": 48, "num_layers": 2, "bidirectional": True}, None),
    ("imdb-embedding", {"name": "imdb", "num_words": 1000, "maxlen": 20}, {"units": 64, "embedding_dim": 32}, None),
    ("conv-front", {"name": "sine", "window": 16}, {"units": 64, "conv": {"filters": 8, "kernel_size": 3}}, None),
    ("explicit-budget", {"name": "adding", "length": 10}, {"units": 8}, 50_000),
]


@pytest.mark.parametrize("data,model,budget", [c[1:] for c in BUDGET_CASES], ids=[c[0] for c in BUDGET_CASES])
def test_equal_params_budgets_land_within_2_percent(tmp_path, data, model, budget):
    raw = {"name": "eq", "data": data, "model": model, "output": {"dir": str(tmp_path / "r")}}
    plan = plan_compare(write(tmp_path / "b.yaml", raw), cells=["rnn", "lstm", "gru"], seeds=1,
                        equal_params=True, budget=budget)
    spec = spec_for(plan.base.data)
    expected_budget = budget or recurrent_count(plan.base.model, spec, "gru")
    assert plan.budget == expected_budget
    counts = {}
    for run in plan.runs:
        u = run.cfg.model.units
        counts[run.cell] = recurrent_count(run.cfg.model, spec, run.cell)
        # The solver's choice is the exact minimiser of |count - budget| over integer units.
        best = min(range(1, 3 * u + 3),
                   key=lambda v: (abs(recurrent_count(run.cfg.model, spec, run.cell, v) - plan.budget), v))
        assert u == best
    assert max(counts.values()) / min(counts.values()) <= 1.02
    assert all(abs(c - plan.budget) / plan.budget <= 0.02 for c in counts.values())


def test_a_budget_too_small_for_2_percent_says_so(tmp_path):
    raw = {"name": "eq", "data": {"name": "sine", "window": 8}, "model": {"units": 4}, "output": {"dir": str(tmp_path)}}
    plan = plan_compare(write(tmp_path / "b.yaml", raw), cells=["rnn", "lstm", "gru"], seeds=1, equal_params=True)
    assert plan.budget == formula("gru", 1, 4)
    assert any("cannot land within 2%" in note for note in plan.notes), plan.notes


def test_solve_units_matches_the_closed_form_for_one_layer():
    from gru_lab.config import ModelConfig

    spec = spec_for(plan_compare(None).base.data)  # adding: 2 features
    m = ModelConfig(units=1)
    for cell in ("simple_rnn", "lstm", "gru"):
        for budget in (10, 1_000, 123_457):
            u = solve_units(m, spec, cell, budget)
            assert abs(formula(cell, 2, u) - budget) <= min(abs(formula(cell, 2, u + 1) - budget),
                                                             abs(formula(cell, 2, max(u - 1, 1)) - budget))


# ----------------------------------------------------------------------------- resume and failure


def _stamps(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.iterdir()}


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_resume_redoes_only_the_missing_runs(tmp_path):
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "r"))
    first = Counting()
    result = execute(plan_compare(path, cells=["gru", "lstm"], seeds=2), runner=first)
    assert len(first.trained) == 4 and all(o.status == "finished" for o in result.outcomes)
    folders = {o.run.run_id: o.folder for o in result.outcomes}
    deleted = result.outcomes[1].run.run_id
    shutil.rmtree(folders.pop(deleted))
    before = {rid: _stamps(f) for rid, f in folders.items()}

    again = Counting()
    result = execute(plan_compare(path, cells=["gru", "lstm"], seeds=2), runner=again)
    assert again.trained == [deleted]
    assert ({o.run.run_id: o.status for o in result.outcomes}
            == {rid: "reused" for rid in folders} | {deleted: "finished"})
    assert {rid: _stamps(f) for rid, f in folders.items()} == before  # finished runs untouched


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_ctrl_c_keeps_finished_runs_and_a_rerun_does_the_rest(tmp_path):
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "r"))
    plan = plan_compare(path, cells=["rnn", "gru", "lstm"], seeds=1)
    killed = Counting(ctrl_c_at=1)  # Ctrl-C during the second run's fit, right after its epoch
    result = execute(plan, runner=killed)
    assert result.interrupted and [o.status for o in result.outcomes] == ["finished", "not run", "not run"]
    folder = tmp_path / "r" / "cmp"
    # no half-written run: the finished one, and the stopped one's epoch kept hidden for the re-run
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [plan.runs[0].run_id]
    (unfinished,) = unfinished_folders(folder)
    assert unfinished.run_id == plan.runs[1].run_id and unfinished.epochs_done == 1
    write_comparison(result)  # the views show what is there

    again = Counting()
    result = execute(plan_compare(path, cells=["rnn", "gru", "lstm"], seeds=1), runner=again)
    assert again.trained == [r.run_id for r in plan.runs[1:]] and not result.interrupted
    resumed = result.outcomes[1].metrics
    assert resumed["resumed"] == [{"from_epoch": 2}] and resumed["epochs_run"] == 1  # its epoch was not redone
    assert "resumed" not in result.outcomes[2].metrics and not unfinished_folders(folder)


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_a_failing_run_is_recorded_loses_nothing_and_is_retried(tmp_path):
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "r"))
    plan = plan_compare(path, cells=["gru", "lstm", "rnn"], seeds=1)
    result = execute(plan, runner=Counting(fail_cell="lstm"))
    status = {o.run.cell: o for o in result.outcomes}
    assert status["gru"].status == status["simple_rnn"].status == "finished"
    assert status["lstm"].status == "failed" and "simulated crash" in status["lstm"].error
    log = plan.folder / "failures" / f"{status['lstm'].run.run_id}.log"
    assert "RuntimeError: simulated crash" in log.read_text()

    comp = write_comparison(result)
    record = json.loads((plan.folder / "comparison.json").read_text())
    lstm_row = next(r for r in record["table"] if r["cell"] == "lstm")
    assert lstm_row["runs"] == "0/1" and "simulated crash" in lstm_row["errors"]
    assert next(r for r in record["runs"] if r["cell"] == "lstm")["status"] == "failed"
    assert "simulated crash" in (plan.folder / "comparison.md").read_text()
    assert comp.table.set_index("cell").loc["gru", "metric_mean"] == status["gru"].metrics["test"]["mse"]

    retry = Counting()
    execute(plan_compare(path, cells=["gru", "lstm", "rnn"], seeds=1), runner=retry)
    assert retry.trained == [status["lstm"].run.run_id] and not (plan.folder / "failures").exists()


def test_worker_process_failure_is_one_line_and_a_log(tmp_path):
    raw = tiny(tmp_path / "r", embedding_dim=4)
    raw["data"] = {"name": "imdb", "path": str(tmp_path / "no-such-imdb"), "maxlen": 10}
    plan = plan_compare(write(tmp_path / "b.yaml", raw), cells=["gru"], seeds=1)
    with pytest.raises(RunFailed) as failed:
        executor.run_in_subprocess(plan.runs[0])
    assert str(failed.value).startswith("exit code 2: error: ") and "no-such-imdb" in str(failed.value)
    assert "Traceback" not in failed.value.log


def test_a_worker_the_out_of_memory_killer_took_is_named_so(tmp_path, monkeypatch):
    """The kernel's count of out-of-memory kills (cgroup memory.events) rising while a worker died of SIGKILL
    says who killed it; without that count the line still guesses."""
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert executor.oom_kill_count(str(tmp_path)) == 1
    assert executor.oom_kill_count(str(tmp_path / "none")) is None
    line = executor._failure_line(-9, "Epoch 3\n", oom_kills=1)
    assert line.startswith("worker killed by the kernel's out-of-memory killer (SIGKILL)") and "Epoch 3" in line
    assert executor._failure_line(-9, "", oom_kills=0).startswith("worker killed by SIGKILL (out of memory?)")


def test_the_best_epoch_cell_says_when_the_test_metric_is_from_another_epoch():
    """Without restored weights the test metric is the last epoch's: the table says so beside the best epoch."""
    from gru_lab.experiments.tables import epoch_text

    assert epoch_text(11, 12) == "11 (test: 12)"
    assert epoch_text(5, 5) == "5" and epoch_text(3.0, None) == "3"  # records written before evaluated_epoch


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_resumed_by_the_rerun_to_the_uninterrupted_numbers(tmp_path):
    """SIGKILL the worker process (as the out-of-memory killer would) after its second saved epoch: the
    compare records the run as failed; the re-run continues it from its third epoch, and its history and test
    metrics equal a run that was never killed."""
    import os
    import signal
    import threading
    import time

    from tests.experiments.test_sweep import _worker_pids

    raw = tiny(tmp_path / "r")
    raw["data"]["n_train"], raw["train"]["epochs"] = 2048, 12
    plan = plan_compare(write(tmp_path / "b.yaml", raw), cells=["gru"], seeds=1)
    killed: list[int] = []

    def kill_after_two_epochs() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for u in unfinished_folders(plan.folder) if plan.folder.is_dir() else []:
                if u.epochs_done >= 2 and _worker_pids():
                    os.kill(_worker_pids()[0], signal.SIGKILL)
                    killed.append(u.epochs_done)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_two_epochs, daemon=True)
    watcher.start()
    first = execute(plan)
    watcher.join()
    assert killed and first.outcomes[0].status == "failed" and "SIGKILL" in first.outcomes[0].error
    (left,) = unfinished_folders(plan.folder)
    assert left.epochs_done >= 2 and not left.in_use

    again = execute(plan_compare(write(tmp_path / "b.yaml", raw), cells=["gru"], seeds=1))
    (outcome,) = again.outcomes
    assert outcome.status == "finished" and outcome.metrics["resumed"][0]["from_epoch"] == left.epochs_done + 1
    assert not unfinished_folders(plan.folder) and not (plan.folder / "failures").exists()

    reference_raw = {**raw, "output": {**raw["output"], "dir": str(tmp_path / "whole")}}
    whole = execute(plan_compare(write(tmp_path / "w.yaml", reference_raw), cells=["gru"], seeds=1)).outcomes[0]
    assert outcome.metrics["test"] == pytest.approx(whole.metrics["test"], abs=1e-5, rel=1e-5)
    ours, theirs = (list(csv.DictReader((o.folder / "history.csv").open())) for o in (outcome, whole))
    assert len(ours) == len(theirs) == 12
    for a, b in zip(ours, theirs):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), abs=1e-5, rel=1e-5)


# ----------------------------------------------------------------------------- verdicts


def test_params_verdict():
    v = params_verdict(75, 100, "measured")
    assert v.status == HOLDS and "25.0% fewer" in v.detail and "inside the tutorials' 25-40%" in v.detail
    # Keras's GRU keeps two bias vectors (reset_after=True), so it is always a little over 3/4 of LSTM.
    v = params_verdict(formula("gru", 2, 32), formula("lstm", 2, 32), "measured")
    assert v.status == HOLDS and "22.9% fewer" in v.detail and "outside" in v.detail
    assert params_verdict(200, 100, "x").status == FAILS
    assert params_verdict(None, 100, "x").status == INCONCLUSIVE


@pytest.mark.parametrize("pairs,status", [
    ([(1.0, 2.0), (1.1, 2.0), (0.9, 1.5)], HOLDS),
    ([(2.0, 1.0), (2.1, 1.1)], FAILS),
    ([(2.0, 1.0), (2.5, 2.0)], INCONCLUSIVE),  # slower in both pairs, but by less than LSTM's seeds vary
    ([(0.9, 1.0), (1.2, 1.0)], INCONCLUSIVE),  # the spread straddles 1
    ([(0.5, 1.0)], INCONCLUSIVE),  # one pair: no spread
    ([], INCONCLUSIVE),
], ids=["faster", "slower", "slower-within-spread", "straddles", "one-pair", "none"])
def test_speed_verdict(pairs, status):
    v = speed_verdict(pairs, ("fused+xla", "fused"))  # one tier: fused with and without XLA
    assert v.status == status
    if pairs:
        assert v.numbers["ratio_median"] == pytest.approx(statistics.median(gru / lstm for gru, lstm in pairs))


def test_speed_verdict_judges_only_kernels_of_one_tier_and_states_a_ratio():
    pairs = [(1.0, 2.4), (1.0, 2.4)]
    same = speed_verdict(pairs, ("compiled", "compiled"))
    assert same.status == HOLDS and same.finding.startswith("GRU 2.40x as fast as LSTM")
    assert "compiled tier" in same.detail
    assert "%" not in same.detail
    differ = speed_verdict(pairs, ("compiled", "fused+xla"))
    assert differ.status == INCONCLUSIVE and "GRU_LAB_COMPILED=0" in differ.detail
    assert "GRU compiled (tier compiled), LSTM fused+xla (tier fused)" in differ.detail
    mixed = speed_verdict(pairs, ("compiled, fused", "fused"))  # GRU's seeds ran two tiers
    assert mixed.status == INCONCLUSIVE and "tier compiled, fused" in mixed.detail
    unknown = speed_verdict(pairs, (None, "fused"))  # a record from before kernels were recorded
    assert unknown.status == INCONCLUSIVE and "GRU not recorded" in unknown.detail
    assert speed_verdict([(1.3, 1.0), (1.3, 1.0)], ("fused", "fused")).finding.startswith("LSTM 1.30x as fast as GRU")


@pytest.mark.parametrize("groups,higher,status", [
    ({None: ([0.85, 0.87], [0.86, 0.88])}, True, HOLDS),
    ({None: ([0.70, 0.71], [0.86, 0.87])}, True, FAILS),
    ({10: ([0.01, 0.012], [0.011, 0.013]), 40: ([0.02, 0.03], [0.5, 0.52])}, False, FAILS),
    ({None: ([0.85], [0.86])}, True, INCONCLUSIVE),  # one seed: no spread
], ids=["inside-spread", "outside-spread", "fails-at-one-length", "one-seed"])
def test_accuracy_verdict(groups, higher, status):
    assert accuracy_verdict(groups, "accuracy" if higher else "mse", higher).status == status


@pytest.mark.parametrize("by_length,status", [
    ({10: {"simple_rnn": [0.10, 0.12], "gru": [0.01, 0.02]},
      40: {"simple_rnn": [0.95, 0.99], "gru": [0.01, 0.02]}}, HOLDS),
    ({10: {"simple_rnn": [0.02, 0.03], "lstm": [0.02, 0.04]},
      40: {"simple_rnn": [0.03, 0.05], "lstm": [0.03, 0.04]}}, FAILS),
    ({10: {"simple_rnn": [0.90, 0.95], "gru": [0.01, 0.02]},
      40: {"simple_rnn": [0.90, 0.92], "gru": [0.01, 0.02]}}, INCONCLUSIVE),
    ({40: {"simple_rnn": [0.95, 0.99], "gru": [0.01, 0.02]}}, INCONCLUSIVE),  # one length: no "as T grows"
    ({10: {"simple_rnn": [0.1], "gru": [0.01]}, 40: {"simple_rnn": [0.9], "gru": [0.01]}}, INCONCLUSIVE),  # one seed
], ids=["degrades-with-T", "keeps-up", "behind-everywhere", "one-length", "one-seed"])
def test_long_dependency_verdict(by_length, status):
    assert long_dependency_verdict(by_length, validation=by_length).status == status  # validation agrees with test


def test_long_dependency_is_inconclusive_without_the_adding_problem(finished):
    verdicts = {v.claim: v for v in summarize(finished).verdicts}
    long_dep = verdicts[claims.CLAIM_LONG]
    assert long_dep.status == INCONCLUSIVE and "'sine'" in long_dep.detail
    assert verdicts[claims.CLAIM_PARAMS].status == HOLDS  # 3*3*(1+3+2)=54 < 4*3*(1+3+1)=60
    assert verdicts[claims.CLAIM_ACCURACY].status == INCONCLUSIVE  # one seed


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_cli_compare_end_to_end_then_resume(runner, tmp_path):
    """Real worker processes: files, plots, verdicts; a second invocation trains nothing."""
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "results"))
    result = runner.invoke(app, ["compare", "gru", "rnn", "--config", str(path), "--seeds", "1", "-q"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "cmp"
    for name in ("comparison.csv", "comparison.md", "comparison.json", "learning_curves.png",
                 "metric_vs_time.png", "params.png"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((folder / "comparison.json").read_text())
    assert [r["cell"] for r in record["table"]] == ["gru", "simple_rnn", "baseline", "baseline"]
    assert [r["model"] for r in record["table"]][:3] == ["GRU(3)", "SimpleRNN(3)", "last value"]
    assert record["isolation"] == "process"
    assert {r["status"] for r in record["runs"]} == {"finished"}
    assert [v["claim"] for v in record["verdicts"]] == [claims.CLAIM_PARAMS, claims.CLAIM_SPEED,
                                                       claims.CLAIM_ACCURACY, claims.CLAIM_LONG,
                                                       "GRU(3) beats the classical baseline",
                                                       "SimpleRNN(3) beats the classical baseline"]
    md = (folder / "comparison.md").read_text()
    assert len(list((folder / "baselines").glob("*.json"))) == 1 and "classical baseline ridge" in md
    assert "](learning_curves.png)" in md and "## Verdicts" in md
    assert "Claims checked" in result.stdout and "holds" in result.stdout
    runs = [p for p in folder.iterdir() if p.is_dir() and p.name != "baselines"]
    assert len(runs) == 2 and all(json.loads((r / "metrics.json").read_text())["peak_memory"]["rss_mib"] > 100
                                  for r in runs)  # a worker process holds TensorFlow: far above 100 MiB
    before = {r.name: _stamps(r) for r in runs}

    again = runner.invoke(app, ["compare", "rnn", "gru", "--config", str(path), "--seeds", "1", "-q"])
    assert again.exit_code == 0, again.output
    assert {r.name: _stamps(r) for r in runs} == before
    assert {r["status"] for r in json.loads((folder / "comparison.json").read_text())["runs"]} == {"reused"}


BAD = [
    ("unknown-cell", ["gru", "foo"], "unknown cell 'foo': cells must be among ['gru', 'lstm', 'simple_rnn']"),
    ("repeated-cell", ["rnn", "simple_rnn"], "given twice"),
    ("zero-seeds", ["gru", "--seeds", "0"], "--seeds must be >= 1. Got 0."),
    ("lengths-not-int", ["gru", "--lengths", "10,x"], "--lengths must be integers"),
    ("lengths-not-adding", ["gru", "--lengths", "10,40", "--config", "{base}"], "--lengths sweeps the adding problem"),
    ("budget-zero", ["gru", "--budget", "0"], "--budget must be >= 1"),
    ("bad-set", ["gru", "--config", "{base}", "--set", "model.unitz=3"], "unknown key 'model.unitz'"),
    ("missing-config", ["gru", "--config", "{missing}"], "config file not found"),
    ("list-units-equal", ["gru", "--config", "{base}", "--set", "model.units=[4,2]", "--equal-params"],
     "--equal-params sets one units value for every layer"),
]


@pytest.mark.parametrize("args,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_cli_bad_invocations_are_one_line_and_write_nothing(runner, tmp_path, args, message):
    base = write(tmp_path / "b.yaml", tiny(tmp_path / "results"))
    args = [a.format(base=base, missing=tmp_path / "missing.yaml") for a in args]
    result = runner.invoke(app, ["compare", *args])
    line = assert_user_error(result, tmp_path / "results")
    assert message in line, line


def test_cli_report_leaderboard(runner, finished, tmp_path):
    root = finished.plan.folder.parent
    result = runner.invoke(app, ["report", str(root)])
    assert result.exit_code == 0, result.output
    board = leaderboard_frame(root)
    assert len(board) == 3 and list(board["rank"]) == [1, 2, 3]
    assert list(board["value"]) == sorted(board["value"])  # mse: lower first
    assert (root / "leaderboard.csv").read_text().count("\n") == 4
    assert "# Leaderboard" in (root / "leaderboard.md").read_text()
    assert all(run in result.stdout for run in board["run_id"])

    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path / "nowhere"):
        result = runner.invoke(app, ["report", str(target)])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
