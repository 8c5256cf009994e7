"""A size grid (gru_lab.bench.sizes.run_sizes) on the console and in sizes.md, sizes.csv, ratios.csv, sizes.json
and one heat map a cell (heatmap_<cell>.png: gru-lab's samples/s over the best peer's, train and inference)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab import cells as cell_names
from gru_lab.files import save_figure
from gru_lab.report.format import markdown_table, missing, new_folder, notes_section, num, write_measurements

RATIO_HEADERS = {
    "cell": "cell", "inputs": "inputs", "units": "units", "steps": "steps", "batch": "batch",
    "kernel": "gru-lab kernel (train, inference)",
    "train_vs_keras": "train\n÷ keras", "train_vs_pytorch": "train\n÷ pytorch",
    "infer_vs_keras": "infer\n÷ keras", "infer_vs_pytorch": "infer\n÷ pytorch",
    "train_vs_fused": "train\n÷ fused+xla", "infer_vs_fused": "infer\n÷ fused+xla",
    "memory_vs_keras": "memory growth\n÷ keras", "train_gflops": "products\nGFLOP/s (train)",
    "peak_gflops": "peak\nGFLOP/s", "train_share": "share\nof peak", "targets_missed": "targets missed",
}
ROW_HEADERS = {
    "cell": "cell", "inputs": "inputs", "units": "units", "steps": "steps", "batch": "batch", "variant": "variant",
    "train_samples_per_s": "train\nsamples/s", "infer_samples_per_s": "infer\nsamples/s", "warmup_s": "warm-up\ns",
    "peak_rss_mib": "peak RSS\nMiB", "grown_mib": "grown\nMiB", "train_gflops": "products\nGFLOP/s (train)",
    "infer_gflops": "products\nGFLOP/s (infer)", "chain_gflops": "chain\nGFLOP/s", "peak_gflops": "peak\nGFLOP/s",
    "kernel": "kernel", "load": "load\nbefore/after",
}
# The console table fits 120 columns; the targets each size missed follow it, a line a size.
CONSOLE = ("cell", "inputs", "units", "steps", "batch", "train_vs_keras", "train_vs_pytorch", "infer_vs_keras",
           "infer_vs_pytorch", "train_vs_fused", "memory_vs_keras", "train_share")
PEER_MARK = {"keras": "K", "pytorch": "T"}  # the heat maps' note of which peer was the best


def _ratio_table(result, only: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    columns = [c for c in RATIO_HEADERS if only is None or c in only]
    gru = result.rows[result.rows["variant"] == "gru-lab"] if not result.rows.empty else result.rows
    measured = {(r["cell"], r["inputs"], r["units"], r["steps"], r["batch"]): r
                for r in gru.to_dict(orient="records")}
    table = []
    for rec in result.ratios.to_dict(orient="records"):
        g = measured.get((rec["cell"], rec["inputs"], rec["units"], rec["steps"], rec["batch"]), {})
        cells = {
            "cell": cell_names.label(rec["cell"]), "inputs": rec["inputs"], "units": str(rec["units"]),
            "steps": str(rec["steps"]), "batch": str(rec["batch"]), "kernel": str(rec.get("kernel") or "-"),
            "train_gflops": num(g.get("train_gflops"), "{:.2f}"), "peak_gflops": num(g.get("peak_gflops"), "{:.1f}"),
            "train_share": num(rec.get("train_share"), "{:.0%}"), "targets_missed": rec.get("targets_missed") or "-",
            "memory_vs_keras": num(rec.get("memory_vs_keras"), "{:.2f}"),
        }
        for c in ("train_vs_keras", "train_vs_pytorch", "infer_vs_keras", "infer_vs_pytorch", "train_vs_fused",
                  "infer_vs_fused"):
            cells[c] = num(rec.get(c), "{:.2f}x")
        table.append([cells[c] for c in columns])
    return [RATIO_HEADERS[c] for c in columns], table


def _row_table(rows) -> tuple[list[str], list[list[str]]]:
    table = []
    for rec in rows.to_dict(orient="records"):
        if not missing(rec.get("error")):  # a size the machine could not run (out of memory): why, in kernel's column
            cells = dict.fromkeys(ROW_HEADERS, "-")
            cells.update({"cell": cell_names.label(rec["cell"]), "inputs": rec["inputs"], "units": str(rec["units"]),
                          "steps": str(rec["steps"]), "batch": str(rec["batch"]), "variant": rec["variant"],
                          "kernel": f"failed: {rec['error']}"})
            table.append(list(cells.values()))
            continue
        cells = {
            "cell": cell_names.label(rec["cell"]), "inputs": rec["inputs"], "units": str(rec["units"]),
            "steps": str(rec["steps"]), "batch": str(rec["batch"]), "variant": rec["variant"],
            "train_samples_per_s": num(rec["train_samples_per_s"], "{:,.0f}"),
            "infer_samples_per_s": num(rec["infer_samples_per_s"], "{:,.0f}"),
            "warmup_s": num(rec["warmup_s"], "{:.1f}"),
            "peak_rss_mib": num(rec["peak_rss_mib"], "{:,.0f}"), "grown_mib": num(rec["grown_mib"], "{:,.0f}"),
            "train_gflops": num(rec["train_gflops"], "{:.2f}"), "infer_gflops": num(rec["infer_gflops"], "{:.2f}"),
            "chain_gflops": num(rec["chain_gflops"], "{:.2f}"), "peak_gflops": num(rec["peak_gflops"], "{:.1f}"),
            "kernel": str(rec["kernel"]),
            "load": f"{num(rec['load_before'], '{:.2f}')} / {num(rec['load_after'], '{:.2f}')}",
        }
        table.append([cells[c] for c in ROW_HEADERS])
    return list(ROW_HEADERS.values()), table


def header_lines(meta: dict) -> list[str]:
    """The lines every rendering starts with: the grid, the machine's ISA, cores and load."""
    load = f"{num(meta.get('load_min'), '{:.2f}')} to {num(meta.get('load_max'), '{:.2f}')}"
    only = " ".join(f"{k}={','.join(map(str, v))}" for k, v in (meta.get("only") or {}).items())
    return [f"- grid: {meta['grid']}{f' cut to --only {only}' if only else ''} ({len(meta['sizes'])} sizes of "
            f"units x steps x batch), cells "
            f"{', '.join(cell_names.label(c) for c in meta['cells'])}, inputs {', '.join(meta['inputs'])}; "
            f"variants {', '.join(meta['variants'])}, each (cell, inputs, variant) in its own process",
            f"- machine: {meta['cpu_count']} CPU cores; ISA {meta['isa_text']}; 1-minute load average {load} "
            f"during the run ({meta['seconds']:.0f} s)",
            f"- inputs: tokens = ids of a {meta['vocabulary']:,}-word vocabulary through "
            f"Embedding({meta['embedding_dim']}); "
            f"real = {meta['features']} values a step. One recurrent layer, last state, Dense(1); train steps "
            f"(forward, backward, Adam) and inference calls on one fixed batch, each timed for at least "
            f"{meta['min_seconds']} s after a warm-up",
            "- products GFLOP/s: the recurrent products' exact FLOPs (train: 3 x 2btu(gu); inference 2btu(gu)) over "
            "the whole step's time; peak: one matmul of the same (units, gates x units) weights through the same "
            f"library in the same process, at most {meta['peak_rows']:,} rows; chain: steps dependent products of "
            "(batch, units), as a loop must do them",
            "- memory growth: peak RSS during the size minus RSS at its start (the runtime excluded)"]


