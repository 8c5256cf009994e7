"""A bench (gru_lab.bench.bench.run_bench) on the console and in bench.md, bench.csv, ratios.csv, bench.json."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab import cells as cell_names
from gru_lab.report.format import markdown_table, missing, new_folder, notes_section, num, write_measurements

BENCH_HEADERS = {
    "cell": "cell", "variant": "variant", "epochs": "epochs", "epoch_s": "s/epoch (each epoch)",
    "s_per_epoch": "s/epoch\n(median)", "train_samples_per_s": "train\nsamples/s",
    "infer_samples_per_s": "infer\nsamples/s", "eval_s": "evaluate\ns", "eval_batch": "eval\nbatch",
    "test_metric": "test {metric}", "peak_rss_mib": "peak RSS\nMiB",
    "kernel": "recurrent kernel", "load": "load avg\nbefore/after",
}

RATIO_HEADERS = {
    "cell": "cell", "variant": "variant", "train_speedup": "train samples/s\n÷ {reference}",
    "epoch_speedup": "{reference} s/epoch\n÷ this", "infer_speedup": "infer samples/s\n÷ {reference}",
    "metric_diff_points": "test {metric}\n- {reference} (points)", "peak_rss_ratio": "peak RSS\n÷ {reference}",
}
# Each reference run's ratio table: its title, and its short name in the column headers.
REFERENCES = {
    "keras baseline": ("ratios to the keras baseline", "baseline"),
    "pytorch": ("ratios to pytorch", "pytorch"),
    "gru-lab": ("other recipes against gru-lab's run of the bench's config", "gru-lab"),
}


# The console table fits 120 columns; bench.md and bench.csv have everything.

BENCH_CONSOLE = ("cell", "variant", "epoch_s", "train_samples_per_s", "infer_samples_per_s", "test_metric",
                 "peak_rss_mib", "kernel")


def _bench_cells(rows, only: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    metric_col = next((c for c in rows.columns if c.startswith("test_")), "test_metric")
    metric = metric_col.removeprefix("test_")
    columns = [c for c in BENCH_HEADERS if only is None or c in only]
    headers = [BENCH_HEADERS[c].format(metric=metric) for c in columns]
    table = []
    for rec in rows.to_dict(orient="records"):
        epochs = [rec[f"epoch_{i}_s"] for i in range(1, int(rec["epochs"]) + 1) if not missing(rec.get(f"epoch_{i}_s"))]
        cells = {
            "cell": cell_names.label(rec["cell"]), "variant": rec["variant"], "epochs": str(rec["epochs"]),
            "epoch_s": " / ".join(f"{s:.1f}" for s in epochs),
            "s_per_epoch": num(rec["s_per_epoch"], "{:.1f}"),
            "train_samples_per_s": num(rec["train_samples_per_s"], "{:,.0f}"),
            "infer_samples_per_s": num(rec["infer_samples_per_s"], "{:,.0f}"), "eval_s": num(rec["eval_s"], "{:.1f}"),
            "eval_batch": str(rec["eval_batch"]), "test_metric": num(rec.get(metric_col), "{:.4f}"),
            "peak_rss_mib": num(rec["peak_rss_mib"], "{:,.0f}"), "kernel": str(rec["kernel"]).replace(" (xla)", "+xla"),
            "load": f"{num(rec['load_before'], '{:.2f}')} / {num(rec['load_after'], '{:.2f}')}",
        }
        table.append([cells[c] for c in columns])
    return headers, table


def _ratio_cells(ratios, reference: str) -> tuple[list[str], list[list[str]]]:
    """The ratio table against one reference run (REFERENCES); no rows when the bench has none."""
    metric_col = next((c for c in ratios.columns if c.endswith("_diff_points")), "metric_diff_points")
    metric = metric_col.removesuffix("_diff_points").removeprefix("test_")
    headers = [h.format(metric=metric, reference=REFERENCES[reference][1]) for h in RATIO_HEADERS.values()]
    table = []
    for rec in ratios.to_dict(orient="records"):
        if rec.get("reference", "keras baseline") != reference:
            continue
        table.append([cell_names.label(rec["cell"]), rec["variant"], num(rec["train_speedup"], "{:.2f}x"),
                      num(rec["epoch_speedup"], "{:.2f}x"), num(rec["infer_speedup"], "{:.2f}x"),
                      num(rec.get(metric_col), "{:+.2f}"), num(rec["peak_rss_ratio"], "{:.2f}")])
    return headers, table


def _workload_lines(m: dict) -> list[str]:
    """bench.md's lines on the other recipes and the peers, where the bench had any."""
    lines = [f"- {variant}: gru-lab's path on the config named {name!r} (`--recipe`), model.cell set to each cell"
             for variant, name in (m.get("recipes") or {}).items()]
    torch = (m.get("peers") or {}).get("torch")
    if torch == "ran":
        lines.append(f"- pytorch: the same model in torch.nn (torch {m['peers'].get('torch_version')}, "
                     f"intra-op threads {m['peers'].get('torch_threads')}, OMP_WAIT_POLICY "
                     f"{m['peers'].get('torch_omp_wait_policy')}), from the same initial weights, on the "
                     "same token arrays, batch, epochs, optimizer, learning rate and validation split; "
                     "evaluate/predict at batch max(batch_size, 1024)")
    elif torch:
        lines.append(f"- pytorch: {torch}")
    return lines


