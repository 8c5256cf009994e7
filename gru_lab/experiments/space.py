"""A search space for `gru-lab tune`: dotted config keys -> integer or float ranges, or categorical choices.

Owns: reading a space from the config's `tune.space` section and from `--param KEY=SPEC`, and checking the
whole space against the base config before any trial (unknown keys get did-you-mean; a malformed spec or a
value the schema refuses is one line naming it). A spec is
  - a list: categorical choices, any YAML values (`model.cell: [rnn, lstm, gru]`, `model.units: [[64, 32], 48]`);
  - a mapping {low, high, log: false, step: null}: an integer range when low, high (and step) are integers,
    else a float range; log samples evenly in log space (low > 0);
  - on the command line, besides YAML (`[rnn,gru]`, `{low: 1, high: 4}`), the short form LOW..HIGH with
    optional `:log` and `:step=S`, e.g. 1e-4..1e-2:log or 16..128:step=16.
Sampling is Optuna's (experiments.tune); this module never imports it.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from gru_lab.config import ExperimentConfig, set_key, split_assignment, validate
from gru_lab.errors import ConfigError, TuneError

# Keys a search cannot vary, and why.
FIXED_KEYS = {
    "name": "every trial of a search goes to one folder; name the search with --name",
    "output": "every trial of a search goes to one folder",
    "sweep": "it holds the sweep's settings",
    "tune": "it holds the search's own settings",
    "train.seed": "--seeds sets it (seed, seed+1, ...); search the data seed with 'seed'",
    "baseline": "the classical baseline is fitted once per search; set it in the config",
}
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_SHORT = re.compile(r"^\s*(?P<low>[^.:\s][^:]*?)\s*\.\.\s*(?P<high>[^:]+?)\s*(?P<opts>(:[^:]+)*)$")


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key
    kind: str  # "int", "float" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    given: str = ""  # where it came from: "tune.space" or "--param ..." (error messages)

    def text(self) -> str:
        """The spec as a person reads it: 16..128 step 16, 0.0001..0.01 log, [rnn, gru]."""
        if self.kind == "categorical":
            return "[" + ", ".join(value_text(c) for c in self.choices) + "]"
        text = f"{value_text(self.low)}..{value_text(self.high)}"
        return text + (" log" if self.log else "") + (f" step {value_text(self.step)}" if self.step else "")

    def record(self) -> dict[str, Any]:
        """The spec as data (study attributes, tune.json); equal records mean the same space."""
        if self.kind == "categorical":
            return {"key": self.key, "kind": self.kind, "choices": list(self.choices)}
        return {"key": self.key, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}

    def grid(self) -> list[Any]:
        """Every value of this parameter, for the grid sampler: the choices, or a range's steps."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise TuneError(f"{self.given}: the grid sampler needs a finite set of values; give '{self.key}' a "
                            "step (e.g. 0.1..0.5:step=0.1) or a list of choices.")
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]


