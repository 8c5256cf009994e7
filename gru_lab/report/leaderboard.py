"""The leaderboard of every run under a folder (runs.records.leaderboard_frame) on the console and in
leaderboard.csv/.md."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab.files import atomic_write_text
from gru_lab.report.format import markdown_table, missing


def _leaderboard_cells(df) -> tuple[list[str], list[list[str]]]:
    varied = df.attrs.get("varied", [])  # the settings that differ between the runs of a dataset
    headers = ["dataset", "#", "name", "run id", "model", *varied, "test metric", "params", "s/epoch"]
    rows = []
    for r in df.to_dict(orient="records"):
        value = "-" if missing(r["value"]) else f"{r['metric']} {r['value']:.4g}"
        if r["status"] != "finished":
            value += f" ({r['status']})"
        rows.append([r["dataset"], str(r["rank"]), r["name"], r["run_id"],
                     r["model"], *(str(r[k]) for k in varied), value,
                     "-" if missing(r["params"]) else f"{int(r['params']):,}",
                     "-" if missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g}"])
    return headers, rows


def leaderboard_table(df, title: str) -> Table:
    headers, rows = _leaderboard_cells(df)
    table = Table(title=title, header_style="bold")
    for h in headers:
        table.add_column(h, justify="right" if h in ("#", "params", "s/epoch") else "left",
                         no_wrap=h in ("run id", "dataset", "test metric"), overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def write_leaderboard(df, root: Path) -> dict[str, Path]:
    """<root>/leaderboard.csv and .md: derived views, rewritten each time; no run folder is touched."""
    paths = {"csv": root / "leaderboard.csv", "md": root / "leaderboard.md"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_text(paths["md"], f"# Leaderboard: {root}\n\n{len(df)} runs, best test metric first within each "
                                   f"dataset (the same data: file, slice and sizes; accuracy: higher, mse: lower); "
                                   f"the settings that differ between a dataset's runs have a column each.\n\n"
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
