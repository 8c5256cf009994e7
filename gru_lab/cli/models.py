"""gru-lab inspect: the model a config builds, its exact parameter formulas, the kernel each recurrent layer will
run here and why, and its memory estimate; nothing is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_lab.cli.common import SetOption, load, out, user_errors


@user_errors
def inspect(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML (omitted: the embedded default).")] = None,
    set_: SetOption = None,
    build: Annotated[bool, typer.Option(
        "--build/--no-build", help="Also build the Keras model and print its summary.")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the layer and kernel plans as JSON, nothing else.")] = False,
) -> None:
    """Show the model a config builds: layers, exact parameter formulas, and the kernel each recurrent layer
    will run here, and why. Trains nothing."""
    cfg = load(config, set_)
    from gru_lab.data import spec_for
    from gru_lab.models.kernels import cudnn_blockers, plan_kernels
    from gru_lab.models.memory import estimate, human_bytes
    from gru_lab.models.plan import plan_layers
    from gru_lab.training.device import machine_facts
    from gru_lab.training.memory import available_memory

    spec = spec_for(cfg.data)
    plans = plan_layers(cfg.model, spec)
    kernel_plan = plan_kernels(cfg, spec, machine_facts())
    memory, available = estimate(cfg, spec), available_memory()
    if as_json:
        import json

        layers = [{"name": p.name, "kind": p.kind, "params": p.params, "formula": p.formula} for p in plans]
        out.print_json(json.dumps({"layers": layers, "cudnn_blockers": cudnn_blockers(cfg.model, spec),
                                   "kernels": kernel_plan.record(),
                                   "memory": {"estimate_bytes": memory.record(),
                                              "available_bytes": available[0] if available else None,
                                              "available_from": available[1] if available else None}}))
        return
    from gru_lab.report.console import kernels_table, layers_table, memory_table

    out.print(layers_table(plans, cudnn_blockers(cfg.model, spec)))
    out.print(kernels_table(kernel_plan))
    for note in kernel_plan.notes:
        out.print(f"- {note}", markup=False, highlight=False, soft_wrap=True)
    from gru_lab.rnn import compiled

    if kernel_plan.compiled and compiled.pending_build():  # only where they can be built (else a note says why)
        out.print("- the compiled loops are not built yet: the first run builds them, once (about a minute)")
    out.print(memory_table(memory, available))
    room = available[0] if available else 8 * 2**30
    if build and 2 * memory.parts["weights"] > room:  # building allocates the weights (Keras's summary: once more)
        build = False
        out.print("- not building the Keras model: its weights alone would take "
                  f"{human_bytes(memory.parts['weights'])}", markup=False, highlight=False)
    if build:
        from gru_lab.models.build import build_model

        model = build_model(cfg.model, spec)
        model.summary(print_fn=lambda line, **_: out.print(line, markup=False, highlight=False))
        keras_total = model.count_params()
        formula_total = sum(p.params for p in plans)
        if keras_total != formula_total:  # a bug, not a user error: the formulas must match Keras
            raise RuntimeError(f"Keras counts {keras_total} parameters, the formulas {formula_total}")
