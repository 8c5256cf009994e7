"""The cells: parameter formulas, names and aliases."""

from __future__ import annotations

import pytest

from gru_lab import cells


def formula(cell: str, d: int, u: int) -> int:
    # Written out independently of gru_lab.cells, straight from the tutorials' formulas.
    return {"simple_rnn": u * (d + u) + u, "lstm": 4 * u * (d + u + 1), "gru": 3 * u * (d + u + 2)}[cell]


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("d,u", [(1, 1), (1, 50), (3, 7), (128, 128)])
def test_recurrent_params_formula(cell, d, u):
    assert cells.CELLS[cell].params(d, u) == formula(cell, d, u)
    text = cells.CELLS[cell].formula(d, u)
    assert eval(text.split(" = ")[1]) == formula(cell, d, u)  # the sum the formula text shows is the count


@pytest.mark.parametrize("given, expected", [
    (["rnn", "LSTM", "gru"], ["simple_rnn", "lstm", "gru"]),
    (["Simple-RNN"], ["simple_rnn"]),
    (["gru", "simplernn"], ["gru", "simple_rnn"]),
])
def test_resolve_takes_aliases_in_the_order_given(given, expected):
    assert cells.resolve(given) == expected


@pytest.mark.parametrize("given, message", [
    (["gru2"], "unknown cell 'gru2'"),
    (["rnn", "simple_rnn"], "is given twice (it is simple_rnn)"),
])
def test_resolve_refuses_unknown_and_repeated_cells(given, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cells.resolve(given)


def test_labels():
    assert [cells.label(c) for c in cells.NAMES] == ["SimpleRNN", "LSTM", "GRU"]
    assert cells.label("not-a-cell") == "not-a-cell"


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_keras_class_has_the_gates_and_count_of_the_cell(cell):
    import keras

    spec = cells.CELLS[cell]
    layer = getattr(keras.layers, spec.keras_class)(5)
    layer.build((None, 7, 3))
    assert layer.cell.kernel.shape == (3, spec.gates * 5)
    assert layer.count_params() == spec.params(3, 5)
