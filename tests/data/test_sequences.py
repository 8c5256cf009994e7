"""data.name: sequences: long, wide and npz layouts read into the same padded, masked, scaled arrays; splits by
sequence and class; every problem one line naming the file, line and column. No TensorFlow: the loader is NumPy."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset, spec_for
from gru_lab.data.base import MASK_VALUE
from gru_lab.errors import DataError


def seq_cfg(**data):
    return config_from_raw({"data": {"name": "sequences", **data}}, "test").data


def write_long(path, sequences, labels, ids=None, shuffle_rng=None, header=("seq", "t", "a", "b", "label")):
    """One row per step: id, step number, two features, label. shuffle_rng: rows in a random order."""
    rows = []
    for i, (steps, label) in enumerate(zip(sequences, labels)):
        sid = ids[i] if ids else f"s{i}"
        rows += [[sid, t, f"{v[0]:.6g}", f"{v[1]:.6g}", label] for t, v in enumerate(steps)]
    if shuffle_rng is not None:
        rows = [rows[i] for i in shuffle_rng.permutation(len(rows))]
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path


def steps_of(rng, n, lo=2, hi=6, offset=0.0):
    return [rng.normal(offset, 1.0, (rng.randint(lo, hi + 1), 2)) for _ in range(n)]


def unpadded(x_row, padding):
    real = ~(x_row == MASK_VALUE).all(axis=1)
    return x_row[real], real


def test_long_table_in_any_row_order_pads_masks_and_scales_on_train_only(tmp_path):
    rng = np.random.RandomState(0)
    seqs = steps_of(rng, 20, offset=0.0) + steps_of(rng, 20, offset=3.0)
    labels = ["low"] * 20 + ["high"] * 20
    path = write_long(tmp_path / "s.csv", seqs, labels, shuffle_rng=rng)
    cfg = seq_cfg(path=str(path), id_column="seq", order_column="t", features=["a", "b"], test_fraction=0.25,
                  val_fraction=0, padding="pre")
    data = load_dataset(cfg, seed=3)
    assert data.spec == spec_for(cfg) and data.masked and data.task == "binary"
    assert data.artifacts["inputs"]["classes"] == ["high", "low"] and data.timesteps == 6
    assert (len(data.x_train), len(data.x_test)) == (30, 10)
    assert sorted(np.bincount(data.y_test.astype(int)).tolist()) == [5, 5]  # stratified
    # Padding sits before the steps (pre) and is all MASK_VALUE; the real steps are scaled with the train
    # sequences' statistics: their steps have mean 0 and std 1 per feature, the test ones need not.
    lengths = []
    for row in data.x_train:
        steps, real = unpadded(row, "pre")
        assert real[len(real) - len(steps):].all()  # pre: the real steps are the last ones
        lengths.append(len(steps))
    train_steps = np.concatenate([unpadded(r, "pre")[0] for r in data.x_train])
    assert np.allclose(train_steps.mean(axis=0), 0, atol=1e-5) and np.allclose(train_steps.std(axis=0), 1, atol=1e-4)
    scaling = data.artifacts["inputs"]["scaling"]
    assert set(scaling["center"]) == {"a", "b"}
    assert data.extra["lengths"]["train_min"] == min(lengths)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_classes=st.integers(2, 4), per_class=st.integers(3, 7), max_len=st.integers(1, 7),
       maxlen=st.one_of(st.none(), st.integers(1, 8)), truncating=st.sampled_from(["pre", "post"]),
       padding=st.sampled_from(["pre", "post"]), seed=st.integers(0, 2**16),
       id_chars=st.sampled_from(["ab", "xyz09", "qé-_"]))
def test_drawn_long_tables_keep_each_sequence_whole_in_one_split(tmp_path, n_classes, per_class, max_len, maxlen,
                                                                  truncating, padding, seed, id_chars):
    """Random ids, lengths and label sets: every sequence lands in exactly one split, whole (its steps in order,
    cut as truncating says), padded with MASK_VALUE on the padding side, its label kept."""
    rng = np.random.RandomState(seed)
    n = n_classes * per_class
    ids = [f"{''.join(rng.choice(list(id_chars), 3))}{i}" for i in range(n)]
    labels = [f"c{k}" for k in range(n_classes) for _ in range(per_class)]
    # Step t of a sequence holds (its index, t): the arrays say which sequence and step each value came from.
    seqs = [np.array([[i, t] for t in range(rng.randint(1, max_len + 1))], dtype=float) for i in range(n)]
    path = write_long(tmp_path / f"d{seed}.csv", seqs, labels, ids=ids, shuffle_rng=rng)
    cfg = seq_cfg(path=str(path), id_column="seq", order_column="t", features=["a", "b"], maxlen=maxlen,
                  truncating=truncating, padding=padding, scaling="none", test_fraction=0.3, val_fraction=0.2)
    data = load_dataset(cfg, seed=seed)
    seen = []
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        for row, label in zip(x, y):
            steps, real = unpadded(row, padding)
            k = len(steps)
            assert real[:k].all() if padding == "post" else real[len(real) - k:].all()
            i = int(steps[0, 0])
            full = seqs[i]
            kept = full[-data.timesteps:] if truncating == "pre" else full[:data.timesteps]
            assert np.array_equal(steps, kept.astype(np.float32))
            assert data.artifacts["inputs"]["classes"][int(label)] == labels[i]
            seen.append(i)
    assert sorted(seen) == list(range(n))  # each sequence once: no sequence across splits
    assert data.timesteps == (maxlen or max(len(s) for s in seqs))


def test_wide_table_step_major_with_shorter_rows_left_empty_at_the_end(tmp_path):
    path = tmp_path / "w.csv"
    rows = [["id", "y"] + [f"x{i}" for i in range(6)]]
    for i in range(12):
        cells = [str(10 * i + j) for j in range(6)]
        if i % 3 == 0:
            cells[4:] = ["", ""]  # the third step is missing: a sequence of 2 steps
        rows.append([f"r{i}", str(i % 2)] + cells)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    cfg = seq_cfg(path=str(path), shape=[3, 2], id_column="id", label_column="y", scaling="none", test_fraction=0.25,
                  val_fraction=0)
    data = load_dataset(cfg, seed=0)
    assert data.spec.timesteps == 3 and data.spec.features == 2 and data.extra["layout"] == "wide"
    for row in np.concatenate([data.x_train, data.x_test]):
        i = int(row[0, 0]) // 10
        expected = np.arange(6, dtype=np.float32).reshape(3, 2) + 10 * i
        if i % 3 == 0:
            expected[2] = MASK_VALUE
        assert np.array_equal(row, expected)


def test_npz_with_lengths_and_a_numeric_target(tmp_path):
    rng = np.random.RandomState(1)
    x = rng.normal(size=(30, 5, 3))
    lengths = rng.randint(1, 6, 30)
    y = x[:, 0, 0] * 10 + 100
    np.savez(tmp_path / "d.npz", X=x, y=y, lengths=lengths)
    cfg = seq_cfg(path=str(tmp_path / "d.npz"), task="regression", val_fraction=0)
    data = load_dataset(cfg, seed=0)
    assert data.task == "regression" and data.spec.outputs == 1 and spec_for(cfg) == data.spec
    ts = data.artifacts["inputs"]["target_scaling"]
    assert data.units is not None
    assert np.allclose(data.units.convert(data.y_test.reshape(-1, 1)), data.units.y, atol=1e-4)
    assert set(np.round(data.units.y.ravel(), 6)) <= set(np.round(y, 6))  # the file's own numbers
    assert abs(float(np.mean(data.y_train))) < 1e-5 and ts["scale"] > 1  # the target is standardized on train
    n_real = (~(data.x_train == MASK_VALUE).all(axis=2)).sum(axis=1)
    assert sorted(n_real.tolist() + (~(data.x_test == MASK_VALUE).all(axis=2)).sum(axis=1).tolist()) == \
        sorted(lengths.tolist())


def test_digits_ship_with_scikit_learn():
    cfg = seq_cfg(builtin="digits")
    data = load_dataset(cfg, seed=0)
    assert data.spec.timesteps == 8 and data.spec.features == 8 and data.num_classes == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797


BAD = [
    # (id, file text, config keys, the fragment the one line must hold)
    ("label-changes", "seq,t,a,label\ns1,0,1,x\ns1,1,2,y\ns2,0,1,y\n", {"id_column": "seq"},
     "d.csv:3: sequence 's1' has label 'y' here but 'x' at"),
    ("not-a-number", "seq,t,a,label\ns1,0,1,x\ns1,1,abc,x\n", {"id_column": "seq"},
     "d.csv:3: column 'a' holds 'abc', which is not a number"),
    ("empty-cell", "seq,t,a,b,label\ns1,0,1,,x\n", {"id_column": "seq"}, "d.csv:2: column 'b' is empty"),
    ("order-twice", "seq,t,a,label\ns1,0,1,x\ns1,0,2,x\n", {"id_column": "seq", "order_column": "t"},
     "d.csv:3: sequence 's1' has order '0' twice (also at"),
    ("no-id-column", "seq,t,a,label\ns1,0,1,x\n", {"id_column": "sid"}, "d.csv:1: no column 'sid' in the header"),
    ("one-class", "seq,a,label\ns1,1,x\ns2,2,x\n", {"id_column": "seq"}, "every sequence has the label 'x'"),
    ("wide-shape", "a,b,c,label\n1,2,3,x\n", {"shape": [2, 2]},
     "d.csv:1: 3 feature column(s), but 'data.shape' [2, 2] needs steps x features = 4"),
    ("wide-hole", "a,b,c,d,label\n1,,3,4,x\n", {"shape": [2, 2]},
     "d.csv:2: column 'b' (step 0, feature 1) is empty inside the sequence"),
    ("regression-label", "seq,a,label\ns1,1,big\n", {"id_column": "seq", "task": "regression"},
     "d.csv:2: label 'big' is not a number"),
]


@pytest.mark.parametrize("text,keys,fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_file_problems_name_the_file_line_and_column(tmp_path, text, keys, fragment):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_dataset(seq_cfg(path=str(path), **keys), seed=0)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


NPZ_BAD = [
    ("no-X", {"x": np.zeros((2, 2, 1)), "y": np.zeros(2)}, "no array 'X' in the .npz (found ['x', 'y'])"),
    ("y-length", {"X": np.zeros((3, 2, 1)), "y": np.zeros(2)}, "array 'y' has shape (2,); expected (3,)"),
    ("lengths-range", {"X": np.zeros((2, 2, 1)), "y": np.array([0, 1]), "lengths": np.array([1, 3])},
     "lengths[1] is 3; each length must be 1 to 2"),
    ("nan", {"X": np.array([[[0.0], [np.nan]], [[1.0], [1.0]]]), "y": np.array([0, 1])}, "X[0, 1, 0] is nan"),
]


@pytest.mark.parametrize("arrays,fragment", [b[1:] for b in NPZ_BAD], ids=[b[0] for b in NPZ_BAD])
def test_npz_problems_are_one_line(tmp_path, arrays, fragment):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as info:
        load_dataset(seq_cfg(path=str(tmp_path / "d.npz")), seed=0)
    assert fragment in str(info.value), str(info.value)


def test_a_sequence_in_two_files_is_refused(tmp_path):
    rng = np.random.RandomState(0)
    train = write_long(tmp_path / "train.csv", steps_of(rng, 6), ["a", "b"] * 3)
    test = write_long(tmp_path / "test.csv", steps_of(rng, 2), ["a", "b"], ids=["t0", "s3"])
    with pytest.raises(DataError, match=r"test.csv:\d+: sequence 's3' is in data.test_path and in data.path too"):
        load_dataset(seq_cfg(path=str(train), test_path=str(test), id_column="seq", order_column="t"), seed=0)
