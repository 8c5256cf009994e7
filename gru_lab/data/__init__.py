"""Dataset registry: data.name -> loader. Loaders import their heavy dependencies lazily."""

from __future__ import annotations

from importlib import import_module

from gru_lab.data.base import Dataset, InputSpec

# name -> "module:function"; each function takes (data config, seed) and returns a Dataset.
LOADERS = {
    "arithmetic": "gru_lab.data.synthetic:arithmetic",
    "sine": "gru_lab.data.synthetic:sine",
    "adding": "gru_lab.data.synthetic:adding",
    "imdb": "gru_lab.data.imdb:load",
    "series": "gru_lab.data.series:load",
    "text": "gru_lab.data.text:load",
    "sequences": "gru_lab.data.sequences:load",
}


def load_dataset(data_cfg, seed: int) -> Dataset:
    """The Dataset of a data config; its artifacts always include "inputs", what predict needs to know."""
    module, _, func = LOADERS[data_cfg.name].partition(":")
    data = getattr(import_module(module), func)(data_cfg, seed)
    data.artifacts.setdefault("inputs", describe_inputs(data.spec, imdb_vocabulary="vocabulary" in data.artifacts))
    return data


def describe_inputs(spec: InputSpec, imdb_vocabulary: bool = False) -> dict:
    """inputs.json for data whose loader does not write its own: IMDB text (read with its vocabulary.json), or
    windows of real values (a CSV with one column per feature, taken as it is)."""
    if imdb_vocabulary:
        return {"kind": "imdb-text", "task": spec.task, "classes": ["neg", "pos"], "vocabulary": "vocabulary.json"}
    return {"kind": "series", "task": spec.task, "columns": None, "features": spec.features, "targets": None,
            "window": spec.timesteps, "horizon": None, "outputs": spec.outputs, "scaling": None, "missing": "error",
            "time_column": None}


__all__ = ["Dataset", "InputSpec", "LOADERS", "describe_inputs", "load_dataset", "spec_for"]


def spec_for(data_cfg) -> InputSpec:
    """The InputSpec a data config will produce, known without loading the data (inspect, budgets); a text file's
    classes are counted from its label column (or folders), which is all spec_for reads."""

    name = data_cfg.name
    if name in ("arithmetic", "sine"):
        return InputSpec("regression", "real", data_cfg.window, 1, 1)
    if name == "adding":
        return InputSpec("regression", "real", data_cfg.length, 2, 1)
    if name == "imdb":
        if data_cfg.as_real:
            return InputSpec("binary", "real", data_cfg.maxlen, 1, 1, None, data_cfg.padding)
        return InputSpec("binary", "tokens", data_cfg.maxlen, 1, 1, data_cfg.num_words, data_cfg.padding)
    if name == "series":
        return InputSpec("regression", "real", data_cfg.window, len(data_cfg.targets) + len(data_cfg.features),
                         data_cfg.outputs)
    if name == "text":
        from gru_lab.data.text import count_classes

        classes = count_classes(data_cfg)  # the one fact a config cannot say: read from the folders or the labels
        return InputSpec("binary" if classes == 2 else "multiclass", "tokens", data_cfg.maxlen, 1,
                         1 if classes == 2 else classes, data_cfg.num_words, "post")
    if name == "sequences":
        from gru_lab.data.sequences import spec

        return spec(data_cfg)  # classes and the longest sequence: read from data.path, which is all it reads
    raise KeyError(name)
