"""The experiment schema: every section and key, its type, range and default, each with a one-line comment.

Cross-field rules are in rules.py; loading, --set overrides and messages in loading.py. No TensorFlow here.
docs/configuration.md is generated from these classes (python -m gru_lab.config.reference).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gru_lab import cells
from gru_lab.names import ACTIVATIONS


class _Section(BaseModel):
    # Unknown keys are errors: a typo must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=False)
    path_keys: ClassVar[tuple[str, ...]] = ()  # keys holding paths, resolved against the config file's folder


# ----------------------------------------------------------------------------- data


class ArithmeticData(_Section):
    """The time-series GRU tutorial generalised: windows of arithmetic progressions, predict the next term."""

    task: ClassVar[str] = "regression"  # what the model predicts: the loss, metrics and monitors follow it
    input_kind: ClassVar[str] = "real"
    outputs: ClassVar[int] = 1  # one number to predict
    name: Literal["arithmetic"]  # which dataset
    window: int = Field(3, ge=1, le=10_000)  # terms the model sees; the tutorial uses 3
    n_train: int = Field(1000, ge=1)  # random progressions to train on (ignored when starts/steps are given)
    n_val: int = Field(200, ge=0)  # held-out progressions for per-epoch validation; 0 = none
    n_test: int = Field(200, ge=1)  # held-out progressions for the final test metrics
    start_range: tuple[float, float] = (0.0, 10.0)  # first term drawn uniformly from this range
    step_range: tuple[float, float] = (-2.0, 2.0)  # common difference drawn uniformly from this range
    starts: list[float] | None = None  # exact first terms for the train set (grid with steps), as in the tutorial
    steps: list[float] | None = None  # exact common differences for the train set (grid with starts)
    evaluate_on: Literal["test", "train"] = "test"  # "train" reports test metrics on the train set, as the tutorial does


class SineData(_Section):
    """Noisy sine waves: predict the next value from a window of past values."""

    task: ClassVar[str] = "regression"  # what the model predicts: the loss, metrics and monitors follow it
    input_kind: ClassVar[str] = "real"
    outputs: ClassVar[int] = 1  # the next value
    name: Literal["sine"]  # which dataset
    window: int = Field(40, ge=2, le=100_000)  # past values the model sees
    n_train: int = Field(1000, ge=1)  # training windows
    n_val: int = Field(200, ge=0)  # validation windows; 0 = none
    n_test: int = Field(200, ge=1)  # test windows
    noise: float = Field(0.05, ge=0.0)  # std of Gaussian noise on the inputs (targets stay clean)
    period_range: tuple[float, float] = (10.0, 40.0)  # period in steps, drawn per window


class AddingData(_Section):
    """The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a long sequence."""

    task: ClassVar[str] = "regression"  # what the model predicts: the loss, metrics and monitors follow it
    input_kind: ClassVar[str] = "real"
    outputs: ClassVar[int] = 1  # the sum
    name: Literal["adding"]  # which dataset
    length: int = Field(50, ge=2, le=100_000)  # T: sequence length; long T is where SimpleRNN fails
    n_train: int = Field(2000, ge=1)  # training sequences
    n_val: int = Field(400, ge=0)  # validation sequences; 0 = none
    n_test: int = Field(400, ge=1)  # test sequences


class ImdbData(_Section):
    """IMDB movie-review sentiment, with keras.datasets.imdb's index conventions."""

    task: ClassVar[str] = "binary"  # what the model predicts: the loss, metrics and monitors follow it
    input_kind: ClassVar[str] = "tokens"
    outputs: ClassVar[int] = 1  # P(positive)
    name: Literal["imdb"]  # which dataset
    path_keys: ClassVar[tuple[str, ...]] = ("path", "cache_dir")
    path: str | None = None  # aclImdb folder or .tar.gz (relative to the config file's folder); None = $GRU_LAB_IMDB, else Keras's download
    num_words: int = Field(10_000, ge=4)  # vocabulary size; rarer words become 2 (out-of-vocabulary)
    maxlen: int = Field(200, ge=1)  # reviews are truncated/padded to this many tokens (none dropped)
    padding: Literal["pre", "post"] = "pre"  # where the 0s go; post keeps cuDNN usable with masks
    truncating: Literal["pre", "post"] = "pre"  # which end of a long review is cut
    as_real: bool = False  # feed raw word ids as one real-valued feature (the stacked-GRU tutorial), no embedding
    n_train: int | None = Field(None, ge=2)  # use a stratified slice of the 25k train reviews: quick trials on less data
    n_test: int | None = Field(None, ge=2)  # use a stratified slice of the 25k test reviews: quicker evaluation
    cache_dir: str | None = None  # folder for the encoded-array cache; None = $XDG_CACHE_HOME or ~/.cache, /gru-lab/imdb


