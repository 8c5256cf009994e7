"""The recurrent cells: names, aliases, labels, Keras classes, gates and exact parameter formulas.

Every other module asks here; nothing imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str  # the config value (model.cell)
    label: str  # how tables and plots name it
    keras_class: str  # keras.layers.<keras_class>
    gates: int  # weight blocks side by side in the kernels, in Keras's gate order
    biases: int  # bias vectors a gate keeps: GRU with reset_after (Keras's default) keeps an input and a recurrent one

    def params(self, input_dim: int, units: int) -> int:
        """Weights of one layer (one direction) with d inputs and u units: gates * u * (d + u + biases).

        SimpleRNN: u(d+u)+u. LSTM: 4u(d+u+1). GRU (reset_after=True, the cuDNN-compatible form): 3u(d+u+2)."""
        return self.gates * units * (input_dim + units + self.biases)

    def formula(self, d: int, u: int) -> str:
        if self.gates == 1 and self.biases == 1:
            return f"u(d+u)+u = {u}*({d}+{u})+{u}"
        return f"{self.gates}u(d+u+{self.biases}) = {self.gates}*{u}*({d}+{u}+{self.biases})"


# In the order comparisons show them: the simplest first.
CELLS = {
    "simple_rnn": Cell("simple_rnn", "SimpleRNN", "SimpleRNN", gates=1, biases=1),
    "lstm": Cell("lstm", "LSTM", "LSTM", gates=4, biases=1),
    "gru": Cell("gru", "GRU", "GRU", gates=3, biases=2),
}
NAMES = tuple(CELLS)
ALIASES = {"rnn": "simple_rnn", "simplernn": "simple_rnn", "simple-rnn": "simple_rnn"}


def canonical(name: str) -> str:
    """'RNN' -> 'simple_rnn'; an unknown name is returned lower-cased, for the caller to refuse."""
    name = name.strip().lower()
    return ALIASES.get(name, name)


def resolve(names: list[str] | tuple[str, ...]) -> list[str]:
    """Canonical cell names in the order given; raises ValueError naming the first unknown or repeated one."""
    cells: list[str] = []
    for name in names:
        cell = canonical(name)
        if cell not in CELLS:
            raise ValueError(f"unknown cell {name!r}: cells must be among {sorted(CELLS)} "
                             f"or the aliases {sorted(ALIASES)} (= simple_rnn).")
        if cell in cells:
            raise ValueError(f"cell {name!r} is given twice (it is {cell}); name each cell once.")
        cells.append(cell)
    return cells


def label(name: str) -> str:
    """The display label of a cell name (unknown names as they are)."""
    cell = CELLS.get(name)
    return cell.label if cell else name



def describe(cell: str, units, num_layers: int = 1, bidirectional: bool = False, pooling: str = "last") -> str:
    """A model as tables name it, telling apart what shares a cell and units: "GRU(32)", "BiGRU(32)",
    "2-layer GRU(32)", "2-layer GRU(50,1)", "BiGRU(64), max_mean-pooled"."""
    sizes = [int(u) for u in units] if isinstance(units, (list, tuple)) else [int(units)] * max(1, int(num_layers or 1))
    text = f"{'Bi' if bidirectional else ''}{label(cell)}"
    text += f"({sizes[0]})" if len(set(sizes)) == 1 else f"({','.join(str(u) for u in sizes)})"
    if len(sizes) > 1:
        text = f"{len(sizes)}-layer {text}"
    return text if pooling in (None, "last") else f"{text}, {pooling}-pooled"
