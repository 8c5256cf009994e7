"""`gru-lab export`: a finished run's model as stock Keras layers (same weights), for plain Keras or TensorFlow
Serving, in an environment without gru-lab.

keras: a .keras file that keras.saving.load_model reads. savedmodel: a TensorFlow SavedModel folder (Keras's
Model.export) with a `serve` / `serving_default` signature. With text=True, a run on `text` data gets its
keras.layers.TextVectorization (settings and vocabulary from inputs.json) in front, so the model takes raw
strings and scores them exactly as `gru-lab predict` does; an IMDB run's SavedModel gets gru-lab's own
tokenizer as TensorFlow ops instead (no stock layer reproduces it, so its .keras takes token ids only).

Nothing is half written: the model goes to a temporary name beside the target and is renamed into place, and
an existing path is never overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gru_lab.errors import RunError
from gru_lab.inference.run import Run, load_model

FORMATS = ("keras", "savedmodel")


def default_path(run: Run, fmt: str, text: bool) -> Path:
    """<run-id>[-text].keras, or <run-id>[-text].savedmodel/, in the working directory."""
    stem = run.folder.name + ("-text" if text else "")
    return Path(f"{stem}.keras" if fmt == "keras" else f"{stem}.savedmodel")


def takes(run: Run, text: bool) -> str:
    """What the exported model's input is, in words."""
    if text:
        return "raw strings"
    return {"series": "windows of rows, scaled as the run's inputs.json says",
            "sequences": "padded sequences (N, maxlen, features), scaled as the run's inputs.json says, padding steps "
                         "all mask_value"}.get(run.inputs.get("kind"), "token ids")


def portable_model(run: Run, text: bool):
    """The run's model in stock Keras layers; with text, a model from raw strings (text runs only)."""
    import keras

    from gru_lab.rnn.portable import stock_copy

    model = stock_copy(load_model(run))
    if not text:
        return model
    kind = run.inputs.get("kind")
    if kind == "imdb-text":
        raise RunError(f"{run.folder}: --text with --format keras needs a run on data 'text': IMDB runs use "
                       "gru-lab's own tokenizer, which no stock Keras layer reproduces. Use --format savedmodel "
                       "(the tokenizer as TensorFlow ops), or export without --text (the model takes token ids).")
    if kind != "text":
        raise RunError(f"{run.folder}: --text is for text runs; this run trained on {run.cfg.data.name!r} data.")
    from gru_lab.data.text import vectorizer

    strings = keras.Input(shape=(), dtype="string", name="text")
    x = vectorizer(run.inputs["vectorizer"], run.inputs["vocabulary"])(strings)
    # The run's layers applied one after another (the model is a chain), not the model nested as one layer:
    # Keras's .keras format does not restore the weights of a functional model nested in another.
    for layer in model.layers[1:]:
        x = layer(x)
    return keras.Model(strings, x, name=f"{model.name}_text")


def export_run(run: Run, fmt: str, out: Path | None, text: bool) -> Path:
    """Write the exported model; returns its path."""
    if fmt not in FORMATS:
        raise RunError(f"--format must be one of {list(FORMATS)}. Got {fmt!r}.")
    target = Path(out) if out is not None else default_path(run, fmt, text)
    if fmt == "keras" and target.suffix != ".keras":
        raise RunError(f"{target}: a Keras model file must end in .keras.")
    if target.exists():
        raise RunError(f"{target}: already exists; export never overwrites: pass --out with a new path.")
    if not target.parent.is_dir():
        raise RunError(f"{target.parent}: folder not found for --out.")
    imdb_strings = text and fmt == "savedmodel" and run.inputs.get("kind") == "imdb-text"
    model = portable_model(run, text and not imdb_strings)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        if fmt == "keras":
            model.save(tmp)
        elif imdb_strings:
            _imdb_strings_archive(run, model).write_out(str(tmp), verbose=False)
        else:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        os.rename(tmp, target)
    except OSError as exc:  # no permission, a full disk: a message, not a traceback
        raise RunError(f"{target}: cannot write the model ({exc.__class__.__name__}: {exc.strerror or exc}).") from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target


def _imdb_strings_archive(run: Run, model):
    """A SavedModel of an IMDB run that takes raw reviews: gru-lab's tokenizer and vocabulary as TensorFlow ops
    (data.imdb.tensorflow_encoder) in front of the stock model, as its `serve` signature."""
    import keras
    import tensorflow as tf

    from gru_lab.data.imdb import tensorflow_encoder
    from gru_lab.inference.run import imdb_vocabulary

    lookup, encode = tensorflow_encoder(imdb_vocabulary(run))
    encode(tf.constant([""]))  # builds the lookup layer, which the archive tracks
    as_real = getattr(run.cfg.data, "as_real", False)

    def serve(strings):
        ids = encode(strings)
        return model(tf.cast(ids, tf.float32)[..., None] if as_real else ids, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(lookup)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return archive
