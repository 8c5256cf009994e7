"""The leaderboard of every run under a folder (runs.records.leaderboard_frame) on the console and in
leaderboard.csv/.md."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab.experiments.selection import BOARD_TIE_RULE
from gru_lab.files import atomic_write_text
from gru_lab.report.format import markdown_table, missing

RANK_RULE = (f"the validation metric at the epoch each run was tested (accuracy: higher, mse: lower), "
             f"{BOARD_TIE_RULE}; the test metric is shown beside it, never used to rank; runs without validation "
             "are unranked (#: -)")


def _leaderboard_cells(df) -> tuple[list[str], list[list[str]]]:
    import pandas as pd

    varied = df.attrs.get("varied", [])  # the settings that differ between the runs of a dataset
    headers = ["dataset", "#", "name", "run id", "model", *varied, "validation", "test metric", "params", "s/epoch"]
    rows = []
    for r in df.to_dict(orient="records"):
        value = "-" if missing(r["value"]) else f"{r['metric']} {r['value']:.4g}"
        if r["status"] != "finished":
            value += f" ({r['status']})"
        val = "-" if missing(r.get("val_value")) else f"{r['val_metric']} {r['val_value']:.4g}"
        rank = "-" if r["rank"] is None or pd.isna(r["rank"]) else str(r["rank"])  # pandas' NA: unranked
        rows.append([r["dataset"], rank, r["name"], r["run_id"],
                     r["model"], *(str(r[k]) for k in varied), val, value,
                     "-" if missing(r["params"]) else f"{int(r['params']):,}",
                     "-" if missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g}"])
    return headers, rows


def leaderboard_table(df, title: str) -> Table:
    headers, rows = _leaderboard_cells(df)
    table = Table(title=title, header_style="bold")
    for h in headers:
        table.add_column(h, justify="right" if h in ("#", "params", "s/epoch") else "left",
                         no_wrap=h in ("run id", "dataset", "validation", "test metric"), overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def leaderboard_view(df, title: str, width: int):
    """The leaderboard for a console `width` columns wide: the table where its cells fit whole, else (a pipe
    or a narrow terminal) one plain line per run under its dataset, so a run id or a metric is never folded
    into a column two characters wide."""
    from rich.text import Text

    headers, rows = _leaderboard_cells(df)
    # Each column as wide as its widest cell (a header's widest line), plus the borders and padding.
    natural = sum(max([len(line) for line in h.split("\n")] + [len(r[i]) for r in rows]) + 3
                  for i, h in enumerate(headers)) + 1
    if natural <= width:
        return leaderboard_table(df, title)
    lines, dataset = [title], None
    varied = headers[5:-4]  # the settings that differ between a dataset's runs (mlflow's grouping)
    for row in rows:
        r = dict(zip(headers, row))
        if r["dataset"] != dataset:
            dataset = r["dataset"]
            lines.append(f"{dataset}:")
        settings = "".join(f"; {k} {r[k]}" for k in varied)
        # The metric opens its own line, so wrapping never parts it from its value.
        lines += [f"  #{r['#']} {r['run id']} ({r['name']})",
                  f"     {r['validation']}; test {r['test metric']}; {r['model']}{settings}; {r['params']} params; "
                  f"{r['s/epoch']} s/epoch"]
    return Text("\n".join(lines))


def write_leaderboard(df, root: Path) -> dict[str, Path]:
    """<root>/leaderboard.csv and .md: derived views, rewritten each time; no run folder is touched."""
    paths = {"csv": root / "leaderboard.csv", "md": root / "leaderboard.md"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_text(paths["md"], f"# Leaderboard: {root}\n\n{len(df)} runs, ranked within each dataset by "
                                   f"{RANK_RULE}. A dataset is the same data (file, slice and sizes); the settings "
                                   f"that differ between a dataset's runs have a column each.\n\n"
                                   + markdown_table(*_leaderboard_cells(df)))
    return paths


def unfinished_text(left, root: Path) -> str:
    """report: how many unfinished run folders (runs.folder.Unfinished) are left under root, of which kind, and
    how to resume or remove them."""
    resumable = sum(1 for u in left if u.epochs_done and not u.stale and not u.in_use)
    stale = sum(1 for u in left if u.stale and not u.in_use)
    busy = sum(1 for u in left if u.in_use)
    parts = [f"{resumable} can resume (`gru-lab train CONFIG --resume`, or the same compare/sweep again)"] \
        if resumable else []
    parts += [f"{stale} older than a finished run of the same config"] if stale else []
    parts += [f"{busy} in use by a running training"] if busy else []
    rest = len(left) - resumable - stale - busy
    parts += [f"{rest} with no finished epoch"] if rest else []
    return (f"{len(left)} unfinished run folder(s) left under {root}: {'; '.join(parts)}. "
            f"Remove them with `gru-lab report {root} --clean`.")
