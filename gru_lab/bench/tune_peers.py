"""gru-lab tune against KerasTuner's Hyperband and RandomSearch on one config's search space: the best
validation score each finds, the epochs each trains and the wall time each takes, measured one after the
other on this machine. Run by hand (not a test; the `kerastuner` extra):

    python -m gru_lab.bench.tune_peers configs/adding_tune.yaml --trials 8
    python -m gru_lab.bench.tune_peers configs/adding_tune.yaml --timeout 240   # the same wall budget for each

With --timeout every search gets the same wall budget and as many trials as fit (no search starts a trial
after it; a running trial finishes): gru-lab tune through its own --timeout, KerasTuner by an oracle that
stops handing out trials once the budget is spent (KerasTuner has no time budget of its own).
KerasTuner trains the same model (gru-lab's builder, so the same layers and loops), data and validation
rows, batch size, optimizer and epochs; its objective is the same validation quantity, scored as gru-lab
scores a trial (the best epoch). It runs plain model.fit: no early stopping, bucketing or learning-rate decay
a config may ask gru-lab for. Writes results/tune-peers/<time>/tune_peers.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gru_lab.bench.workers import load_average


def _stop_after(tuner, seconds: float | None) -> None:
    """KerasTuner's search asks its oracle for the next trial; past the budget the oracle answers STOPPED."""
    if seconds is None:
        return
    from keras_tuner.engine import trial as trial_module

    deadline = time.perf_counter() + seconds
    create = tuner.oracle.create_trial

    def create_trial(tuner_id):
        if time.perf_counter() >= deadline:
            return trial_module.Trial(tuner.oracle.get_space(), status=trial_module.TrialStatus.STOPPED)
        return create(tuner_id)

    tuner.oracle.create_trial = create_trial


def _kerastuner(plan, kind: str, trials: int, folder: Path, timeout: float | None = None) -> dict[str, Any]:
    """One KerasTuner search in this process: (best score, epochs trained, trials, seconds)."""
    import keras
    import keras_tuner as kt

    from gru_lab.config import config_from_raw, set_key
    from gru_lab.data import load_dataset
    from gru_lab.experiments.space import value_text
    from gru_lab.models.build import build_model
    from gru_lab.training.fit import loss_and_metrics, make_optimizer

    data = load_dataset(plan.base.data, plan.base.seed)
    epochs = plan.base.train.epochs

    def hypermodel(hp):
        raw = copy.deepcopy(plan.raw)
        for p in plan.space:
            if p.kind == "categorical":
                texts = [value_text(c) for c in p.choices]
                value = p.choices[texts.index(hp.Choice(p.key, texts))]
            elif p.kind == "int":
                value = hp.Int(p.key, int(p.low), int(p.high), step=int(p.step or 1),
                               sampling="log" if p.log else "linear")
            else:
                value = hp.Float(p.key, p.low, p.high, step=p.step, sampling="log" if p.log else "linear")
            set_key(raw, p.key, value, "kerastuner", p.key)
        cfg = config_from_raw(raw, "kerastuner")
        model = build_model(cfg.model, data.spec)
        loss, metrics = loss_and_metrics(data.spec.task)
        model.compile(optimizer=make_optimizer(cfg, keras_updates=True), loss=loss, metrics=metrics)
        return model

    counted = {"epochs": 0}

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            counted["epochs"] += 1

    direction = "max" if plan.higher_is_better else "min"
    objective = kt.Objective(plan.metric, direction=direction)
    common = {"objective": objective, "seed": plan.base.seed, "directory": str(folder), "project_name": kind,
              "overwrite": True}
    if kind == "hyperband":
        # with a wall budget, as many Hyperband iterations as fit in it
        tuner = kt.Hyperband(hypermodel, max_epochs=epochs, factor=3,
                             hyperband_iterations=1 if timeout is None else 1000, **common)
    else:
        tuner = kt.RandomSearch(hypermodel, max_trials=trials if timeout is None else 100000, **common)
    # KerasTuner imports tensorboard for every trial only to patch a TensorBoard callback; none is used here.
    tuner._configure_tensorboard_dir = lambda *_args, **_kwargs: None
    keras.utils.set_random_seed(plan.base.train_seed)
    _stop_after(tuner, timeout)
    started = time.perf_counter()
    x_fit, y_fit, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    if x_val is None:  # train.validation_split: the same rows held out as gru-lab holds out
        from gru_lab.training.pipeline import split_validation

        x_fit, y_fit, x_val, y_val = split_validation(x_fit, y_fit, plan.base.train.validation_split)
    tuner.search(x_fit, y_fit, validation_data=(x_val, y_val), epochs=epochs,
                 batch_size=plan.base.train.batch_size, callbacks=[Count()], verbose=0)
    seconds = time.perf_counter() - started
    best = tuner.oracle.get_best_trials(1)[0]
    return {"tool": f"KerasTuner {kind}", "best": best.score, "best_params": best.hyperparameters.values,
            "epochs": counted["epochs"], "trials": len(tuner.oracle.trials), "seconds": seconds}