Column = Union[str, int]  # a column by its header name, or by 0-based position (the only way without a header)


def _as_list(value: Any) -> Any:
    # `targets: price` reads as well as `targets: [price]`.
    return [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value


class SeriesData(_Section):
    """Your own time series from a file (CSV, TSV or Parquet): from a window of past rows, forecast the next `horizon` values of the target columns.

    The rows are split in time order (train, then validation, then test) and no window crosses a split; scaling
    is fitted on the train rows only and stored in the run, so `gru-lab predict` answers in the file's units."""

    input_kind: ClassVar[str] = "real"
    path_keys: ClassVar[tuple[str, ...]] = ("path",)
    name: Literal["series"]  # which dataset
    path: str  # the file: .csv, .tsv/.tab or .parquet; a relative path is relative to the config file's folder
    separator: str | None = None  # field separator of a text file; None = tab for .tsv/.tab, else sniffed among , ; | tab
    header: bool = True  # the first row names the columns; false: name columns by 0-based position
    encoding: str = "utf-8"  # the text file's encoding (any Python codec name: latin-1, utf-16, cp1252, ...)
    time_column: Column | None = None  # parsed and sorted by; gaps are reported in metrics.json; None = the rows are in time order
    time_format: str | None = None  # strftime format of time_column (e.g. "%Y%m%d"); None = numbers stay numbers, text is parsed as dates
    targets: list[Column]  # the column(s) to forecast; their past values are inputs too
    features: list[Column] = []  # other input columns, seen up to the window's last row only
    window: int = Field(24, ge=1, le=100_000)  # past rows the model sees
    horizon: int = Field(1, ge=1, le=10_000)  # rows ahead to forecast: outputs = horizon x targets
    stride: int = Field(1, ge=1, le=100_000)  # rows between the starts of consecutive windows (1 = every window)
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)  # share of rows, after train, for per-epoch validation; 0 = none
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)  # share of rows, the last ones, for the final test metrics
    scaling: Literal["standard", "minmax", "none"] = "standard"  # per column, fitted on the train rows: (x - mean) / std, or to [0, 1]
    missing: Literal["error", "drop", "interpolate", "ffill"] = "error"  # empty cells: error names the row and column; drop the row; interpolate linearly; repeat the previous value
    transform: Literal["none", "difference", "detrend"] = "none"  # before scaling, fitted on the train rows: difference = each row minus the one before (a trend becomes a level); detrend = minus a straight line fitted to the train rows; undone for forecasts and metrics

    @field_validator("targets", "features", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _as_list(value)

    @property
    def outputs(self) -> int:
        return self.horizon * len(self.targets)


class _HeldOut:
    """The test and validation shares of a dataset whose samples (texts, sequences) are split at random, stratified,
    unless the split comes as its own file (test_path, val_path)."""

    @property
    def test_share(self) -> float:
        """The share of path held out for testing (0 with test_path)."""
        return 0.0 if self.test_path else (0.2 if self.test_fraction is None else self.test_fraction)

    @property
    def val_share(self) -> float:
        """The share of the train samples held out for validation (0 with val_path)."""
        return 0.0 if self.val_path else (0.1 if self.val_fraction is None else self.val_fraction)


class TextData(_HeldOut, _Section):
    """Your own labelled texts: a CSV/TSV file with a text and a label column, or a folder with one sub-folder per class holding .txt files (the layout of keras.utils.text_dataset_from_directory).

    Two classes make a binary task, more a multiclass one. Texts are encoded as keras.layers.TextVectorization
    encodes them (standardize, split, the vocabulary from the train split only, ids 0 = padding and 1 =
    out-of-vocabulary, the first maxlen tokens kept and 0s after), so `gru-lab export --text` can bake the same
    layer into a model that takes raw strings."""

    input_kind: ClassVar[str] = "tokens"
    outputs: ClassVar[None] = None  # 1 for two classes, k for k: known once the labels are read
    path_keys: ClassVar[tuple[str, ...]] = ("path", "val_path", "test_path")
    name: Literal["text"]  # which dataset
    path: str  # a .csv/.tsv file or a class-per-sub-folder folder; a relative path is relative to the config file's folder
    test_path: str | None = None  # the test split as its own file or folder (same layout); None = test_fraction of path, chosen by the seed
    val_path: str | None = None  # the validation split as its own file or folder; None = val_fraction of the train texts
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0)  # share of path held out for testing (stratified by class); None = 0.2, or none with test_path
    val_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # share of the train texts held out for per-epoch validation (stratified); None = 0.1, or none with val_path; 0 = none
    separator: str | None = None  # field separator of a file; None = tab for .tsv/.tab, else sniffed among , ; | tab
    header: bool = True  # the first row names the columns; false: text_column and label_column are 0-based positions
    text_column: Column = "text"  # the column holding the text
    label_column: Column = "label"  # the column holding the class label (any text; numbers too)
    classes: list[str] | None = None  # the classes to use, in label order (folder: sub-folder names); None = every class found, sorted
    encoding: str = "utf-8"  # the files' encoding (any Python codec name); undecodable bytes are an error naming the file and line
    num_words: int = Field(20_000, ge=3)  # vocabulary size, padding (0) and out-of-vocabulary (1) included, from the train split only
    maxlen: int = Field(200, ge=1)  # tokens per text: longer texts keep their first maxlen tokens, shorter ones get 0s after
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"] = "lower_and_strip_punctuation"  # TextVectorization's standardize
    split: Literal["whitespace", "character"] = "whitespace"  # TextVectorization's split: words or characters
    n_train: int | None = Field(None, ge=2)  # use a stratified, seed-chosen slice of the train texts (validation comes out of it): quick trials on less data
    n_test: int | None = Field(None, ge=2)  # use a stratified, seed-chosen slice of the test texts: quicker evaluation


