"""Property-based checks over the config space (issue 19): configs drawn across cells, directions, stacked layers,
masks (pre and post padding), maxlen shorter and longer than every text, batch sizes that do not divide the data,
input and recurrent dropout, pooling, layer norm and a Conv1D front end, on text, IMDB-layout, sine and adding data
of a few dozen rows. For each drawn config, end to end in this process:

- training finishes, and the model scores the test rows it was evaluated on: predict (whole padded rows, test-set
  order) gives the loss and accuracy/mse that evaluate (trimmed, length-sorted batches) recorded;
- the exported model (stock Keras layers, what model.keras holds) predicts what gru-lab's model predicts;
- a run stopped after epoch 1 and resumed equals the uninterrupted run exactly (every logged value, the test metrics);
- gru-lab's loops give Keras's epoch-1 loss (model.loops: keras, on the same batches) to a tight tolerance.

Both run in the slow tier: one derandomized example, and many more (also derandomized, so CI is repeatable).
An example trains five models (~8 s of CPU), too much for the default tier's 3 minutes; there, each invariant
keeps a cheaper test of its own: predict against evaluate's trimmed batches (tests/training/test_pipeline.py),
the stock copy (tests/inference/test_export.py), resume (tests/training/test_resume.py), the loops against
Keras (tests/rnn/test_compiled.py, tests/rnn/test_fused.py). GRU_LAB_PROPERTY_EXAMPLES=N runs N freshly drawn
examples (exploration). Every failure found here becomes a named regression test (listed in the issue note)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from gru_lab.config import config_from_raw
from gru_lab.errors import GruLabError

EXPLORE = int(os.environ.get("GRU_LAB_PROPERTY_EXAMPLES", "0"))
# No shrinking: every example trains several models, and a failure's drawn config is printed whole anyway.
COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=not EXPLORE,
              phases=[Phase.explicit, Phase.generate])
DEFAULT_TIER = settings(max_examples=EXPLORE or 1, **COMMON)  # one example, ~8 s of CPU (slow tier since 2026-12-02)
SLOW_TIER = settings(max_examples=EXPLORE or 30, **COMMON)

WORDS = {"pos": "good great fine lovely nice".split(), "neg": "bad awful poor sad dull".split(),
         "neu": "table chair lamp door wall".split()}
FILLER = "the a it is was this very so".split()


def _texts(rng, rows: int, classes: list[str]) -> list[tuple[str, str]]:
    out = []
    for i in range(rows):
        label = classes[i % len(classes)]
        pool = WORDS[label] + FILLER
        out.append((" ".join(str(rng.choice(pool)) for _ in range(rng.integers(1, 13))), label))
    return out


def _write_data(kind: str, folder: Path, seed: int, rows: int, classes: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = ["neg", "pos", "neu"][:classes]
    if kind == "text":
        lines = ["text\tlabel"] + [f"{t}\t{c}" for t, c in _texts(rng, rows, labels)]
        (folder / "texts.tsv").write_text("\n".join(lines) + "\n")
        return {"name": "text", "path": str(folder / "texts.tsv"), "test_fraction": 0.25, "val_fraction": 0.2}
    if kind == "imdb":  # the aclImdb layout, binary
        for split, n in (("train", rows), ("test", max(8, rows // 3))):
            for i, (text, label) in enumerate(_texts(rng, n, ["neg", "pos"])):
                path = folder / "aclImdb" / split / label / f"{i}_{7 if label == 'pos' else 2}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        return {"name": "imdb", "path": str(folder / "aclImdb"), "cache_dir": str(folder / "cache")}
    if kind == "sine":
        return {"name": "sine", "window": int(rng.integers(3, 12)), "n_train": rows, "n_val": 8, "n_test": 9}
    return {"name": "adding", "length": int(rng.integers(3, 12)), "n_train": rows, "n_val": 8, "n_test": 9}


@st.composite
def experiments(draw) -> dict:
    """A raw config (with a data spec to write): what a user might try on a small file of their own."""
    kind = draw(st.sampled_from(["text", "imdb", "sine", "adding"]))
    tokens = kind in ("text", "imdb")
    layers = draw(st.integers(1, 2))
    model = {
        "cell": draw(st.sampled_from(["gru", "lstm", "simple_rnn"])),
        "units": draw(st.lists(st.integers(2, 6), min_size=layers, max_size=layers)),
        "bidirectional": draw(st.booleans()),
        "dropout": draw(st.sampled_from([0.0, 0.0, 0.3])),
        "recurrent_dropout": draw(st.sampled_from([0.0, 0.0, 0.0, 0.3])),
        "pooling": draw(st.sampled_from(["last", "last", "max", "mean", "max_mean"])),
        "layer_norm": draw(st.booleans()),
    }
    if draw(st.integers(0, 4)) == 0:
        model["conv"] = {"filters": draw(st.integers(2, 5)), "kernel_size": draw(st.integers(1, 3)), "pool_size": 1}
    data_spec = {"kind": kind, "seed": draw(st.integers(0, 10_000)), "rows": draw(st.integers(24, 48)),
                 "classes": draw(st.integers(2, 3)) if kind == "text" else 2}
    extra: dict = {}
    if tokens:
        model["embedding_dim"] = draw(st.integers(2, 6))
        model["mask_zero"] = draw(st.booleans())
        extra["maxlen"] = draw(st.sampled_from([4, 8, 30]))  # shorter than some texts (1-12 words), or than all
        if kind == "imdb":
            extra["padding"] = draw(st.sampled_from(["pre", "post"]))
            extra["num_words"] = 40
    train = {"epochs": 2, "batch_size": draw(st.integers(3, 17)), "learning_rate": 0.01}
    if kind == "imdb":
        train["validation_split"] = 0.25
    return {"data_spec": data_spec, "data_extra": extra, "model": model, "train": train,
            "seed": draw(st.integers(0, 1000))}


def _config(drawn: dict, folder: Path, **train):
    spec = drawn["data_spec"]
    data = {**_write_data(spec["kind"], folder, spec["seed"], spec["rows"], spec["classes"]), **drawn["data_extra"]}
    raw = {"name": "prop", "seed": drawn["seed"], "data": data, "model": dict(drawn["model"]),
           "train": {**drawn["train"], **train}, "output": {"dir": str(folder / "results")}}
    try:
        return config_from_raw(raw, "drawn")
    except GruLabError as exc:  # a combination the config rules refuse: not a config a user can run
        assume(False)
        raise AssertionError(exc) from None


def _stop_after_epoch_1(epoch, logs, seconds):
    if epoch == 1:
        raise KeyboardInterrupt


def _numpy_metrics(task: str, y, p) -> dict[str, float]:
    """The test metrics from predictions, as Keras computes them (clipped cross-entropy, 0.5 threshold)."""
    y, p = np.asarray(y, "float64"), np.asarray(p, "float64")
    eps = 1e-7
    if task == "regression":
        err = (p.reshape(len(y), -1) - y.reshape(len(y), -1)) ** 2
        return {"loss": float(err.mean()), "mse": float(err.mean())}
    if task == "binary":
        q = np.clip(p.ravel(), eps, 1 - eps)
        t = y.ravel()
        return {"loss": float(-(t * np.log(q) + (1 - t) * np.log(1 - q)).mean()),
                "accuracy": float(((q > 0.5) == (t > 0.5)).mean())}
    q = np.clip(p, eps, 1 - eps)
    q = q / q.sum(axis=1, keepdims=True)
    t = y.astype(int).ravel()
    return {"loss": float(-np.log(q[np.arange(len(t)), t]).mean()), "accuracy": float((p.argmax(1) == t).mean())}


def check_invariants(drawn: dict, folder: Path) -> None:
    from gru_lab.data import load_dataset
    from gru_lab.rnn.portable import stock_copy
    from gru_lab.training.fit import train

    cfg = _config(drawn, folder)
    data = load_dataset(cfg.data, cfg.seed)
    whole = train(cfg, data)
    assert whole.status == "finished", whole.metrics.get("error")
    assert len(whole.history) == 2

    # predict equals evaluate: whole padded rows in the test set's order against trimmed, length-sorted batches
    predicted = whole.model.predict(data.x_test, batch_size=7, verbose=0)
    ours = _numpy_metrics(data.task, data.y_test, predicted)
    for key, value in ours.items():
        assert whole.metrics["test"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key

    # the exported model (stock Keras layers) predicts what gru-lab's model predicts
    exported = stock_copy(whole.model).predict(data.x_test, batch_size=7, verbose=0)
    np.testing.assert_allclose(exported, predicted, rtol=1e-4, atol=1e-5)

    # stopped after epoch 1 and resumed: exactly the uninterrupted run
    workdir = folder / "run"
    stopped = train(cfg, data, epoch_hook=_stop_after_epoch_1, workdir=workdir)
    assert stopped.status == "interrupted" and len(stopped.history) == 1
    resumed = train(cfg, data, workdir=workdir)
    logged = [k for k in whole.history[0] if k not in ("epoch", "seconds", "train_seconds")]
    assert [[r[k] for k in logged] for r in resumed.history] == [[r[k] for k in logged] for r in whole.history]
    assert resumed.metrics["test"] == whole.metrics["test"]

    # gru-lab's loops give Keras's epoch-1 loss on the same batches (no bucketing, no XLA: the same order). Plain
    # SGD: Adam's first steps are about lr * sign(gradient), so a gradient element near 0 whose last bit differs
    # moves a weight by 2 * lr; SGD keeps rounding differences at rounding size (found by this test, issue 19).
    same = {"epochs": 1, "bucketing": "off", "xla": "off", "optimizer": "sgd", "learning_rate": 0.05}
    keras_cfg = _config({**drawn, "model": {**drawn["model"], "loops": "keras"}}, folder / "keras", **same)
    ours_cfg = _config(drawn, folder / "ours", **same)
    theirs = train(keras_cfg, load_dataset(keras_cfg.data, keras_cfg.seed)).history[0]["loss"]
    mine = train(ours_cfg, load_dataset(ours_cfg.data, ours_cfg.seed)).history[0]["loss"]
    assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def _fresh(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("drawn")
    for kind in ("keras", "ours"):
        (folder / kind).mkdir()
    return folder


@pytest.mark.slow
@DEFAULT_TIER
@given(drawn=experiments())
def test_drawn_configs_keep_the_labs_invariants(tmp_path_factory, drawn):
    check_invariants(drawn, _fresh(tmp_path_factory))


@pytest.mark.slow
@SLOW_TIER
@given(drawn=experiments())
def test_many_drawn_configs_keep_the_labs_invariants(tmp_path_factory, drawn):
    check_invariants(drawn, _fresh(tmp_path_factory))


def reproduce(drawn_yaml: str, folder: Path) -> None:
    """A regression test's body: the drawn config (as Hypothesis printed it, in YAML) through the same checks."""
    check_invariants(yaml.safe_load(drawn_yaml), folder)


# ----------------------------------------------------------------------------- what the drawn configs found

FOUND_STACKED_BILSTM = """
data_spec: {kind: text, seed: 545, rows: 38, classes: 3}
data_extra: {maxlen: 8}
model: {cell: lstm, units: [6, 6], bidirectional: true, dropout: 0.0, recurrent_dropout: 0.0, pooling: last,
        layer_norm: false, embedding_dim: 5, mask_zero: false}
train: {epochs: 2, batch_size: 13, learning_rate: 0.01}
seed: 593
"""


@pytest.mark.slow
def test_found_a_stacked_bilstm_whose_epoch_1_loss_under_adam_was_1e_4_from_keras(tmp_path):
    """Found by the drawn configs (2026-12-02): gradients equal to 1e-9, yet epoch-1 losses 1.10653 against
    1.10641 under Adam, whose first steps move each weight by about lr * sign(gradient): a near-zero gradient
    element that differs in its last bit moves a weight by 2 x lr. Not a fault of the loops; the invariant now
    compares them under SGD, and this config passes every check."""
    for kind in ("keras", "ours"):
        (tmp_path / kind).mkdir()
    reproduce(FOUND_STACKED_BILSTM, tmp_path)