def _gru_lab(config: str, trials: int, pruner: str, folder: Path, timeout: float | None = None) -> dict[str, Any]:
    """gru-lab tune as a user runs it (its own processes), into a fresh results folder."""
    name = f"peers-{pruner}"
    budget = [] if timeout is None else ["--timeout", f"{int(timeout)}s"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from gru_lab.cli import run; run()", "tune", config, "--trials",
                           str(trials if timeout is None else 10000), *budget, "--pruner", pruner, "--name", name,
                           "--quiet", "--set", f"output.dir={folder}"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"gru-lab tune failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    record = json.loads((folder / name / "tune.json").read_text())
    return {"tool": f"gru-lab tune (tpe, {pruner})", "best": record["best_value"],
            "best_params": next((r for r in record["table"] if r["trial"] == record["best_trial"]), {}),
            "epochs": record["epochs_trained"], "trials": sum(record["counts"].values()), "seconds": seconds,
            "note": "wall includes the base config's run and process start-up per trial"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--trials", type=int, default=8, help="trials for gru-lab and RandomSearch")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds: the same wall budget for each search instead of a number of trials")
    parser.add_argument("--only", default="gru-lab,hyperband,random", help="which searches, comma-separated")
    args = parser.parse_args(argv)
    from gru_lab.experiments.tune import plan_tune
    from gru_lab.files import atomic_write_json, atomic_write_text
    from gru_lab.report.format import markdown_table

    plan = plan_tune(args.config, trials=args.trials, workers=1)
    folder = Path(plan.base.output.dir) / "tune-peers" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    folder.mkdir(parents=True)
    rows = []
    for what in args.only.split(","):
        load_before = load_average()
        if what == "gru-lab":
            for pruner in ("hyperband", "none"):
                rows.append({**_gru_lab(args.config, args.trials, pruner, folder, args.timeout),
                             "load_before": load_before,
                             "load_after": load_average()})
                load_before = load_average()
        else:
            rows.append({**_kerastuner(plan, what, args.trials, folder, args.timeout), "load_before": load_before,
                         "load_after": load_average()})
    isa = "avx512" if "avx512" in Path("/proc/cpuinfo").read_text() else "no avx512"
    record = {"written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": args.config,
              "metric": plan.metric, "trials": args.trials, "timeout_s": args.timeout,
              "space": [p.record() for p in plan.space],
              "cpu_count": os.cpu_count(), "isa": isa, "rows": rows}
    atomic_write_json(folder / "tune_peers.json", record)
    table = markdown_table(["tool", f"best {plan.metric}", "trials", "epochs", "wall s", "load before/after"],
                           [[r["tool"], f"{r['best']:.4g}", str(r["trials"]), str(r["epochs"]),
                             f"{r['seconds']:.0f}", f"{r['load_before']}/{r['load_after']}"] for r in rows])
    atomic_write_text(folder / "tune_peers.md", f"# tune peers: {args.config}\n\n{table}")
    print(table)
    print(f"written: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
