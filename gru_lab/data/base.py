"""The Dataset record every loader returns, and the facts the model builder needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

Task = Literal["binary", "multiclass", "regression"]
InputKind = Literal["tokens", "real"]
# Real-valued padding steps hold this value in every feature; keras.layers.Masking(mask_value=MASK_VALUE) masks
# them. Not 0: a real step may be all zeros (a blank row of a digit, a sensor at rest, a feature at its mean).
MASK_VALUE = -1e9


@dataclass(frozen=True)
class InputSpec:
    """What the model builder needs to know about the data, without the arrays."""

    task: Task
    input_kind: InputKind
    timesteps: int
    features: int  # real inputs: values per step; tokens: 1
    outputs: int  # units of the output Dense
    vocab_size: int | None = None
    padding: Literal["pre", "post"] | None = None
    masked: bool = False  # real inputs: padding steps hold MASK_VALUE and a Masking layer hides them


@dataclass(frozen=True)
class Units:
    """A regression's test rows in the file's own units, where the model's are not (scaled, differenced,
    detrended): the targets, and how to take the model's outputs there."""

    y: np.ndarray  # float64 (n_test, outputs): the test targets as the file has them
    convert: Callable[[np.ndarray], np.ndarray]  # model outputs (n_test, outputs), x_test's rows -> file units
    # The last-value forecast in the model's units (n_test, outputs), where it is not the window's last step.
    naive: np.ndarray | None = None
    naive_units: np.ndarray | None = None  # the same forecast in the file's units
    x: np.ndarray | None = None  # the test inputs in the file's units, for the forecast table


@dataclass(frozen=True)
class Documents:
    """Whole texts as token ids, for the classical baselines (which see every word, not maxlen of them):
    text i is ids[starts[i]:ends[i]], in the order of the split's x rows. Views of one flat array, so a
    loader hands them over without a copy."""

    ids: np.ndarray  # int: every text's token ids, one text after another (the loader's own array)
    starts: np.ndarray  # int64 (n,)
    ends: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.starts[i]:self.ends[i]]

    def rows(self, index) -> "Documents":
        """The texts at these rows (a slice or an index array), same order as x[index]."""
        return Documents(self.ids, self.starts[index], self.ends[index])


@dataclass
class Samples:
    """What an evaluation shows of each test row, row for row with x_test (inference.evaluate reads it).

    lengths: the true length of each input before padding (a text's tokens, the START mark included for IMDB;
    the window or sequence length for real-valued inputs); truncated: cut to maxlen. text(i) and sources name
    a text row for the table of confident mistakes; times place a series window's forecast on the file's time
    axis (the time, or file line, of its first forecast row)."""

    lengths: np.ndarray  # int (n,)
    truncated: np.ndarray | None = None  # bool (n,)
    sources: list[str] | None = None  # "file:line", a file, or where in a split
    text: Callable[[int], str] | None = None  # row -> the text (IMDB decodes its ids only for the rows shown)
    times: list[Any] | None = None  # series: time of each window's first forecast row
    time_label: str | None = None  # the time axis's name: the time column, or "file line"


@dataclass
class Dataset:
    """Train/validation/test arrays plus what the model builder must know.

    x arrays: tokens -> int32 (n, timesteps); real -> float32 (n, timesteps, features).
    y arrays: binary -> float32 (n,) of 0/1; multiclass -> int32 (n,);
    regression -> float32 (n,) or (n, outputs).
    x_val/y_val are None when the config asks Keras to hold out train.validation_split.
    """

    name: str
    task: Task
    input_kind: InputKind
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    vocab_size: int | None = None  # tokens only: embedding input_dim (ids are < vocab_size)
    num_classes: int | None = None  # multiclass only
    padding: Literal["pre", "post"] | None = None  # side on which 0-padding sits, if any
    extra: dict[str, Any] = field(default_factory=dict)  # goes into metrics.json ("data" key)
    artifacts: dict[str, Any] = field(default_factory=dict)  # files saved in the run folder, e.g. vocabulary
    # Text datasets: {"train": Documents, "test": Documents}, row for row with x_train / x_test; the TF-IDF
    # baseline reads these (every word of each text) rather than the model's padded, truncated x.
    documents: dict[str, Documents] | None = None
    masked: bool = False  # real inputs: padding steps hold MASK_VALUE, masked by the model (data.name: sequences)
    units: Units | None = None  # regression: the test rows in the file's units (series, sequences)
    # Row for row with x_test: true lengths, truncation, sources, times (inference.evaluate); None: lengths
    # are the timesteps of every row.
    samples: Samples | None = None

    @property
    def timesteps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def features(self) -> int:
        return 1 if self.input_kind == "tokens" else int(self.x_train.shape[2])

    @property
    def outputs(self) -> int:
        if self.task == "binary":
            return 1
        if self.task == "multiclass":
            return int(self.num_classes or 0)
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.task, self.input_kind, self.timesteps, self.features, self.outputs,
                         self.vocab_size, self.padding, self.masked)