class SequencesData(_HeldOut, _Section):
    """Your own labelled numeric sequences (sensor windows, beats, gestures): each sequence of feature vectors gets one label, a class or a number. Three layouts: a long table (CSV/TSV/Parquet, one row per step, with id_column), a wide table (one row per sequence, shape [steps, features]), or an .npz with X (N, T, F), y (N,) and optional lengths (N,).

    Each sequence is one sample, so a split never cuts a sequence; class labels are split stratified by class.
    Shorter sequences are padded (data.padding) and the padding is masked: the recurrent layers skip those steps.
    Scaling is fitted per feature on the train sequences' real steps only and kept in inputs.json, so
    `gru-lab predict --file` reads a new table of the same layout the same way."""

    input_kind: ClassVar[str] = "real"
    path_keys: ClassVar[tuple[str, ...]] = ("path", "val_path", "test_path")
    name: Literal["sequences"]  # which dataset
    path: str | None = None  # the file: .csv, .tsv/.tab, .parquet or .npz (layout npz); relative to the config file's folder; None with builtin
    builtin: Literal["digits"] | None = None  # a dataset a package ships instead of a file: digits = scikit-learn's load_digits, each 8x8 image read as 8 steps (rows) of 8 features (pixels)
    layout: Literal["auto", "long", "wide", "npz"] = "auto"  # auto: npz for .npz, wide when shape is set, else long when id_column is set
    test_path: str | None = None  # the test split as its own file (same layout); None = test_fraction of path, chosen by the seed
    val_path: str | None = None  # the validation split as its own file; None = val_fraction of the train sequences
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0)  # share of the sequences held out for testing (stratified by class); None = 0.2, or none with test_path
    val_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # share of the train sequences held out for per-epoch validation (stratified); None = 0.1, or none with val_path; 0 = none
    separator: str | None = None  # field separator of a text file; None = tab for .tsv/.tab, else sniffed among , ; | tab
    header: bool = True  # the first row names the columns; false: name columns by 0-based position
    encoding: str = "utf-8"  # the text file's encoding (any Python codec name)
    id_column: Column | None = None  # long layout: the column naming each row's sequence (rows of one id form one sequence); wide: optional, each row's name
    order_column: Column | None = None  # long layout: the steps are sorted by this number within a sequence; None = file order
    label_column: Column = "label"  # the label of each sequence (long layout: the same on every row of it); npz: the key of y
    features: list[Column] = []  # the feature columns (long) or step-feature columns (wide), in order; [] = every other column
    shape: tuple[int, int] | None = None  # wide layout: [steps, features]; the feature columns are read step-major (step 0's features first)
    task: Literal["classification", "regression"] = "classification"  # classification: labels are classes (2 = binary, more = multiclass); regression: the label is a number per sequence
    classes: list[str] | None = None  # the classes to use, in label order; None = every label of data.path, sorted (numerically when all are numbers)
    maxlen: int | None = Field(None, ge=1, le=100_000)  # steps the model sees: longer sequences are cut as truncating says; None = the longest sequence of data.path (predict cuts longer ones the same way)
    truncating: Literal["pre", "post"] = "pre"  # which end of a sequence longer than maxlen is cut: pre keeps its last maxlen steps (those nearest the label), post its first
    padding: Literal["pre", "post"] = "post"  # where shorter sequences get their masked padding steps; post keeps cuDNN usable on a GPU
    scaling: Literal["standard", "minmax", "none"] = "standard"  # per feature, fitted on the train sequences' steps: (x - mean) / std, or to [0, 1]

    @field_validator("features", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _as_list(value)

    @property
    def outputs(self) -> int | None:
        # Regression: one number; classification: known once the labels are read.
        return 1 if self.task == "regression" else None


DataConfig = Annotated[Union[ArithmeticData, SineData, AddingData, ImdbData, SeriesData, TextData,
                             SequencesData],
                       Field(discriminator="name")]
DATA_SECTIONS = {cls.model_fields["name"].annotation.__args__[0]: cls
                 for cls in (ArithmeticData, SineData, AddingData, ImdbData, SeriesData, TextData,
                             SequencesData)}

# ----------------------------------------------------------------------------- model


class ConvConfig(_Section):
    filters: int = Field(64, ge=1)  # Conv1D output channels
    kernel_size: int = Field(5, ge=1)  # time steps each filter spans
    pool_size: int = Field(2, ge=1)  # MaxPooling1D after the conv; 1 = no pooling (shortens sequences by this factor)


class ModelConfig(_Section):
    cell: Literal[cells.NAMES] = "gru"  # recurrent cell; "rnn" is an alias of simple_rnn
    units: int | list[int] = 64  # hidden size; a list gives one size per stacked layer
    num_layers: int = Field(1, ge=1, le=16)  # stacked layers; all but the last return sequences
    bidirectional: bool = False  # read the sequence both ways (doubles recurrent parameters)
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"  # how the two directions are joined
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # input dropout inside each recurrent layer
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # state dropout; >0 disables cuDNN
    activation: Literal[ACTIVATIONS] = "tanh"  # cell activation (a keras.activations name); the time-series GRU tutorial uses relu (disables cuDNN)
    recurrent_activation: Literal[ACTIVATIONS] | None = None  # gate activation (gru/lstm only); None = sigmoid
    layer_norm: bool = False  # LayerNormalization after each recurrent layer
    conv: ConvConfig | None = None  # optional Conv1D + MaxPooling1D front end (the GRU tips lecture's CNN+GRU)
    embedding_dim: int | None = Field(None, ge=1)  # token inputs only: Embedding output size
    mask_zero: bool = False  # token inputs only: treat id 0 as padding and mask it
    embedding_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # token inputs only: in training, drop each token's whole embedded vector with this probability (word dropout against a memorizing embedding)
    embedding_init: Literal["random", "svd"] = "random"  # token inputs only: random (Keras's uniform), or svd: word vectors from the train split's co-occurrence counts (PPMI + truncated SVD), computed before training
    embedding_trainable: bool = True  # token inputs only: false keeps the Embedding's weights where they started (with embedding_init: svd, the word vectors): nothing left to memorize the training texts with
    unroll: bool = False  # unroll the time loop (short sequences only; disables cuDNN)
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # Dropout before the output Dense
    pooling: Literal["last", "max", "mean", "max_mean"] = "last"  # what the head sees: the last recurrent layer's final output, or its outputs pooled over time (padding excluded); max_mean concatenates both
    head: Literal["dense", "none"] = "dense"  # "none": the last recurrent layer is the output (the stacked-GRU tutorial's GRU(1))
    loops: Literal["auto", "keras"] = "auto"  # auto: gru-lab's loops (compiled or fused) on a CPU where they apply (same weights and outputs as Keras's; `inspect` says which run); keras: Keras's own loop

    @field_validator("cell", mode="before")
    @classmethod
    def _cell_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return cells.canonical(value)
        return value

    @field_validator("loops", mode="before")
    @classmethod
    def _loops_yaml_bool(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false (and `on` as true): off means Keras's loop, on gru-lab's.
        return {False: "keras", True: "auto"}.get(value, value) if isinstance(value, bool) else value

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
    monitor: str = "val_loss"  # what a run logs: loss and the task's metric (accuracy, or mae for regression), val_* with validation data; accuracy is better higher, the rest lower (also picks the recorded best epoch)
    min_delta: float = Field(0.0, ge=0.0)  # smaller changes than this do not count as improvement
    restore_best_weights: bool = True  # evaluate the best epoch's weights, not the last


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1, le=100_000)  # passes over the training set
    batch_size: int = Field(64, ge=1)  # samples per gradient step
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"  # the tutorials all use adam
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)  # adam's default; the GRU tips lecture suggests tuning it
    clipnorm: float | None = Field(None, gt=0.0)  # gradient norm clipping; None = off
    lr_decay: float = Field(1.0, gt=0.0, le=1.0)  # the learning rate is multiplied by this after every epoch (epoch e trains at learning_rate * lr_decay^(e-1)); 1 = constant
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of train held out by Keras (the IMDB GRU tutorial: 0.2)
    early_stopping: EarlyStoppingConfig | None = None  # None = train all epochs
    seed: int | None = Field(None, ge=0, le=2**32 - 1)  # weight init and shuffling only; None = the top-level seed
    eval_batch_size: int | None = Field(None, ge=1)  # batch for evaluate/predict; None = max(batch_size, 1024), or 256 with the compiled loops (training.fit.eval_batch): big batches are cheaper per sample and give the same predictions
    distribute: Literal["none", "mirrored"] = "none"  # "mirrored": one run on every local GPU (or logical CPU) via tf.distribute.MirroredStrategy
    device: Literal["auto", "cpu", "gpu"] = "auto"  # auto: a GPU when TensorFlow sees one, else the CPU; gpu fails when there is none
    xla: Literal["auto", "on", "off"] = "auto"  # XLA-compile the train/eval steps; auto: decided per cell by the kernel plan (`inspect` says why); off on GPU (cuDNN kernels cannot be compiled)
    mixed_precision: bool = False  # GPU only: float16 compute with float32 weights (Keras mixed_float16); ignored on CPU, where it is slower
    bucketing: Literal["auto", "off"] = "auto"  # auto: where padding is masked (XLA off), batches of similar lengths (sorted within shuffled windows of 8 batches), each cut at its longest sequence; off: plain shuffled batches

    @field_validator("xla", "bucketing", mode="before")
    @classmethod
    def _xla_yaml_bool(cls, value: Any) -> Any:
        # YAML 1.1 reads bare `on`/`off` as true/false; take them as the words the user typed.
        return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


