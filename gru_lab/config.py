"""The experiment schema, YAML loading, --set overrides and the one-line error messages.

Importing this module must stay cheap: no TensorFlow here.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gru_lab.errors import ConfigError

CELL_ALIASES = {"rnn": "simple_rnn", "simplernn": "simple_rnn", "simple-rnn": "simple_rnn"}
CELLS = ("gru", "lstm", "simple_rnn")


class _Section(BaseModel):
    # Unknown keys are errors: a typo must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


# ----------------------------------------------------------------------------- data


class ArithmeticData(_Section):
    """Seed 003 generalised: windows of arithmetic progressions, predict the next term."""

    input_kind: ClassVar[str] = "real"
    name: Literal["arithmetic"]
    window: int = Field(3, ge=1, le=10_000)  # terms the model sees; the seed uses 3
    n_train: int = Field(1000, ge=1)  # random progressions to train on (ignored when starts/steps are given)
    n_val: int = Field(200, ge=0)  # held-out progressions for per-epoch validation; 0 = none
    n_test: int = Field(200, ge=1)  # held-out progressions for the final test metrics
    start_range: tuple[float, float] = (0.0, 10.0)  # first term drawn uniformly from this range
    step_range: tuple[float, float] = (-2.0, 2.0)  # common difference drawn uniformly from this range
    starts: list[float] | None = None  # exact first terms for the train set (grid with steps), as in seed 003
    steps: list[float] | None = None  # exact common differences for the train set (grid with starts)
    evaluate_on: Literal["test", "train"] = "test"  # "train" reports test metrics on the train set, as seed 003 does


class SineData(_Section):
    """Noisy sine waves: predict the next value from a window of past values."""

    input_kind: ClassVar[str] = "real"
    name: Literal["sine"]
    window: int = Field(40, ge=2, le=100_000)  # past values the model sees
    n_train: int = Field(1000, ge=1)  # training windows
    n_val: int = Field(200, ge=0)  # validation windows; 0 = none
    n_test: int = Field(200, ge=1)  # test windows
    noise: float = Field(0.05, ge=0.0)  # std of Gaussian noise on the inputs (targets stay clean)
    period_range: tuple[float, float] = (10.0, 40.0)  # period in steps, drawn per window


class AddingData(_Section):
    """The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a long sequence."""

    input_kind: ClassVar[str] = "real"
    name: Literal["adding"]
    length: int = Field(50, ge=2, le=100_000)  # T: sequence length; long T is where SimpleRNN fails
    n_train: int = Field(2000, ge=1)  # training sequences
    n_val: int = Field(400, ge=0)  # validation sequences; 0 = none
    n_test: int = Field(400, ge=1)  # test sequences


class ImdbData(_Section):
    """IMDB movie-review sentiment, with keras.datasets.imdb's index conventions."""

    input_kind: ClassVar[str] = "tokens"
    name: Literal["imdb"]
    path: str | None = None  # aclImdb folder or .tar.gz; None = $GRU_LAB_IMDB, else Keras's download
    num_words: int = Field(10_000, ge=4)  # vocabulary size; rarer words become 2 (out-of-vocabulary)
    maxlen: int = Field(200, ge=1)  # reviews are truncated/padded to this many tokens (none dropped)
    padding: Literal["pre", "post"] = "pre"  # where the 0s go; post keeps cuDNN usable with masks
    truncating: Literal["pre", "post"] = "pre"  # which end of a long review is cut
    as_real: bool = False  # feed raw word ids as one real-valued feature (seed 001), no embedding
    n_train: int | None = Field(None, ge=2)  # use a stratified slice of the 25k train reviews (tests)
    n_test: int | None = Field(None, ge=2)  # use a stratified slice of the 25k test reviews (tests)
    cache_dir: str | None = None  # folder for the encoded-array cache; None = $XDG_CACHE_HOME or ~/.cache, /gru-lab/imdb


DataConfig = Annotated[Union[ArithmeticData, SineData, AddingData, ImdbData], Field(discriminator="name")]
DATA_SECTIONS = {cls.model_fields["name"].annotation.__args__[0]: cls for cls in (ArithmeticData, SineData, AddingData, ImdbData)}

# ----------------------------------------------------------------------------- model


