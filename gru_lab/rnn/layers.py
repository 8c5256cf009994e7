"""Keras's GRU, LSTM and SimpleRNN with gru-lab's loops inside: same arguments, weights, outputs and checkpoints.

Each class subclasses the Keras layer and replaces only its inner loop, where the rules of
gru_lab.rnn.support allow: the compiled loops (rnn.compiled) for the cells that have them inside a run
that turned them on, else the fused TensorFlow loops (rnn.fused); otherwise, and on a GPU (where Keras's
cuDNN kernel is faster), Keras's own loop. A layer fed directly by gru_lab's Embedding reads its input
projections from a token table (the compiled loops in training too). After each call a layer says which loop it ran
(`trained_with`, `inferred_with`), which the run record reports.

One difference from Keras: with a user-supplied non-zero initial state AND a masked first step, Keras
outputs zeros for that step and gru-lab's loops the initial state (gru-lab never passes an initial state).
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
from keras import layers

from gru_lab.rnn import compiled, fused, support

PACKAGE = "gru_lab"
TOKEN_IDS = "_gru_lab_token_ids"  # attribute gru_lab's Embedding puts on its output: (ids, embedding layer)

# What the current run allows: None outside a run (gru-lab's loops wherever TensorFlow sees no GPU, never the
# compiled ones), else {"loops": bool, "compiled": bool} as training.device set it from the kernel plan.
_RUN: dict[str, Any] = {"allowed": None}


@contextlib.contextmanager
def running(loops: bool, compiled_loops: bool):
    """Inside this block the layers run gru-lab's loops only if `loops`, and the compiled ones only if
    `compiled_loops` (and the library loads). The compiled ops have no XLA kernel: a run compiled with
    XLA passes compiled_loops=False."""
    previous = _RUN["allowed"]
    _RUN["allowed"] = {"loops": bool(loops), "compiled": bool(compiled_loops) and compiled.load() is not None}
    try:
        yield _RUN["allowed"]["compiled"]
    finally:
        _RUN["allowed"] = previous


def _allowed() -> dict[str, bool]:
    if _RUN["allowed"] is not None:
        return _RUN["allowed"]
    import tensorflow as tf

    return {"loops": not tf.config.list_logical_devices("GPU"), "compiled": False}


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", str(fn))


class _LoopsMixin:
    """The shared decision: gru-lab's compiled or fused loop, or Keras's own inner_loop."""

    _cell = ""
    trained_with: str | None = None  # the last training call's loop: "compiled", "fused", or None (Keras's)
    inferred_with: str | None = None  # the last inference call's: "compiled-table", "fused-table", "compiled" or None

    def _blockers(self) -> list[str]:
        """support.loop_blockers for this layer's own settings (and a non-TensorFlow backend)."""
        if keras.backend.backend() != "tensorflow":
            return ["Keras's backend is not TensorFlow"]
        c = self.cell
        return support.loop_blockers(
            self._cell, _name(c.activation), _name(getattr(c, "recurrent_activation", None)),
            getattr(c, "recurrent_dropout", 0), self.unroll, stateful=self.stateful, use_bias=c.use_bias,
            reset_after=getattr(c, "reset_after", True),
            input_dropout_per_gate=bool(c.dropout) and getattr(c, "implementation", 2) != 2)

    def _loops(self) -> bool:
        return _allowed()["loops"] and not self._blockers()

    def _compiled(self, sequences) -> bool:
        return (_allowed()["compiled"] and not support.compiled_blockers(self._cell)
                and getattr(sequences.dtype, "name", str(sequences.dtype)) == "float32")

    def _token_table(self, sequences, kernel: str | None):
        """(ids, embedding layer) when these inputs are a gru_lab Embedding's output and this loop reads a token
        table from them, else None: the compiled loops always (the batch's own table), the fused loops where
        the whole vocabulary's table pays (support.table_blockers).

        The attribute sits on the very tensor the Embedding returned, so any op between the two layers (a
        new tensor) drops it and the layer simply runs the ordinary way."""
        found = getattr(sequences, TOKEN_IDS, None) if kernel else None
        if found is None or kernel == "compiled":
            return found
        ids, embedding = found
        return None if support.table_blockers(embedding.input_dim, ids.shape[1]) else found

    def inner_loop(self, sequences, initial_state, mask, training=False):
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        args = dict(states=states, cell=self.cell, go_backwards=self.go_backwards,
                    return_sequences=self.return_sequences, mask=mask, zero_output_for_mask=self.zero_output_for_mask)
        kernel = None
        if self._loops():
            kernel = "compiled" if self._compiled(sequences) else "fused"
        table = self._token_table(sequences, kernel)
        if table is not None and (kernel == "compiled" or not training):
            # Straight from the token ids: each step's input projection is read from a token table, the same
            # values as projecting the embedded rows (each row's dot product is the same sum). The compiled
            # loops build the batch's own table (each distinct token projected once) in training too; the
            # fused loops the whole vocabulary's (E @ W_gate + b), forward only.
            ids, embedding = table
            setattr(self, "trained_with" if training else "inferred_with", f"{kernel}-table")
            extra = dict(training=bool(training), token_ids=ids, embeddings=embedding.embeddings)
            if kernel == "fused":
                return fused.run(self._cell, sequences, **args, **extra)
            if training and self.cell.dropout:
                # Keras's input dropout mask (below): one per batch row for all its steps, so a row's token
                # still has one projection; the table then holds each distinct (row, token) pair.
                extra["row_scale"] = self.cell.get_dropout_mask(sequences[:, 0, :])
            return compiled.run(self._cell, sequences, **args, **extra)
        if not training:
            self.inferred_with = "compiled" if kernel == "compiled" else None
            if kernel == "compiled":
                return compiled.run(self._cell, sequences, **args, training=False)
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        self.trained_with = kernel
        if kernel is None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        if self.cell.dropout:
            # Keras's cells (implementation 2) multiply every step's input by one mask drawn per call; the
            # cell caches it, so this is the very mask Keras's own loop would use.
            dropout_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * keras.ops.expand_dims(dropout_mask, 1)
        if kernel == "compiled":
            return compiled.run(self._cell, sequences, **args)
        return fused.run(self._cell, sequences, **args)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Embedding(layers.Embedding):
    """keras.layers.Embedding that marks its output with the token ids it came from.

    A recurrent layer of gru-lab's that receives this very tensor at inference can then look up each gate's
    projection of the vocabulary instead of multiplying the embedded sequence by its input kernel.
    Same arguments, weights and outputs as keras.layers.Embedding."""

    def call(self, inputs):
        outputs = super().call(inputs)
        if self.quantization_mode is None and not self.lora_enabled:
            try:
                setattr(outputs, TOKEN_IDS, (inputs, self))
            except AttributeError:  # a tensor type that takes no attributes: no table, same results
                pass
        return outputs


# The classes keep Keras's names on purpose: Keras's weight files (.weights.h5, and the weights inside
# model.keras) address each layer by its snake-cased class name, so a differently named class could not
# read a keras.layers.GRU checkpoint. Serialized configs tell them apart by package: "gru_lab>GRU".
@keras.saving.register_keras_serializable(package=PACKAGE)
class GRU(_LoopsMixin, layers.GRU):
    """keras.layers.GRU with gru-lab's loops (same arguments, weights and outputs)."""

    _cell = "gru"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTM(_LoopsMixin, layers.LSTM):
    """keras.layers.LSTM with gru-lab's loops (same arguments, weights and outputs)."""

    _cell = "lstm"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SimpleRNN(_LoopsMixin, layers.SimpleRNN):
    """keras.layers.SimpleRNN with gru-lab's loops (same arguments, weights and outputs)."""

    _cell = "simple_rnn"


CLASSES = {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}