def sizes_markdown(result) -> str:
    m = result.meta
    lines = [f"# gru-lab bench --sizes ({m['started']})", "", *header_lines(m), ""]
    headers, rows = _ratio_table(result)
    lines += ["## gru-lab against each peer (from the measured rows below)", "", markdown_table(headers, rows)]
    headers, rows = _row_table(result.rows)
    lines += ["## Measured", "", markdown_table(headers, rows)]
    lines += ["## Heat maps", ""] + [f"![{cell_names.label(c)}](heatmap_{c}.png)" for c in m["cells"]] + [""]
    return "\n".join(lines + notes_section(result.notes))


def heatmap(ratios, cell: str):
    """One cell's figure: gru-lab's samples/s over the best peer's (train, inference) at each size; a panel per
    input kind; colour on a log scale, white = even, blue = gru-lab faster; each square names the best peer."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    data = ratios[ratios["cell"] == cell]
    inputs = list(dict.fromkeys(data["inputs"]))
    units = sorted(set(data["units"]))
    columns = sorted({(int(s), int(b)) for s, b in zip(data["steps"], data["batch"])})
    fig = Figure(figsize=(1.3 * len(columns) * len(inputs) + 2.5, 2.0 + 1.6 * len(units)), layout="constrained")
    axes = fig.subplots(2, len(inputs), squeeze=False)
    values = [v for what in ("train", "infer") for v in data[f"{what}_vs_best_peer"] if not missing(v) and v > 0]
    bound = max([abs(math.log2(v)) for v in values] + [1.0])
    norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    image = None
    for row, what in enumerate(("train", "infer")):
        for col, kind in enumerate(inputs):
            ax = axes[row][col]
            grid = np.full((len(units), len(columns)), np.nan)
            part = data[data["inputs"] == kind].to_dict(orient="records")
            for rec in part:
                value = rec[f"{what}_vs_best_peer"]
                if missing(value) or value <= 0:
                    continue
                i, j = units.index(rec["units"]), columns.index((int(rec["steps"]), int(rec["batch"])))
                grid[i, j] = math.log2(value)
                ax.text(j, i, f"{value:.2f}\n{PEER_MARK.get(rec[f'{what}_best_peer'], '?')}", ha="center",
                        va="center", fontsize=8, color="white" if abs(grid[i, j]) > 0.6 * bound else "black")
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", norm=norm, aspect="auto")
            ax.set_facecolor("0.85")  # sizes not in the grid, or not measured
            ax.set_xticks(range(len(columns)), [f"{s} steps\nbatch {b}" for s, b in columns], fontsize=7)
            ax.set_yticks(range(len(units)), [f"{u} units" for u in units] if col == 0 else [], fontsize=8)
            ax.set_title(f"{'train step' if what == 'train' else 'inference'}, {kind} inputs", fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.8)
        ticks = [t for t in range(-math.ceil(bound), math.ceil(bound) + 1) if abs(t) <= bound]
        bar.set_ticks(ticks, labels=[f"{2.0 ** t:g}x" for t in ticks])
        bar.set_label("gru-lab ÷ best peer (samples/s)")
    fig.suptitle(f"{cell_names.label(cell)}: gru-lab's throughput over the best peer's (K keras, T pytorch); "
                 "grey: not measured", fontsize=10)
    return fig


def write_sizes(result) -> dict[str, Path]:
    """sizes.csv, ratios.csv, sizes.md, sizes.json and the heat maps in a new folder, each written atomically."""
    folder = result.folder
    new_folder(folder, "size bench")
    files = {"csv": folder / "sizes.csv", "ratios": folder / "ratios.csv", "md": folder / "sizes.md",
             "json": folder / "sizes.json"}
    if not result.ratios.empty:
        for cell in dict.fromkeys(result.ratios["cell"]):
            files[f"heatmap_{cell}"] = folder / f"heatmap_{cell}.png"
            save_figure(heatmap(result.ratios, cell), files[f"heatmap_{cell}"])
    write_measurements(files, result, sizes_markdown(result))
    return files


def print_sizes(console, result) -> None:
    for line in header_lines(result.meta)[:2]:
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    headers, rows = _ratio_table(result, CONSOLE)
    if rows:
        table = Table(title="bench --sizes: gru-lab against each peer", header_style="bold")
        for h in headers:
            table.add_column(h, justify="left" if h in ("cell", "inputs") else "right")
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    for rec in result.ratios.to_dict(orient="records"):
        if rec.get("targets_missed"):
            console.print(f"targets missed: {cell_names.label(rec['cell'])}, {rec['inputs']} inputs, {rec['units']} "
                          f"units x {rec['steps']} steps x batch {rec['batch']}: {rec['targets_missed']}",
                          soft_wrap=True, markup=False, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