class ConvConfig(_Section):
    filters: int = Field(64, ge=1)  # Conv1D output channels
    kernel_size: int = Field(5, ge=1)  # time steps each filter spans
    pool_size: int = Field(2, ge=1)  # MaxPooling1D after the conv; 1 = no pooling (shortens sequences by this factor)


class ModelConfig(_Section):
    cell: Literal["gru", "lstm", "simple_rnn"] = "gru"  # recurrent cell; "rnn" is an alias of simple_rnn
    units: int | list[int] = 64  # hidden size; a list gives one size per stacked layer
    num_layers: int = Field(1, ge=1, le=16)  # stacked layers; all but the last return sequences
    bidirectional: bool = False  # read the sequence both ways (doubles recurrent parameters)
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"  # how the two directions are joined
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # input dropout inside each recurrent layer
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # state dropout; >0 disables cuDNN
    activation: str = "tanh"  # cell activation; seed 003 uses relu (disables cuDNN)
    recurrent_activation: str | None = None  # gate activation (gru/lstm only); None = sigmoid
    layer_norm: bool = False  # LayerNormalization after each recurrent layer
    conv: ConvConfig | None = None  # optional Conv1D + MaxPooling1D front end (seed 002's CNN+GRU)
    embedding_dim: int | None = Field(None, ge=1)  # token inputs only: Embedding output size
    mask_zero: bool = False  # token inputs only: treat id 0 as padding and mask it
    unroll: bool = False  # unroll the time loop (short sequences only; disables cuDNN)
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # Dropout before the output Dense
    head: Literal["dense", "none"] = "dense"  # "none": the last recurrent layer is the output (seed 001's GRU(1))
    fast_path: Literal["auto", "off"] = "auto"  # auto: gru-lab's fused CPU loop for GRU/LSTM/SimpleRNN where it applies (same weights and outputs as Keras's; `inspect` says where); off: Keras's own layers

    @field_validator("cell", mode="before")
    @classmethod
    def _cell_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return CELL_ALIASES.get(value.lower(), value.lower())
        return value

    @field_validator("fast_path", mode="before")
    @classmethod
    def _fast_path_yaml_bool(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false (and `on` as true); take them as the words the user typed.
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _layers_from_units_list(self) -> "ModelConfig":
        # units: [50, 1] means two layers; keep num_layers in step so the resolved config says so too.
        if isinstance(self.units, list) and "num_layers" not in self.model_fields_set and self.units:
            self.num_layers = len(self.units)
        return self

    def layer_units(self) -> list[int]:
        """Units of each stacked recurrent layer."""
        if isinstance(self.units, list):
            return list(self.units)
        return [self.units] * self.num_layers


# ----------------------------------------------------------------------------- train


class EarlyStoppingConfig(_Section):
    patience: int = Field(3, ge=1)  # epochs without improvement before stopping
    monitor: str = "val_loss"  # a logged metric; val_* needs validation data
    min_delta: float = Field(0.0, ge=0.0)  # smaller changes than this do not count as improvement
    restore_best_weights: bool = True  # evaluate the best epoch's weights, not the last


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1, le=100_000)  # passes over the training set
    batch_size: int = Field(64, ge=1)  # samples per gradient step
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"  # the seeds all use adam
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)  # adam's default; tips 002 suggests tuning it
    clipnorm: float | None = Field(None, gt=0.0)  # gradient norm clipping; None = off
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of train held out by Keras (seed 000: 0.2)
    early_stopping: EarlyStoppingConfig | None = None  # None = train all epochs
    seed: int | None = Field(None, ge=0, le=2**32 - 1)  # weight init and shuffling only; None = the top-level seed
    eval_batch_size: int | None = Field(None, ge=1)  # batch for evaluate/predict; None = max(batch_size, 1024), or 256 with the compiled GRU loops (training.eval_batch): big batches are cheaper per sample and give the same predictions
    distribute: Literal["none", "mirrored"] = "none"  # "mirrored": one run on every local GPU (or logical CPU) via tf.distribute.MirroredStrategy
    device: Literal["auto", "cpu", "gpu"] = "auto"  # auto: a GPU when TensorFlow sees one, else the CPU; gpu fails when there is none
    xla: Literal["auto", "on", "off"] = "auto"  # XLA-compile the train/eval steps; auto: on for CPU (measured faster), off on GPU (cuDNN kernels cannot be compiled)
    mixed_precision: bool = False  # GPU only: float16 compute with float32 weights (Keras mixed_float16); ignored on CPU, where it is slower

    @field_validator("xla", mode="before")
    @classmethod
    def _xla_yaml_bool(cls, value: Any) -> Any:
        # YAML 1.1 reads bare `on`/`off` as true/false; take them as the words the user typed.
        return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


