"""gru-lab bench --sizes: the grid, the exact formulas, the ratios and targets, the ISA cap, the report files;
one size measured in this process, and (slow tier) a tiny grid end to end through the CLI.

Never asserts on speed: the bench measures it, the tests check that it measures and reports."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from gru_lab.bench import isa, sizes
from gru_lab.bench.sizes import GRU_LAB, KERAS, TORCH, Size
from gru_lab.cli import app
from gru_lab.errors import GruLabError
from gru_lab.rnn import compiled
from tests.conftest import assert_user_error

# ----------------------------------------------------------------------------- the grid


def test_the_full_grid_is_every_size_of_the_issue_and_the_reduced_one_drops_the_costliest():
    full = sizes.grid_sizes("full")
    assert sorted(full) == sorted(Size(u, t, b) for u in (32, 128, 512) for t in (50, 500, 2000) for b in (16, 128))
    reduced = sizes.grid_sizes("reduced")
    dropped = {(u, t) for u, t in [(128, 2000), (512, 500), (512, 2000)]}
    assert sorted(reduced) == sorted(s for s in full if (s.units, s.steps) not in dropped) and len(reduced) == 12
    assert {s.steps for s in reduced if s.units == 32} == {50, 500, 2000}  # long sequences at few units stay
    quick = sizes.grid_sizes("quick")
    assert len(quick) == 4 and {s.batch for s in quick} == {16}
    for grid in (full, reduced, quick):  # the cheapest first, so that a size's memory is not an earlier one's
        assert [sizes.work(s) for s in grid] == sorted(sizes.work(s) for s in grid)


def test_one_job_a_cell_input_kind_and_variant_each_with_the_whole_grid():
    jobs = sizes.plan_jobs(["gru", "lstm"], "reduced")
    assert len(jobs) == 2 * 2 * 3
    assert {(j["cell"], j["inputs"], j["variant"]) for j in jobs} == {
        (c, i, v) for c in ("gru", "lstm") for i in ("tokens", "real") for v in (GRU_LAB, KERAS, TORCH)}
    assert all(len(j["sizes"]) == 12 and j["min_seconds"] == sizes.MIN_SECONDS["reduced"] for j in jobs)


@pytest.mark.parametrize("cells, grid, inputs, says", [
    (["gru2"], "reduced", ("tokens",), "cells must be among"),
    ([], "reduced", ("tokens",), "cells must be among"),
    (["gru"], "huge", ("tokens",), "grid must be one of"),
    (["gru"], "quick", ("images",), "inputs must be among"),
], ids=["unknown-cell", "no-cell", "unknown-grid", "unknown-inputs"])
def test_a_wrong_plan_is_the_users_mistake(cells, grid, inputs, says):
    with pytest.raises(GruLabError, match=says):
        sizes.plan_jobs(cells, grid, inputs)


def test_only_cuts_the_grid_to_the_values_given():
    only = sizes.parse_only(["steps=2000", "inputs=real"])
    assert only == {"steps": (2000,), "inputs": ("real",)}
    assert sizes.grid_sizes("reduced", only) == [Size(32, 2000, 16), Size(32, 2000, 128)]  # 32 units alone there
    assert len(sizes.grid_sizes("full", only)) == 6
    jobs = sizes.plan_jobs(["gru"], "reduced", only=only)
    assert [(j["inputs"], j["variant"]) for j in jobs] == [("real", v) for v in (GRU_LAB, KERAS, TORCH)]
    assert all(len(j["sizes"]) == 2 for j in jobs)
    one = sizes.parse_only(["units=32", "batch=128", "steps=50,2000", "steps=500"])  # a key twice: both
    assert one["steps"] == (50, 2000, 500)
    assert sizes.grid_sizes("reduced", one) == [Size(32, 50, 128), Size(32, 500, 128), Size(32, 2000, 128)]


@pytest.mark.parametrize("items, grid, says", [
    (["step=2000"], "reduced", "the key must be one of ['units', 'steps', 'batch', 'inputs']"),
    (["steps=1000"], "reduced", "steps must be among [50, 500, 2000]. Got '1000'"),
    (["inputs=images"], "reduced", "inputs must be among ['tokens', 'real']"),
    (["units=512", "steps=2000"], "reduced", "--only units=512 steps=2000 leaves no size of the reduced grid"),
], ids=["unknown-key", "value-off-the-grid", "unknown-inputs", "nothing-left"])
def test_a_wrong_cut_of_the_grid_is_the_users_mistake(items, grid, says):
    with pytest.raises(GruLabError) as caught:
        sizes.grid_sizes(grid, sizes.parse_only(items))
    assert says in str(caught.value)


# ----------------------------------------------------------------------------- the formulas


def test_recurrent_flops_are_two_b_t_u_gu_forward_and_three_times_that_per_train_step():
    size = Size(128, 500, 16)
    assert sizes.recurrent_flops("gru", size, training=False) == 2 * 16 * 500 * 128 * 384
    assert sizes.recurrent_flops("lstm", size, training=False) == 2 * 16 * 500 * 128 * 512
    assert sizes.recurrent_flops("simple_rnn", size, training=True) == 3 * 2 * 16 * 500 * 128 * 128
    assert sizes.chain_flops("gru", size) == sizes.recurrent_flops("gru", size, training=False)
    assert sizes.batched_rows(size) == 8000 and sizes.batched_rows(Size(32, 2000, 128)) == sizes.PEAK_ROWS
    assert sizes.batched_flops("gru", Size(32, 2000, 128)) == 2 * sizes.PEAK_ROWS * 32 * 96
    assert sizes.gflops(3e9, 1.5) == 2.0 and sizes.gflops(1.0, None) is None


@pytest.mark.parametrize("seed", range(20))
def test_flops_grow_linearly_in_batch_and_steps_and_with_the_square_of_units(seed):
    # drawn sizes (this branch's test extra has no Hypothesis yet; main's has: a @given fits here after the merge)
    rng = np.random.default_rng(seed)
    cell = str(rng.choice(["simple_rnn", "lstm", "gru"]))
    units, steps, batch, k = (int(v) for v in (rng.integers(1, 600), rng.integers(1, 3000), rng.integers(1, 300),
                                                rng.integers(2, 5)))
    f = sizes.recurrent_flops
    base = f(cell, Size(units, steps, batch), False)
    assert f(cell, Size(units, steps, k * batch), False) == k * base
    assert f(cell, Size(units, k * steps, batch), False) == k * base
    assert f(cell, Size(k * units, steps, batch), False) == k * k * base
    assert f(cell, Size(units, steps, batch), True) == 3 * base


def test_the_chained_peak_keeps_the_state_norm_over_long_sequences():
    w = sizes.peak_weights("lstm", 32)
    assert w.shape == (32, 128) and w.dtype == np.float32
    np.testing.assert_allclose(w[:, :32].T @ w[:, :32], np.eye(32), atol=1e-5)
    h = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    norm = np.linalg.norm(h)
    for _ in range(2000):
        h = (h @ w)[:, :32]
    assert abs(np.linalg.norm(h) / norm - 1) < 1e-2


def test_timed_takes_at_least_two_calls_and_stops_at_the_most_repeats():
    calls = []
    assert sizes.timed(lambda: calls.append(1), min_seconds=0.0) >= 0 and len(calls) == 2
    calls.clear()
    sizes.timed(lambda: calls.append(1), min_seconds=60.0, max_repeats=5)
    assert len(calls) == 5


# ----------------------------------------------------------------------------- ratios and targets


def _row(variant, train, infer, grown, units=128, steps=500, kernel="compiled", error=None, **extra):
    return {"cell": "gru", "inputs": "real", "units": units, "steps": steps, "batch": 16, "variant": variant,
            "train_samples_per_s": train, "infer_samples_per_s": infer, "grown_mib": grown, "kernel": kernel,
            "train_share": extra.get("share"), "infer_share": None, "error": error}


def test_ratios_are_divisions_of_the_measured_rows_and_the_best_peer_is_the_faster():
    rows = pd.DataFrame([_row(GRU_LAB, 300.0, 900.0, 50.0, share=0.6), _row(KERAS, 100.0, 300.0, 40.0),
                         _row(TORCH, 200.0, 100.0, 80.0)])
    r = sizes.ratios_frame(rows).iloc[0].to_dict()
    assert r["train_vs_keras"] == 3.0 and r["train_vs_pytorch"] == 1.5
    assert r["train_best_peer"] == TORCH and r["train_vs_best_peer"] == 1.5
    assert r["infer_vs_keras"] == 3.0 and r["infer_best_peer"] == KERAS and r["infer_vs_best_peer"] == 3.0
    assert r["memory_vs_keras"] == 50.0 / 40.0 and r["train_share"] == 0.6 and r["targets_missed"] == ""
    assert r["train_vs_fused"] is None  # without --alternatives
    rows = pd.concat([rows, pd.DataFrame([_row(sizes.FUSED, 400.0, 450.0, 30.0)])])
    r = sizes.ratios_frame(rows).iloc[0].to_dict()
    assert r["train_vs_fused"] == 0.75 and r["infer_vs_fused"] == 2.0 and r["targets_missed"] == "plan's kernel fastest"


def test_a_peer_that_failed_at_a_size_is_not_compared_there():
    rows = pd.DataFrame([_row(GRU_LAB, 300.0, 900.0, 50.0), _row(KERAS, 100.0, 300.0, 40.0),
                         _row(TORCH, None, None, None, error="out of memory")])
    r = sizes.ratios_frame(rows).iloc[0].to_dict()
    assert r["train_vs_pytorch"] is None and r["train_best_peer"] == KERAS and r["train_vs_best_peer"] == 3.0


@pytest.mark.parametrize("rec, missed", [
    ({"train_vs_keras": 1.4}, ["train>=1.5x keras"]),
    ({"train_vs_keras": 1.5, "train_vs_pytorch": 1.0}, ["train>pytorch"]),
    ({"infer_vs_keras": 1.99}, ["infer>=2x keras"]),
    ({"train_share": 0.49}, ["products>=50% of peak"]),
    ({"train_share": 0.49, "units": 32}, []),
    ({"memory_vs_keras": 1.2}, []),
    ({"memory_vs_keras": 1.2, "steps": 2000}, ["memory<=keras"]),
    ({"train_vs_keras": 0.5, "kernel": "keras-loop, inference keras-loop"}, []),
    ({"train_vs_pytorch": None}, []),
    ({"train_vs_fused": 0.9}, ["plan's kernel fastest"]),
    ({"train_vs_fused": 0.9, "kernel": "fused+xla, inference fused+xla"}, []),
], ids=["train-keras", "train-torch-even", "infer", "share", "share-small", "memory-short", "memory-long",
        "keras-loop", "not-run", "plan-slower", "plan-was-fused"])
def test_the_targets_a_point_misses(rec, missed):
    assert sizes.missed_targets({"units": 128, "steps": 500, "kernel": "compiled", **rec}) == missed


# ----------------------------------------------------------------------------- the instruction set


def test_the_machine_isa_is_the_widest_flag():
    text = "processor: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
    flags = isa.cpu_flags(text)
    assert isa.machine_isa(flags) == "AVX2" and isa.machine_isa(flags | {"avx512f"}) == "AVX-512"
    assert isa.machine_isa(set()) == "unknown" and isa.cpu_flags("no flags here") == set()
    assert isa.describe(flags, "native").startswith("AVX2 (avx2, fma)")
    assert "AVX2 cap" in isa.describe(flags | {"avx512f"}, "avx2") and "ONEDNN_MAX_CPU_ISA=AVX2" in isa.describe(
        flags, "avx2")


def test_gru_lab_isa_picks_the_compiled_loops_flags_and_caps_the_libraries(monkeypatch):
    monkeypatch.delenv(compiled.ISA_VAR, raising=False)
    assert isa.requested_isa() == "native" and compiled.arch_flags() == compiled.ARCH_FLAGS
    assert isa.worker_env("native") == {}
    monkeypatch.setenv(compiled.ISA_VAR, "AVX2")
    assert isa.requested_isa() == "avx2" and compiled.arch_flags()[0][0] == "-march=x86-64-v3"
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "SSE4_2")  # the user's own cap stays theirs
    assert isa.worker_env("avx2") == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    monkeypatch.setenv(compiled.ISA_VAR, "avx3")
    with pytest.raises(GruLabError, match="GRU_LAB_ISA='avx3'"):
        isa.requested_isa()
    with pytest.raises(RuntimeError, match="avx3"):
        compiled.arch_flags()


def test_the_avx2_library_is_another_file_and_the_native_one_keeps_its_name(monkeypatch):
    """A capped build never replaces the native library (nor is loaded in its place); GRU_LAB_ISA=native is
    the unset default's library, not a third build."""
    monkeypatch.delenv(compiled.ISA_VAR, raising=False)
    native = compiled.library_path()
    monkeypatch.setenv(compiled.ISA_VAR, "avx2")
    assert compiled.library_path() != native and compiled.library_path().parent == native.parent
    monkeypatch.setenv(compiled.ISA_VAR, "native")
    assert compiled.library_path() == native


