"""Equal parameter budgets: the units that give each cell (about) the same recurrent parameter count, from
the exact formulas."""

from __future__ import annotations

from typing import Any

from gru_lab import cells as cell_names
from gru_lab.config import ExperimentConfig, ModelConfig
from gru_lab.errors import CompareError


def recurrent_count(model: ModelConfig, spec, cell: str, units: int | list[int] | None = None) -> int:
    """Recurrent parameters of `model` with another cell (and units), from the exact formulas."""
    from gru_lab.models.plan import count_params

    update: dict[str, Any] = {"cell": cell}
    if units is not None:
        update.update(units=units, num_layers=len(units) if isinstance(units, list) else len(model.layer_units()))
    return count_params(model.model_copy(update=update), spec)["recurrent"]


def solve_units(model: ModelConfig, spec, cell: str, budget: int) -> int:
    """The integer units (the same in every layer) whose recurrent count is closest to budget.

    The count grows strictly with units (every formula is a quadratic with positive coefficients, also
    stacked and bidirectional), so a bisection for the first count >= budget and a look at its
    neighbour below finds the exact minimiser of |count - budget|; ties go to the smaller model.
    """
    def count(u: int) -> int:
        return recurrent_count(model, spec, cell, u)

    lo, hi = 1, 1
    while count(hi) < budget:
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid + 1
    if lo > 1 and budget - count(lo - 1) <= count(lo) - budget:
        return lo - 1
    return lo


def equal_budget_units(base: ExperimentConfig, cells: list[str],
                       budget: int | None) -> tuple[int, dict[str, int], list[str]]:
    """(budget, units per cell, notes). Default budget: the base config's GRU recurrent count."""
    from gru_lab.data import spec_for

    layer_units = base.model.layer_units()
    if len(set(layer_units)) > 1:
        raise CompareError(f"--equal-params sets one units value for every layer; model.units is {layer_units}. "
                           "Give a single model.units (and model.num_layers) instead of a list.")
    spec = spec_for(base.data)
    notes = []
    if budget is None:
        budget = recurrent_count(base.model, spec, "gru")
        notes.append(f"budget {budget:,} recurrent parameters = the base config's GRU with units {layer_units[0]}")
    units = {cell: solve_units(base.model, spec, cell, budget) for cell in cells}
    counts = {cell: recurrent_count(base.model, spec, cell, u) for cell, u in units.items()}
    for cell, u in units.items():
        notes.append(f"{cell_names.label(cell)}: units {u} -> {counts[cell]:,} recurrent parameters "
                     f"({100 * (counts[cell] - budget) / budget:+.2f}% of the budget)")
    spread = max(counts.values()) / min(counts.values()) - 1
    if spread > 0.02:
        # One more unit adds about 2/u of an LSTM's count: small models cannot get closer.
        notes.append(f"at this budget integer units cannot land within 2% of each other (spread {100 * spread:.1f}%); "
                     "a larger --budget can.")
    return budget, units, notes
