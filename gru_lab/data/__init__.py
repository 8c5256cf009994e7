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
}


def load_dataset(data_cfg, seed: int) -> Dataset:
    module, _, func = LOADERS[data_cfg.name].partition(":")
    return getattr(import_module(module), func)(data_cfg, seed)


__all__ = ["Dataset", "InputSpec", "LOADERS", "load_dataset", "spec_for"]


def spec_for(data_cfg) -> InputSpec:
    """The InputSpec a data config will produce, known without loading anything (inspect, budgets)."""

    name = data_cfg.name
    if name in ("arithmetic", "sine"):
        return InputSpec("regression", "real", data_cfg.window, 1, 1)
    if name == "adding":
        return InputSpec("regression", "real", data_cfg.length, 2, 1)
    if name == "imdb":
        if data_cfg.as_real:
            return InputSpec("binary", "real", data_cfg.maxlen, 1, 1, None, data_cfg.padding)
        return InputSpec("binary", "tokens", data_cfg.maxlen, 1, 1, data_cfg.num_words, data_cfg.padding)
    raise KeyError(name)
