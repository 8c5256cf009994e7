"""Building the compiled loops (gru_lab.rnn.compiled): what the build runs, a failure remembered so that later
runs and workers do not retry it, the compiler's timeout, the one console line before a build, and a machine
without a C++ compiler (in a fresh process)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gru_lab.cli import app
from gru_lab.rnn import compiled
from tests.conftest import tiny_config


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A process's view of a machine where nothing is built yet: an empty build folder, load state reset."""
    saved = dict(compiled._state)
    compiled._reset_for_tests()
    monkeypatch.setenv(compiled.BUILD_DIR_VAR, str(tmp_path / "kernels"))
    monkeypatch.delenv(compiled.ENV_VAR, raising=False)
    yield tmp_path / "kernels"
    compiled._state.update(saved)


def fake_compiler(tmp_path: Path, body: str) -> Path:
    """An executable that records each call in calls.txt, then runs body (sh)."""
    path = tmp_path / "fake-c++"
    path.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls.txt"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def calls(tmp_path: Path) -> int:
    log = tmp_path / "calls.txt"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_build_keeps_warnings_and_links_for_the_platform(fresh, monkeypatch):
    """No blanket -w; TensorFlow's headers as system headers (their own warnings stay out of the log);
    every source compiled; macOS links with -undefined dynamic_lookup."""
    objects = {src: fresh / f"{src.stem}.o" for src in compiled.SOURCES}
    assert {src.name for src in objects} >= {"gru_op.cc", "lstm_op.cc", "simple_rnn_op.cc"}
    compiles, link = compiled._commands("c++", [], objects, "out.so")
    assert len(compiles) == len(compiled.SOURCES)
    for cmd in compiles:
        assert "-w" not in cmd and "-Wall" in cmd and "-isystem" in cmd
        assert not any(flag.startswith("-I") for flag in cmd)
    assert "dynamic_lookup" not in link or sys.platform == "darwin"
    monkeypatch.setattr(compiled.platform, "system", lambda: "Darwin")
    _, link = compiled._commands("c++", [], objects, "out.so")
    assert link[-2:] == ["-undefined", "dynamic_lookup"]


def test_a_failed_build_is_remembered_until_asked_again(fresh, tmp_path, monkeypatch):
    """Every flag set fails once; later loads (other runs, other workers) do not run the compiler again, and
    inspect says why; `python -m gru_lab.rnn.compiled` tries again."""
    monkeypatch.setenv("CXX", str(fake_compiler(tmp_path, 'echo "lstm_op.cc:1:1: error: boom" >&2; exit 1')))
    assert compiled.unavailable_without_building() is None and compiled.pending_build()
    notices = []
    assert compiled.load(notify=notices.append) is None
    assert len(notices) == 1 and "compiling gru-lab's C++ loops" in notices[0]
    first = calls(tmp_path)
    assert first == len(compiled.SOURCES) * len(compiled.ARCH_FLAGS)  # each flag set tried, all sources each
    reason = compiled.status()["reason"]
    assert "error: boom" in reason and "fake-c++ could not build" in reason
    log = compiled.log_path().read_text()
    assert log.count("error: boom") == first and "[exit status 1]" in log
    for _ in range(2):  # a new process, a compare worker: no retry, no notice, the same reason
        compiled._reset_for_tests()
        assert compiled.load(notify=notices.append) is None
        assert calls(tmp_path) == first and len(notices) == 1
        assert "error: boom" in compiled.unavailable_without_building() and not compiled.pending_build()
    assert compiled.main() == 0  # the explicit build retries
    assert calls(tmp_path) == 2 * first


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_a_compiler_that_hangs_is_stopped_and_remembered(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(fake_compiler(tmp_path, "exec sleep 30")))
    monkeypatch.setattr(compiled, "BUILD_TIMEOUT_S", 1)
    assert compiled.load() is None
    assert "did not finish building within 1 s" in compiled.status()["reason"]
    assert "did not finish building" in compiled.unavailable_without_building()
    assert not list(fresh.glob("*.so"))  # nothing half written


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_the_command_line_says_once_that_it_builds(fresh, tmp_path, monkeypatch, runner, write_config):
    """The first run that wants the loops builds them and says so on the console (here the build fails, so the
    same run says why and trains on the fused loops); the next run neither rebuilds nor repeats it."""
    monkeypatch.setenv("CXX", str(fake_compiler(tmp_path, 'echo "error: boom" >&2; exit 1')))
    path = write_config({**tiny_config(), "train": {"epochs": 1, "batch_size": 16}})
    first = runner.invoke(app, ["train", str(path), "-q"])
    assert first.exit_code == 0, first.output
    assert first.stderr.count("compiling gru-lab's C++ loops") == 1
    assert "compiled loops not built" in first.stderr and "error: boom" in first.stderr
    first_calls = calls(tmp_path)
    (run,) = (tmp_path / "results" / "tiny").iterdir()
    execution = json.loads((run / "metrics.json").read_text())["execution"]
    assert {k["kernel"] for k in execution["kernels"]} == {"fused"}
    assert any("error: boom" in note for note in execution["notes"])
    compiled._reset_for_tests()  # the next command, a new process
    second = runner.invoke(app, ["inspect", str(path), "--no-build", "--json"])
    assert second.exit_code == 0 and "compiling" not in second.stderr and calls(tmp_path) == first_calls
    assert any("error: boom" in note for note in json.loads(second.stdout)["kernels"]["notes"])


@pytest.mark.slow  # a fresh process or a real-data export: the slow tier keeps make test within 3 minutes
def test_without_a_compiler_inspect_and_train_say_why_in_a_fresh_process(tmp_path, write_config):
    """A machine with no C++ compiler on PATH and nothing built: inspect names the reason (never "not built
    yet"), and train runs the fused loops without trying a build."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", compiled.ENV_VAR, compiled.LEGACY_ENV_VAR)}
    env.update(PATH=str(empty), **{compiled.BUILD_DIR_VAR: str(tmp_path / "kernels")})
    path = write_config({**tiny_config(), "train": {"epochs": 1, "batch_size": 16}})
    # one fresh process runs both commands, as two would (inspect builds and loads nothing)
    code = ("import sys\nfrom gru_lab.cli import app\n"
            "for args in (['inspect', sys.argv[1], '--no-build'], ['train', sys.argv[1], '-q']):\n"
            "    try:\n        app(args)\n    except SystemExit as e:\n        if e.code:\n            raise\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no C++ compiler found" in proc.stdout  # inspect's plan says why
    assert "not built yet" not in proc.stdout + proc.stderr and "compiling" not in proc.stderr
    (run,) = (tmp_path / "results" / "tiny").iterdir()
    execution = json.loads((run / "metrics.json").read_text())["execution"]
    assert not execution["compiled_loops"] and {k["kernel"] for k in execution["kernels"]} == {"fused"}
    assert any("no C++ compiler found" in note for note in execution["notes"])
    assert not (tmp_path / "kernels").exists() or not list((tmp_path / "kernels").iterdir())
