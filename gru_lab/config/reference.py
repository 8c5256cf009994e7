"""docs/configuration.md, generated from the schema: every section and key with its type, default, allowed
values and the one-line comment it carries in schema.py. `make docs` (python -m gru_lab.config.reference)
writes it; a test fails when the file is stale."""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
import typing

from pydantic import BaseModel

from gru_lab.config import schema

HEADER = """# Configuration reference

Generated from `gru_lab/config/schema.py` by `make docs`; do not edit by hand. Every key can also be set
on the command line with `--set section.key=value` (values are YAML). Unknown keys, wrong types, values out
of range and impossible combinations are refused before anything runs, with one line naming the file and
the key.
"""

# (heading, dotted prefix, class) in the order a config file is written
SECTIONS = [
    ("Top level", "", schema.ExperimentConfig),
    *[(f"`data` with `name: {name}`", "data.", cls) for name, cls in schema.DATA_SECTIONS.items()],
    ("`model`", "model.", schema.ModelConfig),
    ("`model.conv`", "model.conv.", schema.ConvConfig),
    ("`train`", "train.", schema.TrainConfig),
    ("`train.early_stopping`", "train.early_stopping.", schema.EarlyStoppingConfig),
    ("`output`", "output.", schema.OutputConfig),
    ("`sweep`", "sweep.", schema.SweepConfig),
    ("`baseline` (or the one word `baseline: none`)", "baseline.", schema.BaselineConfig),
    ("`tune`", "tune.", schema.TuneConfig),
]
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <=",
           "pattern": "matches"}


def field_comments(cls: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """{field: (annotation as written, the comment at the end of its line)} from the class's source."""
    source = inspect.getsource(cls)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    found = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in cls.model_fields:
            found[node.target.id] = (ast.unparse(node.annotation), comments.get(node.end_lineno, ""))
    return found


def _allowed(field) -> str:
    choices = _literal_choices(field.annotation)
    if choices:
        return ", ".join(f"`{c}`" for c in choices)
    bounds = []
    for meta in field.metadata:
        for attr, word in _BOUNDS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{word} {value}")
    return ", ".join(bounds)


def _literal_choices(annotation) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    for arg in typing.get_args(annotation):
        found = _literal_choices(arg)
        if found:
            return found
    return []


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    return "`null`" if value is None else f"`{value}`".replace("`True`", "`true`").replace("`False`", "`false`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    parts = [HEADER]
    for heading, prefix, cls in SECTIONS:
        doc = inspect.cleandoc(cls.__doc__ or "")
        parts += [f"## {heading}", ""]
        if doc and not doc.startswith(cls.__name__):
            parts += [doc, ""]
        parts += ["| key | type | default | allowed | what it does |", "|---|---|---|---|---|"]
        comments = field_comments(cls)
        for name, field in cls.model_fields.items():
            annotation, comment = comments[name]
            if _literal_choices(field.annotation):  # the choices are in "allowed"
                literal = annotation[annotation.index("Literal"):annotation.index("]") + 1]
                annotation = annotation.replace(literal, "str")
            parts.append(f"| `{prefix}{name}` | `{_cell(annotation)}` | {_cell(_default(field))} | "
                         f"{_cell(_allowed(field))} | {_cell(comment)} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
