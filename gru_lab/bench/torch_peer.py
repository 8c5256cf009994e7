"""The PyTorch peer of `gru-lab bench --peers torch`: the bench's model trained with torch.nn.GRU / LSTM / RNN.

The same model as the Keras baseline and gru-lab (Embedding + recurrent layers + Dense), from the same initial
weights (the parent builds the Keras model with the run's seed and hands its weights over, gates reordered to
torch's layout), trained on the same token arrays (handed over as a .npz file) with the same batch size, epochs,
optimizer (Keras's defaults for the rest: Adam's and RMSprop's epsilon 1e-7, RMSprop's rho 0.9), learning rate,
clipnorm and validation split (the last fraction of train, before shuffling, as Keras's validation_split).
Batches are drawn in a fresh seeded permutation every epoch, from tensors in memory, as a PyTorch user would
write the loop (no DataLoader: it collates sample by sample).

It runs in its own process, `python -m gru_lab.bench.torch_peer JOB.json ANSWER.json` (the arrays go beside
it in a .npz file), which never imports TensorFlow, so that its peak RSS is PyTorch's own. It uses one intra-op
thread per core, as TensorFlow does (OMP_NUM_THREADS, where set, chooses instead), with OpenMP's own wait
policy: its threads spin at a barrier before they sleep, the fastest on free cores and many times slower when
another process holds one (OMP_WAIT_POLICY=PASSIVE trades one for the other; measured: docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab.config import ExperimentConfig, config_from_raw
from gru_lab.data.base import Dataset
from gru_lab.training.memory import peak_rss_mib

PEERS = ("torch",)
TORCH = "pytorch"  # the variant name of its rows in the bench
TORCH_MODULES = {"gru": "GRU", "lstm": "LSTM", "simple_rnn": "RNN"}  # torch.nn classes by gru-lab cell
INSTALL = ("PyTorch is not installed, so the bench runs without its PyTorch rows: `make install-peers` "
           "(pip install -c constraints.txt -e '.[peers]', a CPU build of torch) adds them")


def torch_installed() -> bool:
    """Whether `import torch` can work here, without importing it (the parent process stays TensorFlow's)."""
    return importlib.util.find_spec("torch") is not None


def unsupported(cfg: ExperimentConfig, task: str) -> list[str]:
    """What keeps the peer from training the very model the bench times; empty = nothing."""
    m, t = cfg.model, cfg.train
    checks = [
        (m.bidirectional, "model.bidirectional"), (m.conv is not None, "model.conv"),
        (m.layer_norm, "model.layer_norm"),
        (m.mask_zero, "model.mask_zero (the peer builds no masks)"),
        (m.dropout > 0, "model.dropout (Keras drops the same inputs at every step; torch's dropout differs)"),
        (m.recurrent_dropout > 0, "model.recurrent_dropout (torch.nn has none)"),
        (m.activation != "tanh", f"model.activation {m.activation!r} (torch.nn's cells use tanh)"),
        ((m.recurrent_activation or "sigmoid") != "sigmoid",
         f"model.recurrent_activation {m.recurrent_activation!r} (torch.nn's gates use sigmoid)"),
        (m.head == "none", "model.head 'none'"), (t.early_stopping is not None, "train.early_stopping"),
        (t.distribute != "none", "train.distribute"), (task == "regression", "a regression task"),
    ]
    return [what for blocked, what in checks if blocked]


# ----------------------------------------------------------------------------- weights: Keras -> torch


def _gru_gates(a: np.ndarray, u: int) -> np.ndarray:
    """Keras orders GRU gates z, r, h along the last axis; torch orders them r, z, n."""
    return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)


