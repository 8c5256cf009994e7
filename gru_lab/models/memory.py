"""A run's memory, estimated before anything is built: from the layer plan, the batch sizes, the sequence
length and the data sizes. Pure (no TensorFlow), so `train`, `compare` and `sweep` can refuse a run that
cannot fit before they start, and `inspect` can print it.

What a training process holds at its peak, and how each part is counted (float32, 4 bytes a value):
- the runtime: TensorFlow, Keras and gru-lab loaded, with a small model's graphs traced (a constant,
  measured; docs/memory-estimate-2026-11-29.md);
- the weights, their gradients and the optimizer's slots (adam 2, rmsprop 1, sgd 0 values a weight), plus
  the copies that early stopping (best weights) and the per-epoch resume state make: exact counts;
- the activations kept for backpropagation of one training batch: per time step and sequence, each layer's
  output and, for a recurrent layer, its input and recurrent projections and gate values per direction;
- the evaluation batch (forward only: the widest layer's values of one batch);
- the data arrays, with the copies the input pipelines make of them.
The activation counts are an approximation of what TensorFlow's gradient of a loop keeps (the kernel run
changes it); tests/models/test_memory.py states the factor the estimate holds to against measured peak RSS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gru_lab import cells
from gru_lab.config import ExperimentConfig
from gru_lab.data.base import InputSpec
from gru_lab.models.plan import plan_layers

BYTES = 4  # float32 weights, activations and real inputs; int32 token ids
RUNTIME_BYTES = 900 * 2**20  # TensorFlow + Keras + gru-lab with a tiny run traced: measured peak RSS, rounded up
OPTIMIZER_SLOTS = {"adam": 2, "rmsprop": 1, "sgd": 0}  # values kept per weight (no momentum: gru-lab's defaults)
# The NumPy arrays and two more copies: the input pipelines made two until 2026-11-29 and now read the arrays
# themselves; kept, since the measured peaks (0.72-0.99 of the estimate, docs/memory-estimate-2026-11-29.md)
# were taken with them and the estimate should err high.
DATA_COPIES = 3
# Values a recurrent layer keeps per time step, sequence and direction for the backward pass, in units u:
# input and recurrent projections and the gate values (3 x gates x u), the state and its candidate (2u);
# an LSTM also keeps its cell state and tanh of it (2u more).
RECURRENT_KEPT = {"simple_rnn": 3 * 1 + 2, "gru": 3 * 3 + 2, "lstm": 3 * 4 + 2 + 2}
DEFAULT_SAMPLES = {"imdb": 25_000}  # data sections whose n_train/n_test None means the whole split


@dataclass
class MemoryEstimate:
    parts: dict[str, int] = field(default_factory=dict)  # what -> bytes, in the order a table shows them

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def model_bytes(self) -> int:
        """Everything but the runtime and the data: what grows with the model and the batch."""
        return sum(v for k, v in self.parts.items() if k not in ("runtime", "data"))

    def record(self) -> dict[str, int]:
        return {**self.parts, "total": self.total}


def human_bytes(n: float) -> str:
    """1.4 TB, 23 GB, 512 MB: decimal units, as `df -h --si` and the messages show them."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.2g} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def estimate(cfg: ExperimentConfig, spec: InputSpec) -> MemoryEstimate:
    """The peak memory of one training run of cfg on data of this spec (see the module docstring)."""
    t, m = cfg.train, cfg.model
    plans = plan_layers(m, spec)
    params = sum(p.params for p in plans)
    slots = OPTIMIZER_SLOTS[t.optimizer]
    copies = (1 if t.early_stopping is not None and t.early_stopping.restore_best_weights else 0) + 1 + slots
    eval_batch = t.eval_batch_size or max(t.batch_size, 1024)
    per_sequence, widest = _activations(cfg, spec)
    return MemoryEstimate({
        "runtime": RUNTIME_BYTES,
        "weights": params * BYTES,
        "gradients": params * BYTES,
        "optimizer slots": slots * params * BYTES,
        "weight copies": copies * params * BYTES,  # best weights; the resume state of weights and slots
        "training activations": t.batch_size * per_sequence * BYTES,
        "evaluation batch": eval_batch * widest * BYTES,
        "data": DATA_COPIES * _data_values(cfg, spec) * BYTES,
    })


def _activations(cfg: ExperimentConfig, spec: InputSpec) -> tuple[int, int]:
    """(values one training sequence keeps for backpropagation, values one evaluation sequence needs at once)."""
    m = cfg.model
    steps = spec.timesteps  # of the tensor between layers: 1 after a recurrent layer that returns its last state
    kept = widest = spec.features * spec.timesteps
    directions = 2 if m.bidirectional else 1
    for p in plan_layers(m, spec):
        if p.kind == "Conv1D":
            kept += 2 * p.output_dim * steps  # before and after the ReLU
        elif p.kind == "MaxPooling1D":
            steps = max(1, steps // p.options["pool_size"])
            kept += p.output_dim * steps
        elif p.recurrent:
            u = p.options["units"]
            kept += RECURRENT_KEPT[m.cell] * u * directions * steps
            # evaluation: the input projections of every step (gates x u) beside the layer's input and output
            gates = cells.CELLS[m.cell].gates
            widest = max(widest, steps * (gates * u * directions + p.output_dim + p.options["input_dim"]))
            steps = steps if p.options["return_sequences"] else 1
        else:  # Embedding, LayerNormalization (input and output), Dropout (mask and output), Dense
            width = p.output_dim * steps
            kept += width if p.kind == "Embedding" else 2 * width
            widest = max(widest, width)
    return kept, widest


def _data_values(cfg: ExperimentConfig, spec: InputSpec) -> int:
    """Values of the train, validation and test inputs (targets are one value a sequence)."""
    d = cfg.data
    default = DEFAULT_SAMPLES.get(d.name, 0)
    if getattr(d, "starts", None) is not None and getattr(d, "steps", None) is not None:
        n_train = len(d.starts) * len(d.steps)
    else:
        n_train = getattr(d, "n_train", None) or default
    n = n_train + (getattr(d, "n_val", 0) or 0) + (getattr(d, "n_test", None) or default)
    if d.name == "sequences":
        from gru_lab.data.sequences import count

        n = count(d)  # spec_for read the file already: its sequences, every split padded to maxlen
    return n * (spec.timesteps * spec.features + spec.outputs)
