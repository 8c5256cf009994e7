"""Names Keras accepts, known without importing it: the activations a recurrent layer can take, and the loss
and metrics each task compiles with (so the config can check a monitor before anything runs, and training
compiles with the same names). tests/config/test_names.py checks these lists against Keras itself.
"""

from __future__ import annotations

# keras.activations that map a tensor to one of the same shape with no extra argument (Keras 3.x); glu
# (halves the last axis) and threshold (needs two more arguments) fail inside a recurrent cell.
ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu",
    "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus",
    "swish", "tanh", "tanh_shrink",
)

# task -> (loss, compiled metrics); Keras logs "loss" and each metric by these names (val_* with validation data).
TASK_METRICS = {
    "binary": ("binary_crossentropy", ("accuracy",)),
    "multiclass": ("sparse_categorical_crossentropy", ("accuracy",)),
    "regression": ("mse", ("mae",)),
}
HIGHER_IS_BETTER = ("accuracy",)  # every other logged quantity (loss, mae) is better lower


def logged_quantities(task: str, validation: bool) -> list[str]:
    """What a run of this task logs per epoch, in Keras's names: loss and the metrics, then their val_ twins."""
    names = ["loss", *TASK_METRICS[task][1]]
    return names + [f"val_{n}" for n in names] if validation else names


def monitor_mode(monitor: str) -> str:
    """"max" for a quantity that is better higher (accuracy, val_accuracy), else "min": what Keras's
    mode="auto" infers for the quantities gru-lab logs."""
    return "max" if monitor.removeprefix("val_") in HIGHER_IS_BETTER else "min"
