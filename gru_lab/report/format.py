"""Formatting shared by every table: numbers as text, Markdown tables, the CSV/Markdown/JSON trio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gru_lab.files import atomic_write_json, atomic_write_text
from gru_lab.runs.records import missing


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_cell(column: str, value: Any, rec: dict[str, Any]) -> str:
    """One cell of a comparison or sweep table, formatted the same way in both (rich and Markdown)."""
    if column in ("metric_mean", "val_mean"):
        sd = rec.get("metric_std" if column == "metric_mean" else "val_std")
        if missing(value):  # every run of the group diverged: nothing to average (a baseline row has no count)
            return "diverged" if not missing(rec.get("diverged")) and rec.get("diverged") else "-"
        return f"{value:.4g}" + ("" if missing(sd) else f" ± {sd:.2g}")
    if missing(value):
        return "-"
    if column == "recurrent_vs_lstm_pct":
        return f"{value:.1f}%"
    if column in ("params_total", "params_recurrent", "length", "val_rank"):
        return f"{int(value):,}"
    if column in ("peak_rss_mib", "peak_gpu_mib", "train_samples_per_s", "infer_samples_per_s"):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def num(value: Any, fmt: str) -> str:
    return "-" if missing(value) else fmt.format(value)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def records(df) -> list[dict[str, Any]]:
    return [{k: (None if missing(v) else v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def new_folder(folder: Path, what: str) -> None:
    """Create the folder of a new bench or check; one that already holds files is never written into."""
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} already holds a {what}; a {what} never overwrites another")
    folder.mkdir(parents=True, exist_ok=True)


def write_measurements(files: dict[str, Path], result, markdown: str) -> None:
    """A bench's files (files["csv"], ["ratios"], ["md"], ["json"]): its measured rows, their ratios, the markdown
    and the JSON record of meta, rows, ratios and notes, each written atomically (the bench and its size grid)."""
    atomic_write_text(files["csv"], result.rows.to_csv(index=False))
    atomic_write_text(files["ratios"], result.ratios.to_csv(index=False))
    atomic_write_text(files["md"], markdown)
    atomic_write_json(files["json"], {"meta": result.meta, "rows": records(result.rows),
                                      "ratios": records(result.ratios), "notes": result.notes})


def notes_section(notes: list[str]) -> list[str]:
    """A Markdown report's notes, as lines; none without notes."""
    return ["## Notes", ""] + [f"- {n}" for n in notes] + [""] if notes else []


def write_table_files(stem, table, markdown: str, record) -> dict:
    """<stem>.csv, .md and .json, each written atomically; returns {"csv"|"md"|"json": path}."""
    paths = {kind: stem.with_name(f"{stem.name}.{kind}") for kind in ("csv", "md", "json")}
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_text(paths["md"], markdown)
    atomic_write_json(paths["json"], record)
    return paths


def write_report(result, summary, stem: str, plots, markdown, record):
    """A comparison's or sweep's files under its folder: the PNGs plots(folder) writes (it returns their paths),
    then <stem>.csv/.md/.json from summary.table, markdown(result, summary) and record(result, summary)."""
    folder = result.plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    summary.files.update(plots(folder))
    summary.files.update(write_table_files(folder / stem, summary.table, markdown(result, summary),
                                           record(result, summary)))
    return summary


def record_header(result, what: dict[str, Any]) -> dict[str, Any]:
    """The start of a comparison's or sweep's JSON record: its name, when and from what it was written, the
    command's own settings (what), and the machine its runs trained on."""
    import time

    plan = result.plan
    env = next((o.metrics.get("environment") for o in result.outcomes if o.metrics), None)
    return {"name": plan.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": plan.source,
            **what, "isolation": result.isolation, "interrupted": result.interrupted, "environment": env}
