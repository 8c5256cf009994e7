"""Loading a config: YAML, --set overrides, validation against the schema, and the one-line messages.

Every problem is a ConfigError naming the file (and the --set that caused it) and the dotted key.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gru_lab.config.rules import check_combinations
from gru_lab.config.schema import DATA_SECTIONS, ExperimentConfig
from gru_lab.errors import ConfigError

PRESETS = Path(__file__).resolve().parents[1] / "presets"
EMBEDDED_DEFAULT = PRESETS / "default.yaml"  # what `gru-lab train` runs with no config
# Keys renamed since runs were first recorded: a run folder's config.yaml keeps loading.
RENAMED = {("model", "fast_path"): ("loops", {"off": "keras", False: "keras", True: "auto"})}


def _section_class(path: tuple[str, ...], raw: dict) -> type[BaseModel] | None:
    """The schema class that holds the mapping at `path` in the raw config, if any."""
    cls: type[BaseModel] | None = ExperimentConfig
    node: Any = raw
    for part in path:
        if cls is None or not isinstance(node, dict):
            return None
        node = node.get(part)
        if cls is ExperimentConfig and part == "data":
            name = node.get("name") if isinstance(node, dict) else None
            cls = DATA_SECTIONS.get(name) if isinstance(name, str) else None
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        cls = _model_in(field.annotation)
    return cls


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _find_unknown_key(root: dict, path: tuple[str, ...] = ()) -> tuple[str, list[str], str] | None:
    """First key not in the schema: (dotted key, allowed keys, suggestion or "")."""
    cls = _section_class(path, root)
    node = _at(root, path)
    if cls is None or not isinstance(node, dict):
        return None
    allowed = list(cls.model_fields)
    for key, value in node.items():
        dotted = ".".join(path + (str(key),))
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            return dotted, allowed, ".".join(path + (close[0],)) if close else _key_elsewhere(root, str(key))
        if isinstance(value, dict):
            found = _find_unknown_key(root, path + (key,))
            if found:
                return found
    return None


def _schema_keys(root: dict) -> list[str]:
    """Every dotted key the schema allows for this raw config (of the data sections, its own only)."""
    data = root.get("data")
    data_cls = DATA_SECTIONS.get(data.get("name")) if isinstance(data, dict) else None
    keys: list[str] = []

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, field in cls.model_fields.items():
            keys.append(prefix + name)
            sub = data_cls if (cls is ExperimentConfig and name == "data") else _model_in(field.annotation)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")

    walk(ExperimentConfig, "")
    return keys


def _key_elsewhere(root: dict, key: str) -> str:
    """A key given in the wrong section, or without its section (`--set units=3`): the full key it most
    likely means ('model.units'), or "" when nothing is close."""
    leaf = key.rsplit(".", 1)[-1]
    keys = _schema_keys(root)
    exact = [k for k in keys if k.rsplit(".", 1)[-1] == leaf]
    if exact:
        return exact[0]
    leaves = {k.rsplit(".", 1)[-1]: k for k in reversed(keys)}
    close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.8)
    return leaves[close[0]] if close else ""


def _owners(key: str) -> str:
    """' It belongs to data 'series'.' for a data key of another dataset (horizon on text data), else ''."""
    section, _, name = key.partition(".")
    if section != "data" or "." in name:
        return ""
    owners = [f"'{n}'" for n, cls in DATA_SECTIONS.items() if name in cls.model_fields]
    return f" It belongs to data {', '.join(owners)}." if owners else ""


def resolve_paths(raw: Any, folder: Path) -> Any:
    """raw with every relative data path (the keys in each data section's path_keys) made absolute against
    folder, the config file's own: a config finds its data wherever the command runs. output.dir stays relative
    to the working directory (results go where the command runs, and a run folder's config.yaml trains again)."""
    data = raw.get("data") if isinstance(raw, dict) else None
    cls = DATA_SECTIONS.get(data.get("name")) if isinstance(data, dict) and isinstance(data.get("name"), str) else None
    if cls is None:
        return raw
    changed = {}
    for key in cls.path_keys:
        value = data.get(key)
        # "~/..." is left to the loader, which expands it: the config as written keeps its hash.
        if isinstance(value, str) and value and not value.startswith("~") and not Path(value).is_absolute():
            changed[key] = str((folder / value).resolve())
    return {**raw, "data": {**data, **changed}} if changed else raw


def _at(raw: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(raw, dict) and part in raw:
            raw = raw[part]
        elif isinstance(raw, list) and isinstance(part, int) and part < len(raw):
            raw = raw[part]
        else:
            return None
    return raw


def _format_error(err: dict) -> tuple[str, str]:
    """(dotted key, sentence) for one pydantic error, in the sklearn style."""
    loc = list(err["loc"])
    # The discriminated union inserts the dataset name into the location: data.imdb.maxlen -> data.maxlen.
    if len(loc) >= 2 and loc[0] == "data" and loc[1] in DATA_SECTIONS:
        del loc[1]
    # Union members (units: int | list[int]) add the member type to the location; drop those.
    loc = [p for p in loc if p not in ("int", "list[int]", "float", "str", "bool", "ConvConfig", "EarlyStoppingConfig")
           and not (isinstance(p, str) and p.startswith(("function-", "tuple[", "list[")))]
    key = ".".join(str(p) for p in loc) or "(top level)"
    got = err.get("input")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return key, f"'{key}' is required but missing."
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = sorted(o.strip().strip("'") for o in expected.replace(" or ", ",").split(","))
        close = difflib.get_close_matches(str(got), options, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return key, f"'{key}' must be one of {options}. Got {got!r}.{hint}"
    if kind == "union_tag_invalid":
        return f"{key}.name", f"'{key}.name' must be one of {sorted(DATA_SECTIONS)}. Got {ctx.get('tag')!r}."
    if kind == "union_tag_not_found":
        return f"{key}.name", f"'{key}.name' is required: one of {sorted(DATA_SECTIONS)}."
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return key, f"'{key}' must be {op} {bound}. Got {got!r}."
    if kind.startswith("int_"):
        return key, f"'{key}' must be an integer. Got {got!r}."
    if kind.startswith("float_"):
        return key, f"'{key}' must be a number. Got {got!r}."
    if kind.startswith("bool_"):
        return key, f"'{key}' must be true or false. Got {got!r}."
    if kind == "string_pattern_mismatch":
        return key, (f"'{key}' must start with a letter or digit and use letters, digits, '_', '.', '-' only. "
                     f"Got {got!r}.")
    if kind.startswith("string_"):
        return key, f"'{key}' must be a string. Got {got!r}."
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return key, f"'{key}' must be a mapping of keys. Got {got!r}."
    if kind in ("list_type", "tuple_type", "too_short", "too_long"):
        return key, f"'{key}' {err['msg'].lower()}. Got {got!r}."
    return key, f"'{key}': {err['msg']}. Got {got!r}."


def split_assignment(text: str) -> tuple[str, str]:
    """'model.units=64' -> ('model.units', '64') for --set and --grid; the caller checks that '=' is there.
    Raises ValueError when the key is not a dotted key."""
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"expected a dotted key such as model.units. Got {key!r}.")
    return key, value


def parse_override(text: str) -> tuple[str, Any]:
    """'model.units=64' -> ('model.units', 64). Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ValueError(f"expected KEY=VALUE (e.g. model.units=64). Got {text!r}.")
    key, value = split_assignment(text)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def apply_overrides(raw: dict, overrides: list[str], source: str) -> tuple[dict, dict[str, str]]:
    """A copy of raw with each --set applied; also {dotted key: the --set text} for error messages."""
    raw = copy.deepcopy(raw)
    origin: dict[str, str] = {}
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raise ConfigError(source, f"--set {text}: {exc}") from None
        set_key(raw, key, value, source, f"--set {text}")
        origin[key] = f"--set {text}"
    return raw, origin


def set_key(raw: dict, key: str, value: Any, source: str, what: str) -> None:
    """raw[a][b][c] = value for key 'a.b.c', creating missing sections; `what` names the setting in errors."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise ConfigError(source, f"{what}: '{prefix}' is not a section, so '{key}' cannot be set.", prefix)
        node = child
    node[parts[-1]] = value


def validate(raw: Any, source: str = "<config>", origin: dict[str, str] | None = None) -> ExperimentConfig:
    """Validate a raw mapping; any problem is a ConfigError naming source and the dotted key."""
    origin = origin or {}

    def where(key: str) -> str:
        for k, text in origin.items():
            if key == k or key.startswith(k + ".") or k.startswith(key + "."):
                return f"{source} ({text})"
        return source

    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(source, "expected a mapping with sections name, seed, data, model, train, output. "
                                  f"Got {got}.")
    raw = _renamed_keys(raw)
    unknown = _find_unknown_key(raw)
    if unknown:
        key, allowed, close = unknown
        hint = f" Did you mean '{close}'?" if close else ""
        raise ConfigError(where(key), f"unknown key '{key}'.{hint}{_owners(key)} Allowed here: {sorted(allowed)}.", key)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        key, sentence = _format_error(exc.errors()[0])
        raise ConfigError(where(key), sentence, key) from None
    problem = check_combinations(cfg)
    if problem:
        key, sentence = problem
        raise ConfigError(where(key), sentence, key)
    return cfg


EXTENDS = "extends"  # a config's base config(s): `extends: base.yaml` or a list, merged under the config


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, its relative data paths made absolute against its folder (resolve_paths), and its
    `extends:` bases merged under it (compose); a missing file or a syntax error is a ConfigError with the line."""
    return _compose(Path(path), ())


def _compose(path: Path, chain: tuple[Path, ...]) -> Any:
    """The config at path with its bases merged in: each base in the order listed (later wins), then the file
    itself on top, mappings merged key by key and anything else replaced. Each file's relative paths (its bases,
    its data paths) are relative to that file. A file without `extends` is returned as parsed, so its runs
    keep their ids."""
    raw = _parse_yaml(path)
    if not isinstance(raw, dict) or EXTENDS not in raw:
        return raw
    source = str(path)
    refs = raw[EXTENDS]
    refs = [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise ConfigError(source, f"'{EXTENDS}' must be a config path or a list of them (e.g. extends: base.yaml). "
                                  f"Got {raw[EXTENDS]!r}.", EXTENDS)
    here = path.resolve()
    merged: dict = {}
    for ref in refs:
        base = (here.parent / Path(ref).expanduser()).resolve()
        if base in chain + (here,):
            loop = (*(chain[chain.index(base):] if base in chain else ()), here, base)
            circle = " -> ".join(str(p) for p in loop)
            raise ConfigError(source, f"'{EXTENDS}' makes a circle: {circle}; a config cannot extend itself.",
                              EXTENDS)
        if not base.is_file():
            raise ConfigError(source, f"'{EXTENDS}': {ref}: config file not found (looked for {base}).", EXTENDS)
        parent = _compose(base, chain + (here,))
        if not isinstance(parent, dict):
            raise ConfigError(str(base), f"extended by {source}: expected a mapping of sections. "
                                         f"Got {'an empty file' if parent is None else type(parent).__name__}.")
        merged = deep_merge(merged, parent)
    own = {k: v for k, v in raw.items() if k != EXTENDS}
    data, inherited = own.get("data"), merged.get("data")
    if isinstance(data, dict) and "name" not in data and isinstance(inherited, dict) and "name" in inherited:
        # the file's own data paths are relative to it, even where its base names the dataset
        named = resolve_paths({"data": {**data, "name": inherited["name"]}}, here.parent)["data"]
        own["data"] = {k: v for k, v in named.items() if k != "name"}
    return deep_merge(merged, own)


def deep_merge(base: dict, top: dict) -> dict:
    """base with top merged in: a key in both whose values are both mappings is merged, else top's value wins."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_yaml(path: Path) -> Any:
    source = str(path)
    if not path.exists():
        raise ConfigError(source, "config file not found.")
    if path.is_dir():
        raise ConfigError(source, "is a directory; expected a YAML config file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read the file ({exc.__class__.__name__}: {exc}).") from None
    try:
        return resolve_paths(yaml.safe_load(text), path.resolve().parent)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}", f"YAML syntax error: {problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"YAML error: {exc}.") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, override and validate one experiment config."""
    raw = load_yaml(path)
    return config_from_raw(raw, str(path), overrides)


def config_from_raw(raw: Any, source: str, overrides: list[str] | None = None) -> ExperimentConfig:
    origin: dict[str, str] = {}
    if overrides:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return validate(raw, source)
        raw, origin = apply_overrides(raw, overrides, source)
    return validate(raw, source, origin)


def to_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config (every default filled in) as YAML that load_config accepts again."""
    data = cfg.model_dump(mode="json")
    # Keys added after runs were first recorded are written only when set, so a config that does not
    # use them keeps its hash, and its run ids (compare and sweep resume by them), across versions.
    for section, key, unset in (("train", "distribute", "none"), (None, "sweep", None), ("model", "loops", "auto"),
                                ("train", "device", "auto"), ("train", "xla", "auto"),
                                ("train", "mixed_precision", False), ("output", "tensorboard", False),
                                ("model", "pooling", "last"), (None, "baseline", {"kind": "auto", "period": None}),
                                ("train", "bucketing", "auto"), ("model", "embedding_dropout", 0.0),
                                ("model", "embedding_init", "random"), ("model", "embedding_trainable", True),
                                ("train", "lr_decay", 1.0), ("output", "mlflow", False),
                                ("output", "evaluation", True), (None, "tune", None), ("data", "transform", "none")):
        node = data if section is None else data[section]
        if node.get(key) == unset:
            node.pop(key)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _renamed_keys(raw: dict) -> dict:
    """raw with the keys in RENAMED given their current names (a copy only when something changed)."""
    for (section, old), (new, values) in RENAMED.items():
        node = raw.get(section)
        if isinstance(node, dict) and old in node and new not in node:
            raw = copy.deepcopy(raw)
            value = raw[section].pop(old)
            raw[section][new] = values.get(value, value) if isinstance(value, (str, bool)) else value
    return raw