# ----------------------------------------------------------------------------- the report and the CLI


def _result(tmp_path):
    rows = pd.DataFrame([_row(v, t, i, g, units=u, steps=s, share=0.3) | {
        "inputs": kind, "kernel": "compiled" if v == GRU_LAB else "keras-loop", "peak_rss_mib": 900.0,
        "train_gflops": 1.0, "infer_gflops": 2.0, "chain_gflops": 3.0, "peak_gflops": 4.0, "warmup_s": 1.0,
        "load_before": 1.0, "load_after": 1.2}
        for kind in ("tokens", "real") for u in (32, 128) for s in (50, 500)
        for v, t, i, g in ((GRU_LAB, 300.0, 900.0, 50.0), (KERAS, 100.0, 300.0, 40.0), (TORCH, 600.0, 50.0, 10.0))])
    rows = pd.concat([rows, pd.DataFrame([_row(TORCH, None, None, None, units=512, error="out of memory")])])
    meta = {"started": "2026-12-02T09:00:00Z", "seconds": 12.0, "grid": "quick", "cells": ["gru"],
            "inputs": ["tokens", "real"], "variants": [GRU_LAB, KERAS, TORCH], "sizes": [{}] * 4,
            "isa_text": "AVX-512 (avx512f)", "cpu_count": 2, "load_min": 1.0, "load_max": 1.2,
            "vocabulary": 10000, "embedding_dim": 128, "features": 8, "min_seconds": 0.3, "peak_rows": 8192}
    return sizes.SizesResult(rows=rows, ratios=sizes.ratios_frame(rows), meta=meta, folder=tmp_path / "b",
                             notes=["a note"])


