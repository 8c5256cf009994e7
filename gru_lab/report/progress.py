"""Progress on long work: one display for train, compare and sweep (a bar per task with its latest logs,
on stderr), and the hooks that feed it from the library's events."""

from __future__ import annotations

from typing import Callable


def display(console):
    """The shared rich Progress; use as a context manager."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[logs]}"), console=console, transient=False)


def _logs(logs: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in logs.items())


def training_hooks(progress, name: str, epochs: int) -> tuple[Callable, Callable, Callable]:
    """(epoch hook, batch hook, done) for training.fit.train: a bar of epochs and one of the current batches."""
    epoch_task = progress.add_task(f"{name}: epochs", total=epochs, logs="")
    batch_task = progress.add_task("  batches", total=None, logs="")

    def on_batch(batch: int, total: int) -> None:
        progress.update(batch_task, completed=batch, total=total)

    def on_epoch(epoch: int, logs: dict, seconds: float) -> None:
        progress.update(epoch_task, completed=epoch, logs=f"{seconds:.1f}s  {_logs(logs)}")
        progress.update(batch_task, completed=0)

    return on_epoch, on_batch, lambda: progress.update(batch_task, visible=False)


def runs_hook(progress, plan, one_line: bool) -> tuple[Callable, Callable]:
    """(event hook, done) for executor.execute_runs: a bar of runs and, per running run, a bar of its epochs.

    one_line: runs go one at a time (compare), so one epoch line is reused; otherwise (sweep, several
    workers) each running run gets its own line while it runs. Ray tasks report no epochs: their line says
    the run is on the cluster until it returns."""
    runs = progress.add_task(f"{plan.name}: runs", total=len(plan.runs), logs="")
    shared = progress.add_task("  epochs", total=None, logs="") if one_line else None
    active: dict[str, int] = {}  # run id -> its progress line, while it runs
    on_ray = getattr(plan, "backend", "local") == "ray"

    def on_event(kind: str, run, info: dict) -> None:
        if kind == "reuse":
            progress.advance(runs)
            progress.update(runs, logs=f"reused {run.run_id}")
        elif kind == "start":
            epochs = None if on_ray else run.cfg.train.epochs
            if shared is not None:
                progress.update(shared, description=f"  {run.label}", completed=0, total=epochs, logs="")
                active[run.run_id] = shared
            else:
                active[run.run_id] = progress.add_task(f"  {run.label}", total=epochs,
                                                       logs="" if epochs else "on the Ray cluster")
        elif kind == "epoch":
            progress.update(active[run.run_id], completed=info["epoch"],
                            logs=f"{info['seconds']:.1f}s  {_logs(info['logs'])}")
        elif kind in ("finish", "fail"):
            task = active.pop(run.run_id, None)
            if task is not None and task != shared:
                progress.remove_task(task)
            progress.advance(runs)
            if kind == "fail":
                progress.console.print(f"[red]failed:[/] {run.label} ({run.run_id}): {info['error']}",
                                       soft_wrap=True, highlight=False)

    def done() -> None:
        if shared is not None:
            progress.update(shared, visible=False)

    return on_event, done


def runs_lines(console, plan, every: float = 30.0, clock: Callable[[], float] | None = None
               ) -> tuple[Callable, Callable]:
    """(event hook, done) for executor.execute_runs when stderr is not a terminal (CI, nohup, a pipe), where a
    live bar shows nothing until the end: one plain line per run that finishes, fails or is reused, with the
    count done so far, and, for a run still training, one line per epoch at most every `every` seconds."""
    import time

    clock = clock or time.monotonic
    total, done = len(plan.runs), [0]
    last: dict[str, float] = {}  # run id -> when its last line was printed

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def on_event(kind: str, run, info: dict) -> None:
        if kind == "start":
            last[run.run_id] = clock()
            return
        if kind == "epoch":
            if clock() - last.get(run.run_id, float("-inf")) >= every:
                last[run.run_id] = clock()
                say(f"  {run.label}: epoch {info['epoch']}/{run.cfg.train.epochs} in {info['seconds']:.1f} s  "
                    f"{_logs(info.get('logs') or {})}")
            return
        done[0] += 1
        count = f"[{done[0]}/{total}]"
        if kind == "reuse":
            say(f"{count} reused {run.label} ({run.run_id})")
        elif kind == "fail":
            say(f"{count} failed {run.label} ({run.run_id}): {info['error']}")
        elif kind == "finish":
            m = info.get("metrics") or {}
            test = ", ".join(f"test {k} {v:.4g}" for k, v in (m.get("test") or {}).items() if k != "loss")
            took = f" in {info['seconds']:.0f} s" if info.get("seconds") is not None else ""
            say(f"{count} {m.get('status', 'finished')} {run.label} ({run.run_id}){took}"
                + (f": {test}" if test else ""))
        last.pop(run.run_id, None)

    return on_event, lambda: None


def training_lines(console, name: str, epochs: int, every: float = 30.0, clock: Callable[[], float] | None = None
                   ) -> Callable:
    """The epoch hook for training.fit.train when stderr is not a terminal: a plain line for an epoch at most every
    `every` seconds (the first and the last epoch always), instead of a live bar that shows nothing until the end."""
    import time

    clock = clock or time.monotonic
    last = [float("-inf")]

    def on_epoch(epoch: int, logs: dict, seconds: float) -> None:
        if epoch in (1, epochs) or clock() - last[0] >= every:
            last[0] = clock()
            console.print(f"{name}: epoch {epoch}/{epochs} in {seconds:.1f} s  {_logs(logs)}", markup=False,
                          highlight=False, soft_wrap=True)

    return on_epoch
