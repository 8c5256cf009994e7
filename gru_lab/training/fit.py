"""Fit and evaluate one model with timing; returns a plain TrainResult (no printing, no files)."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gru_lab import names
from gru_lab.config import ExperimentConfig
from gru_lab.data.base import Dataset
from gru_lab.errors import machine_limit
from gru_lab.models.kernels import cudnn_blockers
from gru_lab.models.plan import plan_layers
from gru_lab.training import interrupt
from gru_lab.training.memory import peak_memory, reset_gpu_peak
from gru_lab.training.optimizers import make_optimizer

# Hooks let the CLI draw progress without the library printing anything.
EpochHook = Callable[[int, dict[str, float], float], None]  # (epoch 1-based, logs, seconds)
BatchHook = Callable[[int, int], None]  # (batch 1-based, batches per epoch)


@dataclass
class TrainResult:
    status: str  # "finished", "interrupted" (Ctrl-C), "diverged" (NaN/inf loss) or "failed" (out of memory)
    model: Any  # None when it holds nothing worth keeping: no finished epoch, diverged, failed
    history: list[dict[str, float]]  # one row per finished epoch: epoch, seconds, train_seconds, logs...
    metrics: dict[str, Any]  # everything metrics.json records
    scratch: Path | None = None  # temporary folder of run-folder files (tensorboard/) when train had no workdir
    test_predictions: Any = None  # the model's output on x_test, row for row (a finished run's evaluation/ reads it)


def set_seed(seed: int, deterministic_ops: bool = True) -> None:
    """Same config + seed -> same numbers on the same machine."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    # Deterministic kernels cost little on CPU for these models; on GPU it forces deterministic cuDNN.
    # Keras refuses XLA while op determinism is on, so XLA runs (CPU only) go without it: XLA's CPU
    # code is deterministic for a fixed thread count, which tests/test_training.py checks run to run.
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config  # the public API has only enable_

        tf_config.disable_op_determinism()


def loss_and_metrics(task: str) -> tuple[str, list[str]]:
    loss, metrics = names.TASK_METRICS[task]
    return loss, list(metrics)


def device_info() -> dict[str, Any]:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "device": "gpu" if gpus else "cpu",
        "gpus": [g.name for g in gpus],
        "cpu_count": os.cpu_count(),
        # 0 = TensorFlow's default (one thread a core); sweep workers set them so parallel runs share the cores.
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def timing_callback(epoch_hook: EpochHook | None, batch_hook: BatchHook | None, steps: int):
    import keras

    class Timing(keras.callbacks.Callback):
        """Wall time per epoch, split into the training part and Keras's per-epoch validation."""

        def __init__(self):
            super().__init__()
            self.rows: list[dict[str, float]] = []
            self._t0 = self._val0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()
            self._val0 = 0.0

        def on_test_begin(self, logs=None):
            self._val0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch_hook:
                batch_hook(batch + 1, steps)

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            seconds = end - self._t0
            train_seconds = (self._val0 or end) - self._t0
            row = {"epoch": epoch + 1, "seconds": seconds, "train_seconds": train_seconds}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            self.rows.append(row)
            if epoch_hook:
                epoch_hook(epoch + 1, dict(logs or {}), seconds)

    return Timing()