def test_the_report_writes_the_table_the_rows_and_one_heat_map_a_cell(tmp_path):
    from gru_lab.report.sizes import write_sizes

    result = _result(tmp_path)
    files = write_sizes(result)
    assert set(files) == {"csv", "ratios", "md", "json", "heatmap_gru"}
    assert files["heatmap_gru"].read_bytes().startswith(b"\x89PNG")
    md = files["md"].read_text()
    assert "ISA AVX-512 (avx512f)" in md and "2 CPU cores" in md and "- a note" in md
    assert "- grid: quick (4 sizes" in md  # not cut: no --only in its header
    assert "| GRU | real | 128 | 500 | 16 | compiled | 3.00x | 0.50x | 3.00x | 18.00x | - | - | 1.25 |" in md
    assert "train>pytorch, products>=50% of peak" in md  # 0.5x pytorch; share 30% at 128 units
    assert "| GRU | real | 512 | 500 | 16 | pytorch | - |" in md and "| failed: out of memory | - |" in md
    saved = json.loads(files["json"].read_text())
    assert len(saved["ratios"]) == 8 and saved["meta"]["grid"] == "quick"
    with pytest.raises(FileExistsError):  # a bench never writes into another's folder
        write_sizes(result)
    result.meta["only"], result.folder = {"steps": [500], "inputs": ["real"]}, tmp_path / "cut"
    assert "- grid: quick cut to --only steps=500 inputs=real (4 sizes" in write_sizes(result)["md"].read_text()