def keras_to_torch(model, cfg: ExperimentConfig) -> dict[str, np.ndarray]:
    """A Keras model's weights under the names and layouts of TorchModel's state_dict.

    GRU: Keras (reset_after=True) computes what torch.nn.GRU computes, with the gates in another order and
    the biases as one (2, 3u) array (input, recurrent). LSTM: the same gate order (i, f, c/g, o); Keras's one
    bias becomes torch's input bias, its recurrent bias zero. SimpleRNN likewise. Kernels are transposed."""
    from keras import layers

    weights: dict[str, np.ndarray] = {}
    index = 0
    for layer in model.layers:
        w = [np.asarray(v) for v in layer.get_weights()]
        if isinstance(layer, layers.Embedding):
            weights["embedding.weight"] = w[0]
        elif isinstance(layer, layers.RNN):
            kernel, recurrent, bias = w
            u = recurrent.shape[0]
            if cfg.model.cell == "gru":
                kernel, recurrent = _gru_gates(kernel, u), _gru_gates(recurrent, u)
                bias_ih, bias_hh = _gru_gates(bias[0], u), _gru_gates(bias[1], u)
            else:
                bias_ih, bias_hh = bias, np.zeros_like(bias)
            prefix = f"rnns.{index}."
            weights.update({prefix + "weight_ih_l0": kernel.T, prefix + "weight_hh_l0": recurrent.T,
                            prefix + "bias_ih_l0": bias_ih, prefix + "bias_hh_l0": bias_hh})
            index += 1
        elif isinstance(layer, layers.Dense):
            weights["head.weight"], weights["head.bias"] = w[0].T, w[1]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


def initial_weights(cfg: ExperimentConfig, data: Dataset) -> dict[str, np.ndarray]:
    """The initial weights the Keras baseline and gru-lab start from (seeded as they seed), in torch's layout."""
    import keras

    from gru_lab.models.build import build_model

    keras.utils.set_random_seed(cfg.train_seed)
    model = build_model(cfg.model.model_copy(update={"loops": "keras"}), data.spec)
    weights = keras_to_torch(model, cfg)
    keras.backend.clear_session()
    return weights


# ----------------------------------------------------------------------------- the parent's side


def run_in_process(cfg: ExperimentConfig, data: Dataset) -> dict[str, Any]:
    """Train the peer in a fresh process; returns {"out", "peak", "load", "torch"} (see _worker), or raises
    RuntimeError ending with the last line of the worker's stderr."""
    from gru_lab.bench.workers import worker_answer

    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
              if getattr(data, name) is not None}
    arrays.update({f"w:{k}": v for k, v in initial_weights(cfg, data).items()})
    job = {"config": cfg.model_dump(mode="json"), "task": data.task, "outputs": data.outputs,
           "threads": os.cpu_count()}
    return worker_answer("gru_lab.bench.torch_peer", job, "PyTorch peer", arrays)


# ----------------------------------------------------------------------------- the worker's side (torch)


def torch_model(cfg: ExperimentConfig, vocab_size: int | None, features: int, outputs: int):
    """Embedding (token inputs) + one torch.nn recurrent module per stacked layer + Linear, returning logits."""
    import torch
    from torch import nn

    m = cfg.model
    rnn_class = getattr(nn, TORCH_MODULES[m.cell])

    class TorchModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, m.embedding_dim) if vocab_size else None
            dims = [m.embedding_dim if vocab_size else features] + m.layer_units()
            self.rnns = nn.ModuleList(rnn_class(i, o, batch_first=True) for i, o in zip(dims, dims[1:]))
            self.dropout = nn.Dropout(m.head_dropout) if m.head_dropout > 0 else None
            self.head = nn.Linear(dims[-1], outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.embedding is not None:
                x = self.embedding(x)
            for rnn in self.rnns:
                x, _ = rnn(x)
            x = x[:, -1]
            if self.dropout is not None:
                x = self.dropout(x)
            return self.head(x)

    return TorchModel()


def _optimizer(cfg: ExperimentConfig, params):
    import torch

    t = cfg.train
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.learning_rate, betas=(0.9, 0.999), eps=1e-7)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.learning_rate, alpha=0.9, eps=1e-7)
    return torch.optim.SGD(params, lr=t.learning_rate)


def _loss_and_score(task: str):
    """(loss on logits, number of correct predictions): binary -> one logit, multiclass -> one per class."""
    import torch
    from torch import nn

    if task == "binary":
        bce = nn.BCEWithLogitsLoss(reduction="sum")
        return (lambda logits, y: bce(logits.squeeze(-1), y)), \
            (lambda logits, y: ((logits.squeeze(-1) > 0).float() == y).sum().item())
    ce = nn.CrossEntropyLoss(reduction="sum")
    return ce, (lambda logits, y: (torch.argmax(logits, -1) == y).sum().item())


def _evaluate(model, x, y, batch: int, loss_fn, score) -> dict[str, float]:
    import torch

    model.eval()
    total = correct = 0.0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            total += loss_fn(logits, y[i:i + batch]).item()
            correct += score(logits, y[i:i + batch])
    return {"loss": total / len(x), "accuracy": correct / len(x)}


