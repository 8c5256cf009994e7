"""Fit and evaluate one model with timing; returns a plain TrainResult (no printing, no files)."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gru_lab.config import ExperimentConfig
from gru_lab.data.base import Dataset
from gru_lab.models.kernels import cudnn_blockers
from gru_lab.models.plan import plan_layers
from gru_lab.training.memory import peak_memory, reset_gpu_peak

# Hooks let the CLI draw progress without the library printing anything.
EpochHook = Callable[[int, dict[str, float], float], None]  # (epoch 1-based, logs, seconds)
BatchHook = Callable[[int, int], None]  # (batch 1-based, batches per epoch)


@dataclass
class TrainResult:
    status: str  # "finished" or "interrupted"
    model: Any
    history: list[dict[str, float]]  # one row per finished epoch: epoch, seconds, train_seconds, logs...
    metrics: dict[str, Any]  # everything metrics.json records


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
    if task == "binary":
        return "binary_crossentropy", ["accuracy"]
    if task == "multiclass":
        return "sparse_categorical_crossentropy", ["accuracy"]
    return "mse", ["mae"]


def make_optimizer(cfg: ExperimentConfig):
    import keras

    t = cfg.train
    cls = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}[t.optimizer]
    kwargs: dict[str, Any] = {"learning_rate": t.learning_rate}
    if t.clipnorm is not None:
        kwargs["clipnorm"] = t.clipnorm
    return cls(**kwargs)


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
          batch_hook: BatchHook | None = None) -> TrainResult:
    """Build, fit and evaluate the model of cfg on data. Ctrl-C during fit ends training early
    (status "interrupted") and keeps the finished epochs."""
    from gru_lab.training.device import applied, prepare

    setup = prepare(cfg, data.spec)  # first: hiding GPUs for train.device cpu only works before TF starts
    with applied(setup):
        return _fit_and_evaluate(cfg, data, setup.plan, epoch_hook, batch_hook)


def _fit_and_evaluate(cfg: ExperimentConfig, data: Dataset, plan, epoch_hook: EpochHook | None,
                      batch_hook: BatchHook | None) -> TrainResult:
    import keras

    from gru_lab.models.build import build_model
    from gru_lab.training import pipeline

    seed = cfg.train_seed
    set_seed(seed, deterministic_ops=not plan.xla)
    reset_gpu_peak()
    spec = data.spec
    strategy = distribution_strategy(cfg.train.distribute)
    # Under a strategy the variables (weights, optimizer slots) must be created inside its scope.
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(cfg.model, spec)
        loss, metric_names = loss_and_metrics(spec.task)
        model.compile(optimizer=make_optimizer(cfg), loss=loss, metrics=metric_names, jit_compile=plan.xla)

    t = cfg.train
    eval_batch_size = eval_batch(t, plan.compiled)
    # With a padding mask, steps that are padding in a whole batch change nothing: trim them. Not under
    # XLA, which compiles the step once per batch shape: a dozen trimmed lengths cost more than they save.
    trim = spec.padding if (cfg.model.mask_zero and spec.input_kind == "tokens" and not plan.xla) else None
    x_fit, y_fit, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    if x_val is None and t.validation_split > 0:
        x_fit, y_fit, x_val, y_val = pipeline.split_validation(x_fit, y_fit, t.validation_split)
    fit_kwargs: dict[str, Any] = {}
    if x_val is not None:
        fit_kwargs["validation_data"] = pipeline.eval_dataset(x_val, y_val, eval_batch_size, trim)
    n_fit = len(x_fit)
    steps = -(-n_fit // t.batch_size)
    timing = timing_callback(epoch_hook, batch_hook, steps)
    callbacks = [timing]
    if t.early_stopping is not None:
        es = t.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights))

    status = "finished"
    started = time.time()
    try:
        model.fit(pipeline.train_dataset(x_fit, y_fit, t.batch_size, seed, trim), epochs=t.epochs, shuffle=False,
                  callbacks=callbacks, verbose=0, **fit_kwargs)
    except KeyboardInterrupt:
        status = "interrupted"
    fit_seconds = time.time() - started
    history = timing.rows

    metrics: dict[str, Any] = {"status": status, "seed": seed, "task": spec.task}
    if status == "finished":
        if plan.xla_inference and not plan.xla:
            _compile_inference(model)
        metrics.update(evaluate(model, data, eval_batch_size, None if plan.xla_inference else trim))
    metrics.update(_timings(history, n_fit, fit_seconds))
    metrics.update(_run_facts(cfg, data, plan, model, strategy))
    return TrainResult(status=status, model=model, history=history, metrics=metrics)


def _timings(history: list[dict[str, float]], n_fit: int, fit_seconds: float) -> dict[str, Any]:
    """Per-epoch seconds, throughput and the best epoch, from the timing callback's rows."""
    epoch_seconds = [r["seconds"] for r in history]
    train_seconds = [r["train_seconds"] for r in history]
    return {
        "epochs_run": len(history),
        "epoch_seconds": epoch_seconds,
        "median_epoch_seconds": statistics.median(epoch_seconds) if epoch_seconds else None,
        "train_samples_per_second": (n_fit / statistics.median(train_seconds)) if train_seconds else None,
        "fit_seconds": fit_seconds,
        "n_train_fit": n_fit,
        "best_epoch": best_epoch(history),
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


def best_epoch(history: list[dict[str, float]]) -> int | None:
    """The epoch with the best validation metric (or training loss when there is no validation)."""
    if not history:
        return None
    if "val_accuracy" in history[0]:
        return int(max(history, key=lambda r: r["val_accuracy"])["epoch"])
    key = "val_loss" if "val_loss" in history[0] else "loss"
    return int(min(history, key=lambda r: r[key])["epoch"])


def eval_batch(t, compiled: bool = False) -> int:
    """The evaluate/predict batch (validation during fit too): train.eval_batch_size, else max(batch_size, N).

    N = 1024 under XLA, where the token table pays per batch; N = 256 with the compiled loops, as fast there
    and lighter at its peak (the embedded batch is B x T x d floats). Measured: docs/benchmarks.md."""
    return t.eval_batch_size or max(t.batch_size, 256 if compiled else 1024)


def evaluate(model, data: Dataset, batch_size: int, trim_padding: str | None = None) -> dict[str, Any]:
    """Test metrics, evaluation time and inference throughput on the test set."""
    from gru_lab.training import pipeline

    n = len(data.x_test)
    t0 = time.perf_counter()
    values = model.evaluate(pipeline.eval_dataset(data.x_test, data.y_test, batch_size, trim_padding),
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
        shown = min(n, 10)
        out["predictions"] = [
            {"input": _shown_input(data.x_test[i]),
             "target": y[i].tolist() if y.shape[1] > 1 else float(y[i, 0]),
             "prediction": p[i].tolist() if p.shape[1] > 1 else float(p[i, 0])}
            for i in range(shown)
        ]
    return out


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