class OutputConfig(_Section):
    dir: str = "results"  # runs go to <dir>/<name>/<run-id>/
    save_model: bool = True  # write model.keras (needed by predict and export); it loads with plain Keras
    tensorboard: bool = False  # also write per-epoch scalars and the learning rate under <run folder>/tensorboard (`tensorboard --logdir results`; the tensorboard extra opens them)
    evaluation: bool = True  # write evaluation/ (confusion, ROC/PR, calibration, accuracy by length, forecasts) from the test predictions at the end of training; costs 1-3 s a run (docs/evaluation.md); compare's length and ensemble tables read it
    mlflow: bool | str = False  # also log the run to MLflow (the mlflow extra): true = $MLFLOW_TRACKING_URI, else a local store <dir>/mlflow.db that `mlflow ui` opens; or a tracking URI (http://host:5000); not part of the run's id


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


class TuneConfig(_Section):
    """`gru-lab tune` settings; train, compare and sweep ignore this section. Command-line flags override each key."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # folder of the trials, the study and the tune table under output.dir; None = the top-level name
    space: dict[str, Any] = {}  # dotted key -> [choices] or {low, high, log, step}: model.cell: [rnn, gru], train.learning_rate: {low: 1e-4, high: 1e-2, log: true}
    trials: int | None = Field(None, ge=1, le=100_000)  # trials in the study (finished, pruned, failed and invalid count); None = 20 unless timeout is set
    timeout: str | None = None  # wall budget of this command, e.g. 90s, 30m, 2h: no trial starts after it; None = no limit
    sampler: Literal["tpe", "random", "grid"] = "tpe"  # Optuna's TPE learns from the trials so far; random for a baseline; grid tries every combination (ranges need a step)
    pruner: Literal["hyperband", "halving", "median", "none"] = "hyperband"  # stops poor trials early on the per-epoch validation metric: Hyperband (successive halving over brackets), plain successive halving, the median rule, or none
    metric: str | None = None  # the validation quantity to optimise (val_loss, val_accuracy, val_mae); None = val_accuracy for classification, val_loss for regression
    seeds: int = Field(1, ge=1, le=100)  # a trial's score is the mean over this many train seeds (seed, seed+1, ...); 1 keeps searches affordable
    workers: int | None = Field(None, ge=1, le=1024)  # local: trials at once, one process each, sharing the study (None = 1); ray: trials in flight (None = what the cluster fits)
    backend: Literal["local", "ray"] = "local"  # local worker processes, or one Ray task a trial on a Ray cluster
    storage: str | None = None  # the study's database URL (sqlite:///tune.db, postgresql://...) so several machines join one study; None = a journal file in the tune folder
    ray_address: str | None = None  # ray: "auto" = the cluster this machine belongs to, or "ray://host:10001"; None = start a local instance
    num_cpus: float = Field(1.0, gt=0)  # ray: CPUs each trial reserves (also its TensorFlow thread count)
    num_gpus: float = Field(0.0, ge=0)  # ray: GPUs each trial reserves


class BaselineConfig(_Section):
    """The classical baseline compare, sweep and train fit beside the recurrent model, on the same splits."""

    kind: Literal["auto", "none"] = "auto"  # auto: text -> TF-IDF + logistic regression, real-valued classification -> logistic regression on the window, regression -> last value, seasonal naive, ridge; none: no baseline
    period: int | None = Field(None, ge=1)  # regression only: the season in steps for the seasonal-naive baseline (its value one period back); None = no seasonal baseline


class ExperimentConfig(_Section):
    name: str = Field("experiment", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # folder name under output.dir
    seed: int = Field(0, ge=0, le=2**32 - 1)  # seeds data generation, weight init and shuffling (NumPy's range)
    data: DataConfig  # which dataset and its size
    model: ModelConfig = ModelConfig()  # the architecture
    train: TrainConfig = TrainConfig()  # optimisation
    output: OutputConfig = OutputConfig()  # where the run record goes
    sweep: SweepConfig | None = None  # grid-sweep settings for `gru-lab sweep`; not part of a run's own config
    baseline: BaselineConfig = BaselineConfig()  # the classical baseline beside the recurrent runs; `baseline: none` turns it off
    tune: TuneConfig | None = None  # search settings for `gru-lab tune`; not part of a run's own config

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline_word(cls, value: Any) -> Any:
        # `baseline: none` (or auto) is the short form of `baseline: {kind: none}`.
        return {"kind": value} if isinstance(value, str) else value

    @property
    def train_seed(self) -> int:
        return self.seed if self.train.seed is None else self.train.seed
