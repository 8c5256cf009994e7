"""Long work on a pipe (CI, nohup): compare and sweep print a plain line per finished run, and epoch lines at most
every so often, instead of a live bar that shows nothing until the end."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from gru_lab.cli import experiments
from gru_lab.report.progress import runs_lines


def fake_plan(n: int = 3):
    runs = [SimpleNamespace(run_id=f"gru-s{i}-abc", label=f"GRU seed {i}",
                            cfg=SimpleNamespace(train=SimpleNamespace(epochs=4))) for i in range(n)]
    return SimpleNamespace(name="cmp", runs=runs)


def events(plan):
    """What execute_runs emits for: run 0 reused, run 1 trained for 4 epochs of 20 s, run 2 failed."""
    r0, r1, r2 = plan.runs
    yield 0, "reuse", r0, {"folder": "x"}
    yield 0, "start", r1, {}
    for epoch in range(1, 5):
        yield 20 * epoch, "epoch", r1, {"epoch": epoch, "seconds": 20.0, "logs": {"loss": 0.5 / epoch}}
    yield 81, "finish", r1, {"folder": "y", "seconds": 81.0,
                             "metrics": {"status": "finished", "test": {"loss": 0.1, "mse": 0.0123}}}
    yield 81, "start", r2, {}
    yield 82, "fail", r2, {"error": "worker killed by SIGKILL"}


def test_one_line_per_finished_run_and_epoch_lines_every_30_seconds():
    plan, now = fake_plan(), [0.0]
    console = Console(file=io.StringIO(), width=80)
    on_event, _ = runs_lines(console, plan, every=30.0, clock=lambda: now[0])
    for t, kind, run, info in events(plan):
        now[0] = t
        on_event(kind, run, info)
    assert console.file.getvalue().splitlines() == [
        "[1/3] reused GRU seed 0 (gru-s0-abc)",
        "  GRU seed 1: epoch 2/4 in 20.0 s  loss=0.25",  # 40 s after its start; epoch 1 came at 20 s
        "  GRU seed 1: epoch 4/4 in 20.0 s  loss=0.125",
        "[2/3] finished GRU seed 1 (gru-s1-abc) in 81 s: test mse 0.0123",
        "[3/3] failed GRU seed 2 (gru-s2-abc): worker killed by SIGKILL",
    ]


def test_compare_and_sweep_print_lines_when_stderr_is_not_a_terminal(capsys):
    plan = fake_plan()

    def execute(p, on_event=None):
        assert on_event is not None  # not quiet: the runs report their progress
        for _, kind, run, info in events(p):
            on_event(kind, run, info)
        return "result"

    assert experiments._runs_with_progress(plan, False, execute, one_line=True) == "result"
    err = capsys.readouterr().err
    assert "[2/3] finished GRU seed 1 (gru-s1-abc) in 81 s: test mse 0.0123" in err.splitlines()
    assert "[3/3] failed GRU seed 2" in err and "[1/3] reused GRU seed 0" in err


def test_training_on_a_pipe_prints_the_first_last_and_every_30_seconds_epochs():
    from gru_lab.report.progress import training_lines

    now, console = [0.0], Console(file=io.StringIO(), width=80)
    on_epoch = training_lines(console, "demo", 6, every=30.0, clock=lambda: now[0])
    for epoch in range(1, 7):
        now[0] = 12.0 * epoch
        on_epoch(epoch, {"loss": 1.0 / epoch}, 12.0)
    assert [line.split(" in ")[0] for line in console.file.getvalue().splitlines()] == [
        "demo: epoch 1/6", "demo: epoch 4/6", "demo: epoch 6/6"]  # at 12 s, 48 s (36 s later) and the last
