"""gru-lab measuring itself: bench (its training path against plain Keras and PyTorch, or over a grid of sizes)
and gpu-check (on a GPU, each layer ran the kernel its plan named)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_lab.cli.common import SetOption, compiled_loops_first, err, out, user_errors
from gru_lab.errors import GruLabError


@user_errors
def bench(
    config: Annotated[Optional[Path], typer.Argument(
        help="Experiment YAML. Omitted: the IMDB GRU tutorial to the letter (configs/imdb_gru_literal.yaml), on real "
             "IMDB when GRU_LAB_IMDB or data.path names it, else on IMDB-shaped synthetic tokens.")] = None,
    cells: Annotated[str, typer.Option(
        "--cells", help="Comma-separated cells to bench: rnn, lstm, gru.")] = "rnn,lstm,gru",
    set_: SetOption = None,
    ablation: Annotated[bool, typer.Option(
        "--ablation", help="Also run gru-lab with the fused layers and/or XLA switched off.")] = False,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A small workload (2,000 train / 1,000 test reviews, 2 epochs): checks the bench, "
                        "not the speed.")] = False,
    isolate: Annotated[bool, typer.Option(
        "--isolate", help="Run each variant in its own fresh process, so that each peak RSS is its own.")] = False,
    peers: Annotated[str, typer.Option(
        "--peers", help="Also train the same model in another framework, in its own process: torch (the 'peers' "
                        "extra). Without it installed the bench says how to get it and goes on.")] = "",
    recipe: Annotated[Optional[list[Path]], typer.Option(
        "--recipe", exists=True, dir_okay=False,
        help="Also time gru-lab's path on this config (model.cell set to each cell; repeatable), e.g. "
             "configs/imdb_gru.yaml, the masked recipe, beside the literal one.")] = None,
    sizes: Annotated[bool, typer.Option(
        "--sizes", help="Instead: train-step and inference throughput over a grid of units x steps x batch, token "
                        "and real-valued inputs, against plain Keras (and --peers torch); a reduced grid (about 20 "
                        "minutes on 2 cores), --quick a few sizes, --full all 18. Writes results/bench-sizes/<time>/."
                        " GRU_LAB_ISA=avx2 caps every library at AVX2.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --sizes: the full grid (long).")] = False,
    alternatives: Annotated[bool, typer.Option(
        "--alternatives", help="With --sizes: also gru-lab's fused loops under XLA, to check that the kernel plan "
                               "chose the faster of its kernels at each size.")] = False,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", help="With --sizes: cut the grid to some of its values, KEY=V[,V...] with KEY units, steps, batch "
                       "or inputs (repeatable), e.g. --only steps=2000 --only inputs=real.")] = None,
) -> None:
    """Time gru-lab's training path against a plain Keras baseline written the tutorial's way (and with --peers
    torch, the same model in PyTorch), per cell: s/epoch, train and inference samples/s, test metric, peak memory,
    and the ratios.
    Writes results/bench/<time>/bench.md, bench.csv, ratios.csv, bench.json."""
    from gru_lab import cells as cell_names
    from gru_lab.bench.bench import DEFAULT_CONFIG
    from gru_lab.config import load_config

    if sizes or full or alternatives or only:
        given = [name for name, value in (("CONFIG", config), ("--set", set_), ("--ablation", ablation),
                                          ("--isolate", isolate), ("--recipe", recipe)) if value]
        if given or not sizes:
            raise GruLabError(f"bench: {', '.join(given) or '--full/--alternatives/--only'} cannot be used "
                              f"{'with' if sizes else 'without'} --sizes.")
        if quick and full:
            raise GruLabError("bench --sizes: --quick (a few sizes) and --full (every size) exclude each other; "
                              "give one of them, or neither for the reduced grid.")
        _bench_sizes([cell_names.canonical(c) for c in cells.split(",") if c.strip()],
                     "quick" if quick else "full" if full else "reduced",
                     "torch" in [p.strip() for p in peers.split(",")], alternatives, only)
        return
    from gru_lab.bench.isa import requested_isa, worker_env

    os.environ.update(worker_env(requested_isa()))  # GRU_LAB_ISA's cap, before TensorFlow or a worker starts
    overrides = list(set_ or [])
    if quick:
        overrides = ["data.n_train=2000", "data.n_test=1000", "train.epochs=2"] + overrides
    cfg = load_config(config or DEFAULT_CONFIG, overrides)
    recipes = [load_config(path, overrides) for path in recipe or []]
    chosen = [cell_names.canonical(c) for c in cells.split(",") if c.strip()]
    chosen_peers = [p.strip() for p in peers.split(",") if p.strip()]
    from gru_lab.bench import torch_peer
    from gru_lab.bench.bench import check_cells, run_bench
    from gru_lab.report.bench import print_bench, write_bench

    check_cells(chosen)  # before the compiled loops are built for them

    if "torch" in chosen_peers and not torch_peer.torch_installed():
        err.print(f"note: {torch_peer.INSTALL}", markup=False, highlight=False, soft_wrap=True)
    compiled_loops_first([load_config(config or DEFAULT_CONFIG, overrides + [f"model.cell={c}"]) for c in chosen]
                          + recipes)

    with err.status("bench: loading data...") as status:
        def on_variant(cell: str, variant: str) -> None:
            status.update(f"bench: {cell}, {variant} (training and timing)...")

        result = run_bench(cfg, chosen, ablation=ablation, overrides=overrides, on_variant=on_variant, isolate=isolate,
                           peers=chosen_peers, recipes=recipes)
    files = write_bench(result)
    print_bench(out, result)
    out.print(f"bench folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)


def _bench_sizes(cells: list[str], grid: str, torch: bool, alternatives: bool, only: list[str] | None = None) -> None:
    """bench --sizes: each (cell, inputs, variant) over the grid in its own process; the table, the heat maps."""
    from gru_lab.bench import torch_peer
    from gru_lab.bench.isa import requested_isa
    from gru_lab.bench.sizes import GRU_LAB, Size, parse_only, plan_jobs, point_config, run_sizes
    from gru_lab.report.sizes import print_sizes, write_sizes

    isa = requested_isa()
    cut = parse_only(only)
    plan_jobs(cells, grid, only=cut)  # the user's mistakes first, before anything is built
    if torch and not torch_peer.torch_installed():
        err.print(f"note: {torch_peer.INSTALL}", markup=False, highlight=False, soft_wrap=True)
    compiled_loops_first([point_config(c, "real", Size(32, 50, 16), GRU_LAB) for c in cells])
    with err.status("bench --sizes: starting...") as status:
        def on_job(cell: str, inputs: str, variant: str) -> None:
            status.update(f"bench --sizes: {cell}, {inputs} inputs, {variant} (every size, in its own process)...")

        result = run_sizes(cells, grid, torch=torch, isa=isa, alternatives=alternatives, on_job=on_job, only=cut)
    files = write_sizes(result)
    print_sizes(out, result)
    out.print(f"bench folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)


@user_errors
def gpu_check(
    configs: Annotated[Optional[list[Path]], typer.Argument(
        exists=True, dir_okay=False,
        help="Configs to check, each with its own cell. Omitted (and no --compare): the IMDB GRU tutorial to the "
             "letter (configs/imdb_gru_literal.yaml).")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option(
        "--compare", exists=True, dir_okay=False,
        help="A config to check with each of SimpleRNN, LSTM and GRU (repeatable), e.g. "
             "configs/imdb_compare.yaml.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per run.")] = 1,
    set_: SetOption = None,
) -> None:
    """On a machine with a GPU: train each config on the GPU and with train.device: cpu (each run in a fresh
    process), check that every recurrent layer ran the kernel the kernel plan named (cuDNN where eligible), and
    compare s/epoch. Writes results/gpu-check/<time>/gpu_check.md and gpu_check.json; exit 1 when a check fails."""
    from gru_lab.bench.bench import DEFAULT_CONFIG
    from gru_lab.bench.gpu_check import plan_jobs, require_gpu, run_check
    from gru_lab.config import load_config
    from gru_lab.report.gpu_check import print_gpu_check, write_gpu_check

    overrides = list(set_ or [])
    singles = [load_config(p, overrides) for p in (configs or ([] if compare else [DEFAULT_CONFIG]))]
    compares = [load_config(p, overrides) for p in compare or []]
    jobs = plan_jobs(singles, compares, epochs)
    require_gpu()
    with err.status("gpu-check: starting...") as status:
        result = run_check(jobs, on_run=lambda job, device: status.update(f"gpu-check: {job} on the {device}..."),
                           output_dir=(singles or compares)[0].output.dir)
    files = write_gpu_check(result)
    print_gpu_check(out, result)
    out.print(f"gpu-check folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)
    if result.failed:
        err.print("gpu-check: some layer did not run the planned kernel, or a run failed (see the check column)",
                  markup=False, highlight=False)
        raise typer.Exit(code=1)