def bench_markdown(result) -> str:
    """bench.md: the workload, the measured table, the ratios and the notes."""
    m = result.meta
    env = m.get("environment") or {}
    lines = [f"# gru-lab bench: {m['config']} ({m['started']})", "",
             f"- workload: {m['data']}; {m['n_train_fit']:,} train + {m['n_val']:,} validation samples, "
             f"{m['n_test']:,} test; {m['timesteps']} time steps; batch {m['batch_size']}; {m['epochs']} epoch(s); "
             f"units {m['units']}, embedding {m['embedding_dim']}",
             f"- machine: {env.get('cpu_count')} CPU core(s), device {env.get('device')}; "
             f"TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')}"
             + (f"; ISA {m['isa']}" if m.get("isa") else ""),
             "- keras baseline: Keras layers, model.fit on NumPy arrays with validation_split, evaluate/predict at "
             "Keras's default batch (32), as the IMDB GRU tutorial's script; gru-lab: `gru-lab train`'s path",
             *_workload_lines(m), ""]
    headers, rows = _bench_cells(result.rows)
    lines += ["## Measured", "", markdown_table(headers, rows)]
    for reference, (title, _) in REFERENCES.items():
        headers, rows = _ratio_cells(result.ratios, reference)
        if rows:
            lines += [f"## {title[0].upper()}{title[1:]} (from the measured rows above)", "",
                      markdown_table(headers, rows)]
    return "\n".join(lines + notes_section(result.notes))


def write_bench(result) -> dict[str, Path]:
    """bench.csv, ratios.csv, bench.md and bench.json in a new folder, each written atomically."""
    folder = result.folder
    new_folder(folder, "bench")
    files = {"csv": folder / "bench.csv", "ratios": folder / "ratios.csv", "md": folder / "bench.md",
             "json": folder / "bench.json"}
    write_measurements(files, result, bench_markdown(result))
    return files


def print_bench(console, result) -> None:
    tables = [("bench: measured", _bench_cells(result.rows, BENCH_CONSOLE))]
    tables += [(f"bench: {title}", _ratio_cells(result.ratios, reference))
               for reference, (title, _) in REFERENCES.items()]
    for title, (headers, rows) in tables:
        if not rows:
            continue
        table = Table(title=title, header_style="bold")
        for h in headers:
            table.add_column(h, justify="left" if h in ("cell", "variant", "recurrent kernel") else "right",
                             no_wrap=h in ("cell", "variant"))
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
