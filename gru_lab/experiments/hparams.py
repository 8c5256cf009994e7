"""TensorBoard's HParams view for a compare or sweep (output.tensorboard): one session per finished run with the
settings that differ between the plan's runs and its final numbers (test metrics, best epoch, seconds an epoch),
under <plan folder>/tensorboard-hparams/, which `tensorboard --logdir <plan folder>` shows beside the runs' own
curves. The summaries are TensorBoard's own (its hparams plugin), so this needs the tensorboard extra; without
it the caller says how to get it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

FOLDER = "tensorboard-hparams"
INSTALL = "pip install 'gru-lab[tensorboard]'"


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def differing(params: list[dict[str, str]]) -> list[str]:
    """The keys whose values are not the same in every run (a key some runs lack counts as differing)."""
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({p.get(k) for p in params}) > 1 and not k.startswith("output.")]


def session_values(metrics: dict[str, Any]) -> dict[str, float]:
    values = {f"test_{k}": v for k, v in (metrics.get("test") or {}).items()}
    values.update({k: metrics.get(k) for k in ("best_epoch", "median_epoch_seconds", "epochs_run")})
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_hparams(folder: Path, runs: list[tuple[str, Any, dict[str, Any]]]) -> Path | None:
    """runs: (run id, its config, its metrics.json) of every finished run. Returns the HParams folder, or None
    when no run finished."""
    if not runs:
        return None
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    from gru_lab.tracking.runs import flat_params

    params = [flat_params(cfg) for _, cfg, _ in runs]
    keys = differing(params) or ["model.cell"]
    root = Path(folder) / FOLDER
    metric_names = sorted({k for _, _, m in runs for k in session_values(m)})
    with tf.summary.create_file_writer(str(root)).as_default():
        hp.hparams_config(hparams=[hp.HParam(k) for k in keys],
                          metrics=[hp.Metric(name, display_name=name) for name in metric_names])
    for (run_id, _, metrics), values in zip(runs, params):
        writer = tf.summary.create_file_writer(str(root / run_id))
        with writer.as_default():
            hp.hparams({hp.HParam(k): _value(values.get(k)) for k in keys}, trial_id=run_id)
            for name, value in session_values(metrics).items():
                tf.summary.scalar(name, value, step=1)
        writer.close()
    return root


def _value(text: str | None) -> bool | float | str:
    """A parameter's text as the number or flag it was, so the HParams view sorts and filters it as one."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except (TypeError, ValueError):
        return str(text)