class OutputConfig(_Section):
    dir: str = "results"  # runs go to <dir>/<name>/<run-id>/
    save_model: bool = True  # write model.keras (needed by predict)


class SweepConfig(_Section):
    """`gru-lab sweep` settings; train and compare ignore this section. Command-line flags override each key."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # folder of the runs and the sweep table under output.dir; None = the top-level name
    grid: dict[str, list[Any]] = {}  # dotted key -> values; the sweep runs every combination (model.units: [32, 64])
    seeds: int = Field(1, ge=1, le=1000)  # runs per grid point, train seeds seed, seed+1, ...; 1 keeps big grids affordable, 2+ shows a spread
    workers: int | None = Field(None, ge=1, le=1024)  # local: runs at once, one process each (None = 1); ray: runs in flight (None = what the cluster fits)
    backend: Literal["local", "ray"] = "local"  # local worker processes, or one Ray task a run on a Ray cluster
    ray_address: str | None = None  # ray: "auto" = the cluster this machine belongs to, or "ray://host:10001"; None = start a local instance
    num_cpus: float = Field(1.0, gt=0)  # ray: CPUs each run reserves (also its TensorFlow thread count)
    num_gpus: float = Field(0.0, ge=0)  # ray: GPUs each run reserves; a fraction lets runs share a GPU


class ExperimentConfig(_Section):
    name: str = Field("experiment", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # folder name under output.dir
    seed: int = Field(0, ge=0, le=2**32 - 1)  # seeds data generation, weight init and shuffling (NumPy's range)
    data: DataConfig  # which dataset and its size
    model: ModelConfig = ModelConfig()  # the architecture
    train: TrainConfig = TrainConfig()  # optimisation
    output: OutputConfig = OutputConfig()  # where the run record goes
    sweep: SweepConfig | None = None  # grid-sweep settings for `gru-lab sweep`; not part of a run's own config

    @property
    def train_seed(self) -> int:
        return self.seed if self.train.seed is None else self.train.seed


# ----------------------------------------------------------------------------- loading


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
            return dotted, allowed, close[0] if close else ""
        if isinstance(value, dict):
            found = _find_unknown_key(root, path + (key,))
            if found:
                return found
    return None


def _at(raw: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(raw, dict) and part in raw:
            raw = raw[part]
        elif isinstance(raw, list) and isinstance(part, int) and part < len(raw):
            raw = raw[part]
        else:
            return None
    return raw


def _format_error(err: dict, raw: dict) -> tuple[str, str]:
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
        return key, f"'{key}' must be one of {options}. Got {got!r}."
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
        return key, f"'{key}' must start with a letter or digit and use letters, digits, '_', '.', '-' only. Got {got!r}."
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
        raise ConfigError(source, f"expected a mapping with sections name, seed, data, model, train, output. Got {got}.")
    unknown = _find_unknown_key(raw)
    if unknown:
        key, allowed, close = unknown
        hint = f" Did you mean '{key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close}'?" if close else ""
        raise ConfigError(where(key), f"unknown key '{key}'.{hint} Allowed here: {sorted(allowed)}.", key)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        key, sentence = _format_error(exc.errors()[0], raw)
        raise ConfigError(where(key), sentence, key) from None
    problem = check_combinations(cfg)
    if problem:
        key, sentence = problem
        raise ConfigError(where(key), sentence, key)
    return cfg


def check_combinations(cfg: ExperimentConfig) -> tuple[str, str] | None:
    """Cross-field rules no single field can check: (dotted key, sentence) for the first broken one."""
    m, d, t = cfg.model, cfg.data, cfg.train
    tokens = d.input_kind == "tokens" and not getattr(d, "as_real", False)
    if isinstance(m.units, list):
        if len(m.units) == 0:
            return "model.units", "'model.units' must be an integer or a non-empty list of integers. Got []."
        if any(u < 1 for u in m.units):
            return "model.units", f"'model.units' must all be >= 1. Got {m.units}."
        if "num_layers" in m.model_fields_set and m.num_layers != len(m.units):
            return "model.num_layers", (
                f"'model.num_layers' is {m.num_layers} but 'model.units' lists {len(m.units)} sizes; "
                "give one size per layer or drop num_layers.")
    elif m.units < 1:
        return "model.units", f"'model.units' must be >= 1. Got {m.units}."
    if tokens and m.embedding_dim is None:
        return "model.embedding_dim", (
            f"'model.embedding_dim' is required: data '{d.name}' gives token ids, which need an Embedding "
            "(or set data.as_real: true to feed raw ids as numbers).")
    if not tokens and m.embedding_dim is not None:
        return "model.embedding_dim", (
            f"'model.embedding_dim' cannot be used: data '{d.name}' is real-valued, not token ids. Remove it.")
    if m.mask_zero and not tokens:
        return "model.mask_zero", f"'model.mask_zero' needs token input with an Embedding; data '{d.name}' is real-valued."
    if m.mask_zero and m.conv is not None:
        return "model.mask_zero", "'model.mask_zero' cannot be combined with 'model.conv': Conv1D cannot carry a padding mask."
    if m.recurrent_activation is not None and m.cell == "simple_rnn":
        return "model.recurrent_activation", "'model.recurrent_activation' applies to gru/lstm gates; simple_rnn has none."
    if t.validation_split > 0 and getattr(d, "n_val", 0):
        return "train.validation_split", (
            f"'train.validation_split' is {t.validation_split} but data '{d.name}' already has a validation set "
            f"(data.n_val={d.n_val}); set one of them to 0.")
    has_val = t.validation_split > 0 or getattr(d, "n_val", 0) > 0
    if t.early_stopping is not None and t.early_stopping.monitor.startswith("val_") and not has_val:
        return "train.early_stopping.monitor", (
            f"'train.early_stopping.monitor' is {t.early_stopping.monitor!r} but there is no validation data; "
            "set train.validation_split or data.n_val, or monitor 'loss'.")
    if isinstance(d, ArithmeticData):
        if (d.starts is None) != (d.steps is None):
            key = "data.steps" if d.steps is None else "data.starts"
            return key, "'data.starts' and 'data.steps' go together: give both (a grid of progressions) or neither."
        for key, (lo, hi) in (("data.start_range", d.start_range), ("data.step_range", d.step_range)):
            if lo > hi:
                return key, f"'{key}' must be [low, high] with low <= high. Got {[lo, hi]}."
    if isinstance(d, SineData) and not 0 < d.period_range[0] <= d.period_range[1]:
        return "data.period_range", f"'data.period_range' must be [low, high] with 0 < low <= high. Got {list(d.period_range)}."
    if m.head == "none":
        outputs = _outputs(d)
        last = m.layer_units()[-1] * (2 if m.bidirectional and m.merge_mode == "concat" else 1)
        if last != outputs:
            return "model.head", (
                f"'model.head' is 'none', so the last recurrent layer is the output and needs {outputs} unit(s) "
                f"for data '{d.name}'; it has {last}. Set the last of model.units to {outputs} or use head: dense.")
        if m.head_dropout > 0:
            return "model.head_dropout", "'model.head_dropout' needs the Dense head; 'model.head' is 'none'."
    if m.conv is not None:
        steps_after = _timesteps(d) // m.conv.pool_size if _timesteps(d) else None
        if steps_after is not None and steps_after < 1:
            return "model.conv.pool_size", (
                f"'model.conv.pool_size' {m.conv.pool_size} leaves no time steps from {_timesteps(d)}; use a smaller pool.")
    return None


def _outputs(d: Any) -> int:
    from gru_lab.data import spec_for

    return spec_for(d).outputs


def _timesteps(d: Any) -> int | None:
    for attr in ("window", "length", "maxlen"):
        if hasattr(d, attr):
            return int(getattr(d, attr))
    return None


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a ConfigError with the line."""
    path = Path(path)
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
        return yaml.safe_load(text)
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
    for section, key, unset in (("train", "distribute", "none"), (None, "sweep", None), ("model", "fast_path", "auto"),
                                ("train", "device", "auto"), ("train", "xla", "auto"), ("train", "mixed_precision", False)):
        node = data if section is None else data[section]
        if node.get(key) == unset:
            node.pop(key)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


EMBEDDED_DEFAULT = Path(__file__).with_name("default.yaml")