def train(cfg: ExperimentConfig, data: Dataset, epoch_hook: EpochHook | None = None,
          batch_hook: BatchHook | None = None, workdir: Path | None = None,
          epoch_sink: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Build, fit and evaluate the model of cfg on data.

    workdir: the run's unfinished folder (runs.folder). The state after every finished epoch is saved there
    (training.resume), and a state found there is continued from, with the numbers an uninterrupted run
    gives; files written during training go there too (tensorboard/), or, without a workdir, to a scratch
    folder (TrainResult.scratch). Ctrl-C ends training early (status "interrupted") and keeps the finished
    epochs; a NaN or infinite loss stops it at once ("diverged"); running out of memory ends it as "failed"
    with the reason. epoch_sink(epoch, metrics) gets every finished epoch's numbers (a run tracker's)."""
    from gru_lab.training.device import applied, prepare

    setup = prepare(cfg, data.spec)  # first: hiding GPUs for train.device cpu only works before TF starts
    scratch = None
    if cfg.output.tensorboard and workdir is None:
        scratch = Path(tempfile.mkdtemp(prefix="gru-lab-run-"))
    try:
        with applied(setup):
            result = _fit_and_evaluate(cfg, data, setup.plan, epoch_hook, batch_hook, workdir, scratch, epoch_sink)
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    result.scratch = scratch
    return result


def _fit_and_evaluate(cfg: ExperimentConfig, data: Dataset, plan, epoch_hook: EpochHook | None,
                      batch_hook: BatchHook | None, workdir: Path | None = None,
                      scratch: Path | None = None, epoch_sink=None) -> TrainResult:
    from gru_lab.models.build import build_model
    from gru_lab.training import callbacks as cb
    from gru_lab.training import pipeline, resume

    seed, t = cfg.train_seed, cfg.train
    set_seed(seed, deterministic_ops=not plan.xla)
    reset_gpu_peak()
    spec = data.spec
    strategy = distribution_strategy(cfg.train.distribute)
    saved = resume.load_state(workdir)
    # Under a strategy the variables (weights, optimizer slots) must be created inside its scope.
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(cfg.model, spec)
        loss, metric_names = loss_and_metrics(spec.task)
        model.compile(optimizer=make_optimizer(cfg), loss=loss, metrics=metric_names, jit_compile=plan.xla)
        early_stop = _early_stopping(cfg)
        if saved is not None:
            resume.restore(model, saved, early_stop)

    eval_batch_size = eval_batch(t, plan.compiled)
    # With a padding mask, steps that are padding in a whole batch change nothing: trim them, and group
    # reviews of similar lengths into batches so that little padding is left (pipeline.batching says when).
    masked = (cfg.model.mask_zero and spec.input_kind == "tokens") or spec.masked
    trim, bucket = pipeline.batching(masked, spec.padding, plan.xla, t.bucketing)
    x_fit, y_fit, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    if x_val is None and t.validation_split > 0:
        x_fit, y_fit, x_val, y_val = pipeline.split_validation(x_fit, y_fit, t.validation_split)
    init_seconds = None
    if cfg.model.embedding_init == "svd" and saved is None:
        from gru_lab.models.word_vectors import svd_vectors

        init_started = time.time()
        layer = model.get_layer("embedding")
        layer.embeddings.assign(svd_vectors(x_fit, layer.input_dim, layer.output_dim, seed))
        init_seconds = time.time() - init_started
    fit_kwargs: dict[str, Any] = {}
    if x_val is not None:
        fit_kwargs["validation_data"] = pipeline.eval_dataset(x_val, y_val, eval_batch_size, trim, by_length=bucket)
    n_fit = len(x_fit)
    steps = pipeline.train_steps(n_fit, t.batch_size)
    timing = timing_callback(None, batch_hook, steps)
    done = saved.epochs_done if saved else 0
    resumed = (saved.resumed + [{"from_epoch": done + 1}]) if saved else []
    if saved:
        timing.rows.extend(saved.history)
    # Order matters: divergence is caught before anything records the epoch, and the hook runs last, so a
    # hook that stops the run (Ctrl-C in the tests) finds the epoch already saved.
    callbacks = [timing, cb.DivergenceWatch()] + ([early_stop] if early_stop else [])
    if t.lr_decay != 1.0:
        import keras

        # Set from the epoch's number at its start, so a resumed run continues the same schedule.
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: t.learning_rate * t.lr_decay ** epoch))
    if workdir is not None:
        callbacks.append(cb.StateSaver(workdir, timing.rows, t.epochs, early_stop,
                                       saved.fit_seconds if saved else 0.0, resumed))
    if cfg.output.tensorboard:
        from gru_lab.training import tensorboard

        callbacks.append(tensorboard.callback((workdir or scratch) / "tensorboard"))
    if epoch_sink is not None:  # after the state saver: an epoch a tracker has logged is one a resume skips
        from gru_lab.training import tracking

        callbacks.append(tracking.callback(epoch_sink, timing.rows))
    if epoch_hook:
        callbacks.append(cb.EpochHook(epoch_hook, timing.rows))

    status, extra, predictions = "finished", {}, None
    started = time.time()
    try:
        if saved is not None and saved.complete:
            _end_of_training(model, early_stop)  # the state was saved after the last epoch: evaluate next
        else:
            # Every epoch's batches are a function of (seed, epoch), and one iterator serves the whole fit: a
            # resumed run trains epoch k+1 on the batches an uninterrupted run gives it (pipeline.epoch_batches).
            train_ds = pipeline.train_dataset(x_fit, y_fit, t.batch_size, seed, trim, bucket,
                                              epochs=t.epochs, first_epoch=done)
            with interrupt.remembered() as pressed:
                model.fit(train_ds, epochs=t.epochs, initial_epoch=done, steps_per_epoch=steps, shuffle=False,
                          callbacks=[*callbacks, cb.StopWhenPressed(pressed)], verbose=0, **fit_kwargs)
    except KeyboardInterrupt:
        status = "interrupted"
    except cb.Diverged as exc:
        status, extra = "diverged", {"diverged": exc.record()}
    except Exception as exc:  # a machine limit (out of memory) ends the run; anything else is a bug
        if machine_limit(exc) is None:
            raise
        status, extra = "failed", {"error": machine_limit(exc)}
    fit_seconds = time.time() - started + (saved.fit_seconds if saved else 0.0)
    history = timing.rows

    metrics: dict[str, Any] = {"status": status, "seed": seed, "task": spec.task, **extra}
    if resumed:
        metrics["resumed"] = resumed
    if status == "finished":
        try:
            if plan.xla_inference and not plan.xla:
                _compile_inference(model)
            inference_trim = None if plan.xla_inference else trim
            tested, predictions = evaluate(model, data, eval_batch_size, inference_trim,
                                           bucket and inference_trim is not None)
            metrics.update(tested)
        except Exception as exc:
            if machine_limit(exc) is None:
                raise
            status = metrics["status"] = "failed"
            metrics["error"] = f"while evaluating: {machine_limit(exc)}"
    elif status == "interrupted" and resume.load_state(workdir) is not None:
        # the model as it was after the last finished epoch, not halfway through the next one
        resume.restore_weights(model, resume.load_state(workdir))
    metrics.update(_timings(history, n_fit, fit_seconds, cfg, x_val is not None, early_stop))
    metrics.update(_run_facts(cfg, data, plan, model, strategy))
    metrics["execution"]["batches"] = {"trim_padding": trim, "by_length": bucket}
    if init_seconds is not None:
        metrics["embedding_init_seconds"] = round(init_seconds, 2)
    # A model is kept only when it is the result of finished epochs and nothing broke its weights.
    keep = status == "finished" or (status == "interrupted" and history)
    return TrainResult(status=status, model=model if keep else None, history=history, metrics=metrics,
                       test_predictions=predictions if status == "finished" else None)


def _early_stopping(cfg: ExperimentConfig):
    """Keras's EarlyStopping rule, in the monitor's direction (accuracy up, losses down), resumable."""
    es = cfg.train.early_stopping
    if es is None:
        return None
    from gru_lab.training.callbacks import EarlyStop

    return EarlyStop(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
                     mode=names.monitor_mode(es.monitor), restore_best_weights=es.restore_best_weights)


def _end_of_training(model, early_stop) -> None:
    """What fit does when training ends, for a resumed run whose state says it had ended: early stopping
    restores its best weights."""
    if early_stop is not None and early_stop.restored:
        early_stop.set_model(model)
        early_stop.apply_restored()
        early_stop.on_train_end()


def _timings(history: list[dict[str, float]], n_fit: int, fit_seconds: float, cfg: ExperimentConfig,
             validation: bool, early_stop=None) -> dict[str, Any]:
    """Per-epoch seconds, throughput, the best epoch and the epoch whose weights were evaluated, from the
    timing callback's rows and early stopping's state."""
    epoch_seconds = [r["seconds"] for r in history]
    train_seconds = [r["train_seconds"] for r in history]
    monitor, mode, min_delta = best_epoch_rule(cfg, validation)
    best = best_epoch(history, monitor, mode, min_delta)
    evaluated = history[-1]["epoch"] if history else None
    if early_stop is not None and early_stop.restore_best_weights and early_stop.best_weights is not None:
        evaluated = best = early_stop.best_epoch + 1  # the weights early stopping restored
    row = next((r for r in history if evaluated is not None and int(r["epoch"]) == int(evaluated)), None)
    val = {k.removeprefix("val_"): float(v) for k, v in (row or {}).items() if k.startswith("val_")}
    return {
        "epochs_run": len(history),
        "epoch_seconds": epoch_seconds,
        "median_epoch_seconds": statistics.median(epoch_seconds) if epoch_seconds else None,
        "train_samples_per_second": (n_fit / statistics.median(train_seconds)) if train_seconds else None,
        "fit_seconds": fit_seconds,
        "n_train_fit": n_fit,
        "best_epoch": best,
        "best_epoch_rule": {"monitor": monitor, "mode": mode, "min_delta": min_delta},
        "evaluated_epoch": int(evaluated) if evaluated is not None else None,
        # the validation numbers of the tested weights, beside "test": what chose them, in the same record
        "val": val or None,
    }


def _run_facts(cfg: ExperimentConfig, data: Dataset, plan, model, strategy) -> dict[str, Any]:
    """What the record says about the model and how it ran: parameters, cuDNN eligibility, the kernel plan
    and the kernels that ran, the machine, the data, memory, and the distribution strategy if any."""
    from gru_lab.training.device import kernels_used

    spec = data.spec
    cudnn_why = cudnn_blockers(cfg.model, spec)  # eligibility on a GPU, whatever device this run had
    facts = {
        "params": param_record(model, cfg, spec),
        "cudnn": [{"layer": p.name, "eligible": not cudnn_why, "reasons": cudnn_why}
                  for p in plan_layers(cfg.model, spec) if p.recurrent],
        "execution": {**plan.record(), "kernels": kernels_used(model, plan.device)},
        "environment": device_info(),
        "data": data.extra,
        "peak_memory": peak_memory(),
    }
    if strategy is not None:
        facts["distribute"] = {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                               "devices": list(strategy.extended.worker_devices)}
    return facts


def _compile_inference(model) -> None:
    """Switch evaluate/predict to XLA after a fit that ran without it (the kernel plan says when).

    Keras refuses XLA while op determinism is on, and it builds its step functions once: turn
    determinism off (XLA's CPU code is deterministic for a fixed thread count) and drop the built
    evaluate/predict functions so the next call compiles them."""
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
    model.jit_compile = True
    model.test_function = None
    model.predict_function = None


def distribution_strategy(kind: str):
    """None for "none"; for "mirrored", a MirroredStrategy over every local GPU, or, with no GPU, over
    every logical CPU device (several only when they were configured before TensorFlow started:
    MirroredStrategy() alone would take just CPU:0)."""
    if kind == "none":
        return None
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
              [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def best_epoch_rule(cfg: ExperimentConfig, validation: bool) -> tuple[str, str, float]:
    """(monitor, mode, min_delta) that pick a run's best epoch: train.early_stopping's when it has one, else
    its default monitor (val_loss, or loss without validation data)."""
    es = cfg.train.early_stopping
    if es is not None:
        return es.monitor, names.monitor_mode(es.monitor), es.min_delta
    monitor = "val_loss" if validation else "loss"
    return monitor, names.monitor_mode(monitor), 0.0


def best_epoch(history: list[dict[str, float]], monitor: str = "val_loss", mode: str = "min",
               min_delta: float = 0.0) -> int | None:
    """The best epoch by Keras's EarlyStopping rule: the first epoch is best, and a later one replaces it
    only when it improves on it by more than min_delta in the monitor's direction."""
    best_value, best = None, None
    for row in history:
        value = row.get(monitor)
        if value is None:
            continue
        if best_value is None or (value - min_delta > best_value if mode == "max" else value + min_delta < best_value):
            best_value, best = value, int(row["epoch"])
    return best


def eval_batch(t, compiled: bool = False) -> int:
    """The evaluate/predict batch (validation during fit too): train.eval_batch_size, else max(batch_size, N).

    N = 1024 under XLA, where the token table pays per batch; N = 256 with the compiled loops, as fast there
    and lighter at its peak (the embedded batch is B x T x d floats). Measured: docs/benchmarks.md."""
    return t.eval_batch_size or max(t.batch_size, 256 if compiled else 1024)


def evaluate(model, data: Dataset, batch_size: int, trim_padding: str | None = None,
             by_length: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """(test metrics, evaluation time and inference throughput on the test set; the predictions, row for row with
    x_test). by_length: evaluate in batches sorted by length; predict keeps the test set's order."""
    from gru_lab.training import pipeline

    n = len(data.x_test)
    t0 = time.perf_counter()
    values = model.evaluate(pipeline.eval_dataset(data.x_test, data.y_test, batch_size, trim_padding, by_length),
                            verbose=0, return_dict=True)
    eval_seconds = time.perf_counter() - t0
    # Inference throughput is the steady state: compile the predict step for both batch shapes first.
    for rows in {min(n, batch_size), n % batch_size} - {0}:
        model.predict(pipeline.eval_dataset(data.x_test[:rows], None, batch_size, trim_padding), verbose=0)
    t0 = time.perf_counter()
    predictions = model.predict(pipeline.eval_dataset(data.x_test, None, batch_size, trim_padding), verbose=0)
    predict_seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "test": {k: float(v) for k, v in values.items()},
        "n_test": n,
        "eval_seconds": eval_seconds,
        "inference_samples_per_second": n / predict_seconds if predict_seconds > 0 else None,
        "inference_ms_per_sample": 1000 * predict_seconds / n if n else None,
    }
    if data.task == "regression":
        y = np.asarray(data.y_test, dtype="float64").reshape(len(data.y_test), -1)
        p = np.asarray(predictions, dtype="float64").reshape(len(predictions), -1)
        out["test"]["mse"] = float(np.mean((p - y) ** 2))
        shown_x = data.x_test
        if data.units is not None:
            # The same predictions in the file's units (scaling, differencing, detrending undone): the numbers
            # a user reads, rounded in the forecast table; the scaled mse stays what compare and sweep rank.
            y, p = data.units.y, np.asarray(data.units.convert(p), dtype="float64")
            out["test"]["mse_units"] = float(np.mean((p - y) ** 2))
            out["test"]["mae_units"] = float(np.mean(np.abs(p - y)))
            shown_x = data.units.x
        shown = min(n, 10)
        out["predictions"] = [
            {"input": None if shown_x is None else _shown_input(shown_x[i]),
             "target": _rounded(y[i]) if y.shape[1] > 1 else _rounded(y[i, 0]),
             "prediction": _rounded(p[i]) if p.shape[1] > 1 else _rounded(p[i, 0])}
            for i in range(shown)
        ]
    return out, np.asarray(predictions)


def _rounded(values, digits: int = 6):
    """Six significant digits: a float32 model's outputs hold no more."""
    if np.ndim(values):
        return [_rounded(v, digits) for v in np.asarray(values).tolist()]
    return float(f"{float(values):.{digits}g}")


def _shown_input(x) -> list | None:
    """A test input small enough to read in metrics.json (the time-series GRU tutorial's [1, 2, 3]); None when long."""
    x = np.asarray(x)
    if x.size > 64:
        return None
    return (x.squeeze(-1) if x.shape[-1] == 1 else x).tolist()


def param_record(model, cfg: ExperimentConfig, spec) -> dict[str, Any]:
    import keras

    from gru_lab.models.build import layer_params

    trainable = int(sum(keras.ops.size(w) for w in model.trainable_weights))
    total = int(model.count_params())
    plans = {p.name: p for p in plan_layers(cfg.model, spec)}
    layers = []
    for row in layer_params(model):
        plan = plans.get(row["name"])
        row["formula"] = plan.formula if plan else ""
        row["recurrent"] = bool(plan and plan.recurrent)
        layers.append(row)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable,
            "recurrent": sum(r["params"] for r in layers if r["recurrent"]), "layers": layers}