def value_text(value: Any) -> str:
    """A value as the user would type it: 32, gru, 0.001, [64, 32]."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-3 as a string; a range of learning rates means the number."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and re.fullmatch(r"[-+]?\d+", value.strip()) else number
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def parse_spec(key: str, spec: Any, given: str) -> Param:
    """One spec (YAML value or the short text form) -> Param; a malformed spec is a TuneError naming it."""
    if isinstance(spec, str):
        short = _SHORT.match(spec)
        if short:
            spec = {"low": short["low"], "high": short["high"]}
            for opt in filter(None, short["opts"].split(":")):
                name, _, value = opt.strip().partition("=")
                if name == "log" and not value:
                    spec["log"] = True
                elif name == "step" and value:
                    spec["step"] = value
                else:
                    raise TuneError(f"{given}: unknown option ':{opt.strip()}'; a range takes :log and :step=S "
                                    "(e.g. 1e-4..1e-2:log, 16..128:step=16).")
    if isinstance(spec, list):
        choices = [_number(v) for v in spec]
        if not choices:
            raise TuneError(f"{given}: no choices for '{key}'; list one or more values, e.g. [32, 64].")
        seen: set[str] = set()
        for choice in choices:
            if value_text(choice) in seen:
                raise TuneError(f"{given}: '{key}' lists {value_text(choice)} twice; give each choice once.")
            seen.add(value_text(choice))
        return Param(key, "categorical", choices=tuple(choices), given=given)
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= set(spec):
            raise TuneError(f"{given}: a range of '{key}' is {{low, high}} with optional log and step. "
                            f"Got {value_text(spec)}.")
        low, high, step = _number(spec["low"]), _number(spec["high"]), _number(spec.get("step"))
        log = spec.get("log", False)
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TuneError(f"{given}: '{key}' {name} must be a number. Got {value!r}.")
        if not isinstance(log, bool):
            raise TuneError(f"{given}: '{key}' log must be true or false. Got {log!r}.")
        if not low < high:
            raise TuneError(f"{given}: '{key}' needs low < high. Got {value_text(low)}..{value_text(high)}.")
        if log and low <= 0:
            raise TuneError(f"{given}: '{key}' is searched in log space, so low must be > 0. Got {value_text(low)}.")
        if step is not None and step <= 0:
            raise TuneError(f"{given}: '{key}' step must be > 0. Got {value_text(step)}.")
        if step is not None and log:
            raise TuneError(f"{given}: '{key}' takes log or step, not both (Optuna samples one or the other).")
        kind = "int" if all(isinstance(v, int) for v in (low, high, step) if v is not None) else "float"
        return Param(key, kind, float(low) if kind == "float" else low, float(high) if kind == "float" else high,
                     log, step, given=given)
    raise TuneError(f"{given}: cannot read the spec of '{key}': give a list of choices ([32, 64]), a range "
                    f"(16..128, 1e-4..1e-2:log) or {{low, high, log, step}}. Got {value_text(spec)}.")


def parse_param(text: str) -> Param:
    """'--param model.units=16..64:step=16' -> Param. Values in brackets or braces are YAML."""
    given = f"--param {text}"
    if "=" not in text:
        raise TuneError(f"{given}: expected KEY=SPEC (e.g. --param model.units=16..128 or "
                        "--param model.cell=[rnn,gru]).")
    try:
        key, value = split_assignment(text)
    except ValueError as exc:
        raise TuneError(f"{given}: {exc}") from None
    value = value.strip()
    if not value:
        raise TuneError(f"{given}: empty spec; give a range (16..128) or choices ([32,64]).")
    if value[0] in "[{":
        try:
            spec = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise TuneError(f"{given}: cannot read the spec as YAML ({problem}).") from None
    else:
        spec = value
    return parse_spec(key, spec, given)


def build_space(section: dict[str, Any], params: Iterable[str] | None, source: str) -> list[Param]:
    """The config's tune.space, then the --param options (a --param replaces the section's key)."""
    space = {key: parse_spec(key, spec, f"{source}: tune.space.{key}") for key, spec in section.items()}
    for text in params or []:
        param = parse_param(text)
        space[param.key] = param
    if not space:
        raise TuneError(f"{source}: nothing to search; give --param KEY=SPEC (e.g. --param model.units=16..128) "
                        "or a tune.space section.")
    return list(space.values())


def check_space(space: list[Param], raw: dict[str, Any], source: str) -> None:
    """Every key known to the schema and searchable, every choice and bound a value the schema takes for it.
    A value refused only by a rule that ties keys together (an impossible combination) passes: such points
    become invalid trials."""
    from gru_lab.config.loading import _schema_keys

    keys = _schema_keys(raw)
    for param in space:
        for fixed, why in FIXED_KEYS.items():
            if param.key == fixed or param.key.startswith(fixed + "."):
                raise TuneError(f"{param.given}: '{param.key}' cannot be searched: {why}.")
        if param.key not in keys:
            close = difflib.get_close_matches(param.key, keys, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise TuneError(f"{param.given}: unknown key '{param.key}'.{hint}")
        values = param.choices if param.kind == "categorical" else (param.low, param.high)
        for value in values:
            trial = copy.deepcopy(raw)
            set_key(trial, param.key, copy.deepcopy(value), source, param.given)
            try:
                validate(trial, source)
            except ConfigError as exc:
                try:
                    ExperimentConfig.model_validate(trial)
                except Exception:  # the schema itself refuses the value: the spec is wrong
                    raise TuneError(f"{param.given}: {value_text(value)} is not a value of '{param.key}': "
                                    f"{exc.message}") from None