def train_peer(cfg: ExperimentConfig, task: str, outputs: int, arrays: dict[str, np.ndarray],
               threads: int) -> dict[str, Any]:
    """Train, validate every epoch, evaluate and time predict; returns what the bench's rows need (as run_baseline)."""
    import torch

    from gru_lab.training.fit import eval_batch
    from gru_lab.training.pipeline import split_validation

    if not os.environ.get("OMP_NUM_THREADS"):  # set, it chooses torch's threads, as it does in any torch script
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train_seed)
    t = cfg.train
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_val, y_val = arrays.get("x_val"), arrays.get("y_val")
    if x_val is None and t.validation_split > 0:
        x_train, y_train, x_val, y_val = split_validation(x_train, y_train, t.validation_split)
    tokens = x_train.dtype.kind in "iu"
    as_x = (lambda a: torch.from_numpy(a.astype(np.int64))) if tokens else (lambda a: torch.from_numpy(a))
    as_y = (lambda a: torch.from_numpy(a.astype(np.float32))) if task == "binary" else \
        (lambda a: torch.from_numpy(a.astype(np.int64)))
    features = 1 if tokens else x_train.shape[-1]
    model = torch_model(cfg, arrays["w:embedding.weight"].shape[0] if tokens else None, features, outputs)
    model.load_state_dict({k.removeprefix("w:"): torch.from_numpy(v) for k, v in arrays.items() if k.startswith("w:")})
    optimizer = _optimizer(cfg, model.parameters())
    loss_fn, score = _loss_and_score(task)
    xf, yf = as_x(x_train), as_y(y_train)
    xv, yv = (as_x(x_val), as_y(y_val)) if x_val is not None else (None, None)
    generator = torch.Generator().manual_seed(cfg.train_seed)
    history = []
    for epoch in range(1, t.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = correct = 0.0
        for idx in torch.randperm(len(xf), generator=generator).split(t.batch_size):
            optimizer.zero_grad(set_to_none=True)
            logits = model(xf[idx])
            loss = loss_fn(logits, yf[idx])
            (loss / len(idx)).backward()
            if t.clipnorm is not None:  # Keras's clipnorm clips each variable's gradient on its own
                for p in model.parameters():
                    torch.nn.utils.clip_grad_norm_([p], t.clipnorm)
            optimizer.step()
            total += loss.item()
            correct += score(logits.detach(), yf[idx])
        train_end = time.perf_counter()
        row = {"epoch": epoch, "train_seconds": train_end - t0, "loss": total / len(xf), "accuracy": correct / len(xf)}
        if xv is not None:
            row.update({f"val_{k}": v for k, v in _evaluate(model, xv, yv, t.batch_size, loss_fn, score).items()})
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
    batch = eval_batch(t)  # gru-lab's evaluate/predict batch without its compiled loops: max(batch_size, 1024)
    xt, yt = as_x(arrays["x_test"]), as_y(arrays["y_test"])
    t0 = time.perf_counter()
    test = _evaluate(model, xt, yt, batch, loss_fn, score)
    eval_seconds = time.perf_counter() - t0
    model.eval()
    with torch.inference_mode():
        model(xt[:batch])  # warm-up, as the other variants trace their predict step first
        t0 = time.perf_counter()
        for i in range(0, len(xt), batch):
            model(xt[i:i + batch])
        predict_seconds = time.perf_counter() - t0
    return {"history": history, "n_fit": len(xf), "test": test, "eval_seconds": eval_seconds,
            "inference_samples_per_second": len(xt) / predict_seconds,
            "kernel": f"torch.nn.{TORCH_MODULES[cfg.model.cell]}", "eval_batch": batch}


def _worker(job_path: str, answer_path: str) -> None:
    import torch

    from gru_lab.bench.workers import load_average

    job = json.loads(Path(job_path).read_text())
    cfg = config_from_raw(job["config"], "bench torch worker")
    with np.load(job["arrays"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    before = load_average()
    out = train_peer(cfg, job["task"], job["outputs"], arrays, job["threads"])
    answer = {"out": out, "peak": peak_rss_mib(), "load": [before, load_average()],
              "torch": {"version": torch.__version__, "threads": torch.get_num_threads(),
                        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default"}}
    Path(answer_path).write_text(json.dumps(answer))


if __name__ == "__main__":  # python -m gru_lab.bench.torch_peer JOB.json ANSWER.json
    import sys

    _worker(sys.argv[1], sys.argv[2])
