"""data.name: text: labelled texts from a CSV/TSV or class folders, encoded as TextVectorization encodes them."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset, spec_for
from gru_lab.errors import DataError

WORDS = {"pos": ["great", "superb", "loved", "fun"], "neg": ["awful", "boring", "hated", "dull"],
         "mixed": ["fine", "okay", "average", "so-so"]}


def texts_of(label: str, n: int, start: int = 0) -> list[str]:
    words = WORDS[label]
    return [f"A {words[i % 4]}, {words[(i + 1) % 4]} film number{i}." for i in range(start, start + n)]


def write_csv(path, rows, header=("text", "label"), delimiter=",", encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def text_cfg(path, **data):
    return config_from_raw({"data": {"name": "text", "path": str(path), "maxlen": 6, **data},
                            "model": {"embedding_dim": 4}}, "test").data


def test_csv_binary_split_by_seed_and_vocabulary_from_train_only(tmp_path):
    rows = [(t, "pos") for t in texts_of("pos", 30)] + [(t, "neg") for t in texts_of("neg", 30)]
    path = write_csv(tmp_path / "reviews.csv", rows)
    cfg = text_cfg(path, test_fraction=0.2, val_fraction=0.25)
    data = load_dataset(cfg, seed=1)
    assert spec_for(cfg) == data.spec and data.task == "binary" and data.padding == "post"
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (36, 12, 12)  # stratified: 6 + 6 test
    assert sorted(np.unique(data.y_test, return_counts=True)[1].tolist()) == [6, 6]
    inputs = data.artifacts["inputs"]
    assert inputs["classes"] == ["neg", "pos"] and inputs["vocabulary"][:2] == ["", "[UNK]"]
    # Each "numberN" appears in one text only: those of test texts are not in the (train-only) vocabulary.
    vocabulary = set(inputs["vocabulary"])
    numbered = {f"number{i}" for i in range(30)}
    assert 0 < len(numbered & vocabulary) < 30
    assert data.extra["majority_accuracy"] == pytest.approx(0.5)
    # TextVectorization's own encoding: lower-cased, punctuation stripped, first maxlen tokens, 0s after.
    index = {w: i for i, w in enumerate(inputs["vocabulary"])}
    assert data.x_train.shape == (36, 6) and all(index["a"] == row[0] for row in data.x_train)


def test_again_with_the_same_seed_gives_the_same_arrays(tmp_path):
    rows = [(t, "pos") for t in texts_of("pos", 10)] + [(t, "neg") for t in texts_of("neg", 10)]
    cfg = text_cfg(write_csv(tmp_path / "r.csv", rows))
    a, b = load_dataset(cfg, seed=4), load_dataset(cfg, seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)


def test_headerless_tsv_multiclass_with_numeric_labels_in_numeric_order(tmp_path):
    rows = [(t, "10") for t in texts_of("pos", 8)] + [(t, "2") for t in texts_of("neg", 8)] + \
           [(t, "1") for t in texts_of("mixed", 8)]
    path = write_csv(tmp_path / "r.tsv", [(label, text) for text, label in rows], header=None, delimiter="\t")
    cfg = text_cfg(path, header=False, text_column=1, label_column=0)
    data = load_dataset(cfg, seed=0)
    assert data.task == "multiclass" and data.num_classes == 3 and spec_for(cfg).outputs == 3
    assert data.artifacts["inputs"]["classes"] == ["1", "2", "10"] and data.y_train.dtype == np.int32


def test_semicolon_latin1_file_with_quoted_line_breaks(tmp_path):
    rows = [(t.replace("film", "fïlm;\nzwei"), "gut") for t in texts_of("pos", 6)] + \
           [(t, "schlecht") for t in texts_of("neg", 6)]
    path = write_csv(tmp_path / "r.csv", [(lab, t) for t, lab in rows], header=("klasse", "inhalt"), delimiter=";",
                     encoding="latin-1")
    data = load_dataset(text_cfg(path, text_column="inhalt", label_column="klasse", encoding="latin-1",
                                 val_fraction=0), seed=0)
    assert data.artifacts["inputs"]["classes"] == ["gut", "schlecht"] and len(data.x_train) + len(data.x_test) == 12
    assert "fïlm" in data.artifacts["inputs"]["vocabulary"]


def test_class_folders_and_classes_chosen_in_order(tmp_path):
    for label in ("pos", "neg", "unsup"):
        folder = tmp_path / "train" / label
        folder.mkdir(parents=True)
        for i, text in enumerate(texts_of("mixed" if label == "unsup" else label, 5)):
            (folder / f"{i}.txt").write_text(text)
    (tmp_path / "train" / "README").write_text("not a class")
    cfg = text_cfg(tmp_path / "train", classes=["pos", "neg"], test_fraction=0.4, val_fraction=0)
    data = load_dataset(cfg, seed=0)
    assert data.artifacts["inputs"]["classes"] == ["pos", "neg"] and spec_for(cfg).outputs == 1
    assert len(data.x_train) + len(data.x_test) == 10
    assert spec_for(text_cfg(tmp_path / "train")).outputs == 3  # every sub-folder is a class without `classes`


def test_test_split_from_its_own_file_must_use_train_labels(tmp_path):
    rows = [(t, "pos") for t in texts_of("pos", 5)] + [(t, "neg") for t in texts_of("neg", 5)]
    train = write_csv(tmp_path / "train.csv", rows)
    test = write_csv(tmp_path / "test.csv", [("fine", "pos"), ("meh", "meh")])
    with pytest.raises(DataError, match=r"test\.csv:3: label 'meh' is not one of the train classes"):
        load_dataset(text_cfg(train, test_path=str(test)), seed=0)


def test_tokens_with_line_break_characters_stay_out_of_the_vocabulary(tmp_path):
    """Keras saves a vocabulary one token a line; \\x85 inside a token would break loading an exported model."""
    rows = [(f"good\x85bad {t}", "pos") for t in texts_of("pos", 4)] + [(t, "neg") for t in texts_of("neg", 4)]
    data = load_dataset(text_cfg(write_csv(tmp_path / "r.csv", rows), val_fraction=0, test_fraction=0.25), seed=0)
    assert all(w.splitlines() == [w] for w in data.artifacts["inputs"]["vocabulary"][2:])
    assert data.x_train.max() < len(data.artifacts["inputs"]["vocabulary"])


BAD_TEXT = [
    ("single-class", [("a", "pos"), ("b", "pos")], {}, r"every text has the label 'pos'"),
    ("empty-text", [("a", "pos"), ("  ", "neg")], {}, r"r\.csv:3: the text \(column 'text'\) is empty"),
    ("empty-label", [("a", "pos"), ("b", "")], {}, r"r\.csv:3: the label \(column 'label'\) is empty"),
    ("unknown-label-column", [("a", "pos")], {"label_column": "sentiment"},
     r"r\.csv:1: no column 'sentiment' in the header \('text', 'label'\); 'data.label_column' names it"),
    ("label-outside-classes", [("a", "pos"), ("b", "neg"), ("c", "meh")], {"classes": ["pos", "neg"]},
     r"r\.csv:4: label 'meh' is not one of the data.classes classes"),
]


@pytest.mark.parametrize("rows,data,fragment", [c[1:] for c in BAD_TEXT], ids=[c[0] for c in BAD_TEXT])
def test_bad_text_files_are_one_line_naming_file_and_line(tmp_path, rows, data, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        load_dataset(text_cfg(write_csv(tmp_path / "r.csv", rows), **data), seed=0)
    assert "\n" not in str(info.value)


def test_undecodable_file_in_a_class_folder_names_the_file(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "1.txt").write_text("fine text")
    (tmp_path / "b" / "2.txt").write_bytes(b"ok\nbad \xff byte")
    with pytest.raises(DataError, match=r"b/2\.txt:2: bytes that are not utf-8"):
        load_dataset(text_cfg(tmp_path), seed=0)
    (tmp_path / "b" / "2.txt").write_text("")
    with pytest.raises(DataError, match=r"b/2\.txt: the text is empty"):
        load_dataset(text_cfg(tmp_path), seed=0)
