"""A run's device setup: read the machine's facts, make the kernel plan (models.kernels), apply it for the
duration of the run (GPUs hidden or not, precision policy, gru-lab's loops on or off), and observe which
kernel each recurrent layer really ran, for the run record.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterable

from gru_lab.config import ExperimentConfig
from gru_lab.data import spec_for
from gru_lab.data.base import InputSpec
from gru_lab.models.kernels import Facts, KernelPlan, plan_kernels


def machine_facts() -> Facts:
    """Whether TensorFlow sees a GPU and whether the compiled loops can run here; builds and loads nothing
    (asking for physical devices does not start TensorFlow's runtime)."""
    import tensorflow as tf

    from gru_lab.rnn import compiled

    return Facts(gpu=bool(tf.config.list_physical_devices("GPU")), compiled=compiled.unavailable_without_building())


def build_compiled_loops(cfgs: Iterable[ExperimentConfig], notify: Callable[[str], None]) -> str | None:
    """Build gru-lab's compiled loops now, in this process, where one of these runs will want them and they
    are not built yet; notify gets one line before the build starts. Otherwise the first run (each worker
    of a compare or sweep) would build them inside its first epoch, unannounced. Returns why they could
    not be built (the runs then use the fused loops, as their plans will say), or None."""
    from gru_lab.rnn import compiled

    # The plan on a CPU with the loops buildable: a config that would not run them there never will.
    wanting = [cfg for cfg in cfgs
               if cfg.train.device != "gpu" and plan_kernels(cfg, spec_for(cfg.data), Facts()).compiled]
    if not wanting or not compiled.pending_build():
        return None
    facts = machine_facts()
    if not any(plan_kernels(cfg, spec_for(cfg.data), facts).compiled for cfg in wanting):
        return None
    compiled.load(notify=notify)
    return compiled.status()["reason"]


@dataclasses.dataclass
class DeviceSetup:
    plan: KernelPlan
    pin_cpu: bool = False  # GPUs could not be hidden (TensorFlow had started): ops are placed with tf.device


def prepare(cfg: ExperimentConfig, spec: InputSpec) -> DeviceSetup:
    """The kernel plan of this run, with the GPUs hidden where it runs on the CPU and the compiled loops
    built and loaded where it uses them (a failed build re-plans without them, saying why).

    Call it before anything else touches TensorFlow in the run: hiding GPUs only works before TensorFlow's
    runtime starts."""
    import tensorflow as tf

    facts = machine_facts()
    plan = plan_kernels(cfg, spec, facts)
    pin_cpu = False
    if facts.gpu and plan.device == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pin_cpu = True
    if plan.compiled:
        from gru_lab.rnn import compiled

        if compiled.load() is None:
            plan = plan_kernels(cfg, spec, dataclasses.replace(facts, compiled=compiled.status()["reason"]))
    if pin_cpu:
        plan.notes.append("TensorFlow had already started, so the GPUs stay visible; ops are pinned to CPU:0")
    return DeviceSetup(plan, pin_cpu)


@contextlib.contextmanager
def applied(setup: DeviceSetup):
    """Device placement, precision policy and gru-lab's loops for the duration of one run, restored afterwards."""
    import keras
    import tensorflow as tf

    from gru_lab.rnn.layers import running

    plan = setup.plan
    previous = keras.mixed_precision.global_policy().name
    if plan.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with tf.device("/CPU:0") if setup.pin_cpu else contextlib.nullcontext(), \
                running(loops=plan.device == "cpu", compiled_loops=plan.compiled):
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def kernels_used(model, device: str) -> list[dict[str, str]]:
    """For each recurrent layer (each direction of a bidirectional one): the kernel its training steps ran
    ("kernel") and the one its last evaluation/prediction ran ("inference"), as the layers report them
    (models.kernels names the kernels)."""
    from keras import layers

    rows = []
    for layer in model.layers:
        parts = [(layer.name, layer)]
        if isinstance(layer, layers.Bidirectional):
            parts = [(f"{layer.name}/forward", layer.forward_layer), (f"{layer.name}/backward", layer.backward_layer)]
        for name, part in parts:
            if not isinstance(part, layers.RNN):
                continue
            # Keras marks a layer not XLA-compilable exactly when it took the cuDNN path
            cudnn = device == "gpu" and isinstance(part, (layers.GRU, layers.LSTM)) and not part.supports_jit
            keras_kernel = "cudnn" if cudnn else "keras-loop"
            rows.append({"layer": name, "class": f"{type(part).__module__}.{type(part).__name__}",
                         "kernel": getattr(part, "trained_with", None) or keras_kernel,
                         "inference": getattr(part, "inferred_with", None) or keras_kernel})
    return rows
