"""What gru-lab's loops support: the rules, stated once, on plain values.

The kernel plan (gru_lab.models.kernels) applies them to a config before anything is built; the layers
(gru_lab.rnn.layers) apply them to their own attributes when they are called. No TensorFlow here.
"""

from __future__ import annotations

# The fused loops' token table (the whole vocabulary) costs vocabulary x d x gates*u multiply-adds per inference
# call; projecting the batch costs batch x T x d x gates*u. The table is used where it pays from this batch size
# up. (The compiled loops' table holds only the batch's distinct tokens, so it always pays.)
TABLE_BREAK_EVEN_BATCH = 256
COMPILED_CELLS = ("gru", "lstm", "simple_rnn")  # cells with compiled (C++) loops; others run the fused TensorFlow loops


def loop_blockers(cell: str, activation: str, recurrent_activation: str, recurrent_dropout: float, unroll: bool,
                  stateful: bool = False, use_bias: bool = True, reset_after: bool = True,
                  input_dropout_per_gate: bool = False) -> list[str]:
    """Why a layer with these settings cannot run gru-lab's loops (exactly as Keras computes it); empty = it can."""
    reasons = []
    if activation != "tanh":
        reasons.append(f"activation is {activation!r}, gru-lab's loops need 'tanh'")
    if cell != "simple_rnn" and recurrent_activation != "sigmoid":
        reasons.append(f"recurrent_activation is {recurrent_activation!r}, gru-lab's loops need 'sigmoid'")
    if recurrent_dropout > 0:
        reasons.append("recurrent_dropout > 0")
    if unroll:
        reasons.append("unroll is true")
    if stateful:
        reasons.append("the layer is stateful")
    if not use_bias:
        reasons.append("the layer has no bias")
    if cell == "gru" and not reset_after:
        reasons.append("GRU with reset_after=False")
    if input_dropout_per_gate:
        reasons.append("input dropout with implementation=1 (one mask per gate)")
    return reasons


def compiled_blockers(cell: str) -> list[str]:
    """Why a cell has no compiled loop; empty = it has one (float32 on a CPU, with XLA off)."""
    return [] if cell in COMPILED_CELLS else [f"cell is {cell!r}; the compiled loops are {', '.join(COMPILED_CELLS)}'s"]


def table_blockers(vocabulary: int, steps: int | None) -> list[str]:
    """Why the fused loops' inference should not read the whole vocabulary's token table for this vocabulary and
    sequence length; empty = it should."""
    if steps is None:
        return ["the sequence length is not fixed"]
    if vocabulary > steps * TABLE_BREAK_EVEN_BATCH:
        return [f"vocabulary {vocabulary:,} > {TABLE_BREAK_EVEN_BATCH} x {steps} time steps: projecting each batch "
                "costs less"]
    return []