@pytest.mark.parametrize("args, says", [
    (["--full"], "--full/--alternatives/--only cannot be used without --sizes"),
    (["--only", "steps=2000"], "--full/--alternatives/--only cannot be used without --sizes"),
    (["--sizes", "--only", "units=7"], "units must be among [32, 128, 512]"),
    (["--sizes", "--ablation"], "--ablation cannot be used with --sizes"),
    (["--sizes", "--cells", "gru2"], "cells must be among"),
    (["--sizes", "--quick", "--full"], "--quick (a few sizes) and --full (every size) exclude each other"),
], ids=["full-alone", "only-alone", "only-off-the-grid", "ablation", "cell", "quick-and-full"])
def test_bench_sizes_refuses_a_wrong_command_line_in_one_line(runner, tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    assert says in assert_user_error(runner.invoke(app, ["bench", *args]), tmp_path / "results")


def test_an_unknown_gru_lab_isa_is_refused_before_anything_runs(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(compiled.ISA_VAR, "avx3")
    line = assert_user_error(runner.invoke(app, ["bench", "--sizes"]), tmp_path / "results")
    assert "GRU_LAB_ISA='avx3'" in line and "['avx2', 'native']" in line


# ----------------------------------------------------------------------------- measured


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_one_size_measured_in_this_process_reports_rates_from_its_own_times():
    answer = sizes.run_job({"cell": "gru", "inputs": "real", "variant": KERAS, "threads": 1, "min_seconds": 0.0,
                            "sizes": [{"units": 4, "steps": 5, "batch": 2}]})
    (row,) = answer["rows"]
    size = Size(4, 5, 2)
    assert row["error"] is None and row["kernel"] == "keras-loop"
    assert row["train_samples_per_s"] == pytest.approx(2 / row["train_step_s"])
    assert row["train_gflops"] == pytest.approx(sizes.recurrent_flops("gru", size, True) / row["train_step_s"] / 1e9)
    assert row["train_share"] == pytest.approx(row["train_gflops"] / row["peak_gflops"])
    assert row["grown_mib"] == pytest.approx(row["peak_rss_mib"] - row["rss_start_mib"])


@pytest.mark.slow
def test_a_tiny_grid_end_to_end_through_the_cli(runner, tmp_path, monkeypatch):
    """Every variant in its own process (pytorch where installed), the table, the heat map, the files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sizes, "QUICK", {"units": (4, 8), "steps": (5,), "batches": (2,)})
    monkeypatch.setitem(sizes.MIN_SECONDS, "quick", 0.01)
    result = runner.invoke(app, ["bench", "--sizes", "--quick", "--cells", "gru", "--peers", "torch"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "results" / "bench-sizes").iterdir()
    rows = pd.read_csv(folder / "sizes.csv")
    from gru_lab.bench.torch_peer import torch_installed

    variants = {GRU_LAB, KERAS} | ({TORCH} if torch_installed() else set())
    assert set(rows["variant"]) == variants and len(rows) == 2 * 2 * len(variants)
    assert rows["error"].isna().all() and (rows["train_samples_per_s"] > 0).all()
    assert set(rows[rows["variant"] == GRU_LAB]["kernel"]) == {"compiled, inference compiled",
                                                               "compiled-table, inference compiled-table"}
    ratios = pd.read_csv(folder / "ratios.csv")
    assert len(ratios) == 4 and (folder / "heatmap_gru.png").is_file()
    assert "gru-lab against each peer" in result.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("objdump") is None or compiled.compiler() is None, reason="needs objdump and g++")
def test_the_avx2_build_uses_no_avx512_register(tmp_path, monkeypatch):
    """GRU_LAB_ISA=avx2 stands an AVX-512 machine in for an AVX2 one: its library holds ymm code and no zmm."""
    monkeypatch.setenv(compiled.ISA_VAR, "avx2")
    monkeypatch.setenv(compiled.BUILD_DIR_VAR, str(tmp_path))
    path = compiled.build()
    assert path.parent == tmp_path and "x86-64-v3" in compiled.log_path(path).read_text()
    code = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    assert "%ymm" in code and "%zmm" not in code


def test_run_sizes_runs_every_job_with_the_cap_and_notes_a_worker_that_failed(tmp_path, monkeypatch):
    """The parent's side, workers faked: each job's rows gathered, GRU_LAB_ISA's cap in each worker's
    environment, a failed worker a note (its stderr's first and last line), the rest measured."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    calls = []

    def fake(module, job, what, env=None):
        calls.append((module, job["variant"], env))
        if job["variant"] == KERAS and job["inputs"] == "tokens":
            raise RuntimeError(f"{what} failed (exit 1):\nTraceback\nMemoryError: boom")  # as workers.py says
        return {"rows": [_row(job["variant"], 10.0, 20.0, 1.0, units=s["units"], steps=s["steps"]) | {
            "inputs": job["inputs"], "batch": s["batch"], "load_before": 0.1, "load_after": 0.2}
            for s in job["sizes"]]}

    monkeypatch.setattr(sizes, "worker_answer", fake)
    result = sizes.run_sizes(["gru"], "quick", torch=False, isa="avx2", alternatives=True, output_dir=tmp_path)
    assert [(m, v) for m, v, _ in calls] == [("gru_lab.bench.sizes", v) for v in (GRU_LAB, sizes.FUSED, KERAS) * 2]
    assert all(env["ONEDNN_MAX_CPU_ISA"] == "AVX2" for _, _, env in calls)
    assert len(result.rows) == 5 * 4 and len(result.ratios) == 8
    assert result.ratios[result.ratios["inputs"] == "tokens"]["train_vs_keras"].isna().all()
    assert (result.ratios[result.ratios["inputs"] == "real"]["train_vs_keras"] == 1.0).all()
    assert any("worker for gru/tokens/keras failed (exit 1): MemoryError: boom: no rows for it" in n
               for n in result.notes)
    assert result.meta["isa"] == "avx2" and "AVX2 cap" in result.meta["isa_text"]
    assert result.meta["load_min"] <= 0.1 and result.meta["load_max"] >= 0.2  # the rows' and the parent's readings
    assert result.folder.parent == tmp_path / "bench-sizes"
