"""A comparison's metric by input length and its seed ensembles (experiments.by_length): comparison_by_length.csv,
comparison_ensembles.csv, by_length.png, their Markdown sections and console tables."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab import cells as cell_names
from gru_lab.files import atomic_write_text, save_figure
from gru_lab.report.format import markdown_table, missing

PLOT = {"by_length": "Test metric by true input length (mean and sd over seeds; dashed: the ensemble of the seeds)"}


def _metric(report) -> str:
    return "mse" if "mse_mean" in report.table.columns else "accuracy"


def write_length_files(report, folder: Path) -> dict[str, Path]:
    files = {}
    if report is None or report.table.empty:
        return files
    for key, frame in (("by_length_csv", report.table), ("ensembles_csv", report.ensembles)):
        path = folder / f"comparison_{key.removesuffix('_csv')}.csv"
        atomic_write_text(path, frame.to_csv(index=False))
        files[key] = path
    save_figure(_plot(report), folder / "by_length.png")
    files["by_length"] = folder / "by_length.png"
    return files


def _plot(report):
    from matplotlib.figure import Figure

    from gru_lab.report.plots import CELL_COLOR

    table, metric = report.table, _metric(report)
    lengths = sorted(table["length"].unique()) if "length" in table.columns else [None]
    fig = Figure(figsize=(5.5 * len(lengths), 4.2))
    axes = fig.subplots(1, len(lengths), squeeze=False)[0]
    for ax, length in zip(axes, lengths):
        at = table if length is None else table[table["length"] == length]
        labels = []
        for cell, rows in at.groupby("cell", sort=False):
            x = rows.bucket.to_numpy()
            sd = rows[f"{metric}_sd"].fillna(0).to_numpy()
            ax.errorbar(x, rows[f"{metric}_mean"], yerr=sd, marker="o", capsize=3, color=CELL_COLOR.get(cell),
                        label=f"{cell_names.label(cell)} ({int(rows.runs.max())} seeds)")
            labels = [f"{lo:,}-{hi:,}" if lo != hi else f"{lo:,}" for lo, hi in zip(rows.min_length, rows.max_length)]
            ens = report.ensembles
            if len(ens) and "by_length" in ens.columns:
                found = ens[(ens.cell == cell) & ((ens["length"] == length) if length is not None else True)]
                if len(found) and isinstance(found.by_length.iloc[0], list):
                    ax.plot(x, found.by_length.iloc[0], linestyle="--", color=CELL_COLOR.get(cell), alpha=0.7)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_xlabel("true length before padding (tokens; test quartiles)")
        ax.set_ylabel(f"test {metric}")
        ax.set_title("test " + metric + " by length" + ("" if length is None else f", T={length}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Does a cell hold up on long inputs? (dashed: ensemble of the seeds)")
    fig.tight_layout()
    return fig


def _rows(report):
    metric = _metric(report)
    headers = ["model", "T", "lengths (tokens)", "rows", "cut to maxlen", f"test {metric} (mean ± sd)",
               "struggles with long inputs"]
    has_t = "length" in report.table.columns
    rows = []
    for r in report.table.to_dict(orient="records"):
        sd = r.get(f"{metric}_sd")
        rows.append([cell_names.label(r["cell"]), str(int(r["length"])) if has_t else "-",
                     f"{r['min_length']:,}-{r['max_length']:,}", f"{r['count']:,}", f"{r['truncated_share']:.0%}",
                     f"{r[f'{metric}_mean']:.4g}" + ("" if missing(sd) else f" ± {sd:.2g}"),
                     (r["struggles_with_long_inputs"] or "-") if r["bucket"] == report.table[
                         report.table.cell == r["cell"]].bucket.max() else ""])
    if not has_t:
        headers.pop(1)
        rows = [row[:1] + row[2:] for row in rows]
    return headers, rows


def _ensemble_rows(report):
    metric = _metric(report)
    headers = ["model", f"test {metric}", "its seeds (mean ± sd)", "beats baseline", "struggles with long inputs"]
    rows = []
    for r in report.ensembles.to_dict(orient="records"):
        value = r.get(metric)
        if missing(value):
            rows.append([r["model"] + (f" T={int(r['length'])}" if "length" in r else ""), "-", "-", "-",
                         r.get("note") or "-"])
            continue
        rows.append([r["model"] + (f" T={int(r['length'])}" if not missing(r.get("length")) else ""), f"{value:.4g}",
                     f"{r[f'seeds_{metric}_mean']:.4g} ± {r[f'seeds_{metric}_sd']:.2g}",
                     r.get("beats_baseline") if not missing(r.get("beats_baseline")) else "-",
                     r.get("struggles_with_long_inputs") or "-"])
    return headers, rows


def length_markdown(report) -> list[str]:
    if report is None or report.table.empty:
        return []
    lines = ["## Accuracy by input length", "",
             "Test rows in quartiles of their true length (tokens before padding). A cell struggles with long "
             "inputs when its metric on the longest quarter falls short of the shortest quarter's by more than "
             "the seeds' spread.", "", markdown_table(*_rows(report))]
    if len(report.ensembles):
        lines += ["## Ensembles of seeds", "", "The mean of each cell's seeds' predicted probabilities (or forecasts).",
                  "", markdown_table(*_ensemble_rows(report))]
    lines += [f"- {n}" for n in report.notes] + ([""] if report.notes else [])
    if "by_length" in PLOT:
        lines += [f"![{PLOT['by_length']}](by_length.png)", ""]
    return lines


def print_lengths(console, report) -> None:
    if report is None or report.table.empty:
        return
    for title, (headers, rows) in (("Test metric by input length", _rows(report)),
                                   ("Ensembles of seeds", _ensemble_rows(report))):
        if not rows:
            continue
        table = Table(title=title, header_style="bold")
        for h in headers:
            table.add_column(h, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(c)) for c in row))
        console.print(table)
    for note in report.notes:
        console.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)
