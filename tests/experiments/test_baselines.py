"""Classical baselines: each one on tiny data against a formula or scikit-learn run by hand, the very rows a
recurrent run of the same config trains and is tested on, the cache, baseline: none, and the verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import imdb, load_dataset
from gru_lab.data.base import Dataset
from gru_lab.experiments import baselines
from gru_lab.experiments.baselines import Baseline, baselines_for, fit_baselines, fitted_rows
from gru_lab.experiments.verdicts import FAILS, HOLDS, INCONCLUSIVE, baseline_verdict
from tests.data.test_imdb import write_tree

# Eight reviews a label and split (a 0.25 validation split leaves 12 of the 16 training reviews), words shared
# enough for the vectorizer's min_df=2 to keep n-grams; the test reviews mix in the other label's words.
FILLER = ["really", "truly", "quite", "so", "very", "rather", "most", "all"]
WORDS = {"pos": ("great", "fun", "loved"), "neg": ("bad", "dull", "awful")}
REVIEWS = {
    f"{split}/{label}/{i}_{7 if label == 'pos' else 2}.txt":
        f"The film was {w}. A {w} plot, {FILLER[i]} {w}." if split == "train" else
        f"A {w} film, {FILLER[-1 - i]} {WORDS['neg' if label == 'pos' else 'pos'][i % 3]} at times."
    for split in ("train", "test") for label in WORDS for i, w in enumerate((WORDS[label] * 3)[:8])
}


def imdb_config(tmp_path, **train) -> dict:
    return {"name": "b", "seed": 1,
            "data": {"name": "imdb", "path": str(tmp_path / "src" / "aclImdb"), "maxlen": 4, "num_words": 12,
                     "cache_dir": str(tmp_path / "cache")},
            "model": {"cell": "gru", "units": 2, "embedding_dim": 2},
            "train": {"epochs": 1, "batch_size": 8, **train}, "output": {"dir": str(tmp_path / "results")}}


def regression(x: np.ndarray, y: np.ndarray, **inputs) -> Dataset:
    """A regression Dataset from arrays: train and test the same rows (the formulas below do not fit)."""
    return Dataset("toy", "regression", "real", x, y, x, y, artifacts={"inputs": inputs} if inputs else {})


SINE = {"name": "sine", "window": 12, "n_train": 40, "n_val": 8, "n_test": 16}


# ----------------------------------------------------------------------------- each baseline on tiny data


def test_tfidf_sees_every_word_of_each_review_as_sklearn_on_the_raw_text(tmp_path):
    """The baseline reads Dataset.documents: the same n-grams and predictions as TfidfVectorizer on the reviews'
    raw text with gru-lab's tokenizer, although the model's x keeps only 4 ids of at most 12."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    write_tree(tmp_path / "src", REVIEWS)
    cfg = config_from_raw(imdb_config(tmp_path, validation_split=0.25), "x")
    data = load_dataset(cfg.data, cfg.seed)
    found = fit_baselines(cfg, data).items
    assert [b.name for b in found] == ["tfidf_logreg"] and found[0].n_train == 12 and found[0].n_test == 16

    # By hand, from the files: reviews in the loader's order (train shuffled by the seed, test by name).
    _, vocab, _ = imdb._load_raw(cfg.data, cfg.data.path)
    every_word = {w: rank + imdb.INDEX_FROM + 1 for rank, w in enumerate(vocab)}  # no num_words cut
    by_ids = {}
    for rel, t in REVIEWS.items():
        ids = tuple(every_word.get(w, imdb.OOV) for w in imdb.tokenize(t))
        by_ids.setdefault(rel.split("/")[0], {})[ids] = (t, int(rel.split("/")[1] == "pos"))
    train = [by_ids["train"][tuple(data.documents["train"][i])] for i in range(16)]
    test = [by_ids["test"][tuple(data.documents["test"][i])] for i in range(16)]
    assert [label for _, label in train] == list(data.y_train) and [label for _, label in test] == list(data.y_test)
    vectorizer = TfidfVectorizer(tokenizer=imdb.tokenize, lowercase=False, token_pattern=None, dtype=np.float32,
                                 **baselines.TFIDF)
    features = vectorizer.fit_transform([t for t, _ in train[:12]])  # the recurrent run's 12 training rows
    model = LogisticRegression(C=baselines.LOGREG_C, solver="liblinear").fit(features, data.y_train[:12])
    predicted = model.predict(vectorizer.transform([t for t, _ in test]))
    assert found[0].value == pytest.approx(np.mean(predicted == data.y_test))
    assert f"({features.shape[1]:,} n-grams)" in found[0].sees and found[0].size == features.shape[1] + 1
    assert max(len(data.documents["train"][i]) for i in range(16)) > data.x_train.shape[1]  # more than x holds


def test_window_logistic_regression_on_real_valued_classification():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")  # linearly separable in the flattened window
    data = Dataset("toy", "binary", "real", x, y, x, y)
    cfg = config_from_raw({"data": {"name": "sine"}}, "x")
    (found,) = fit_baselines(cfg, data).items
    assert found.name == "window_logreg" and found.value == 1.0
    assert found.size == 10 + 1 + 2 * 10  # coefficients, intercept, the scaler's mean and scale per input
    assert "5 steps x 2 feature(s)" in found.sees


def test_regression_baselines_equal_their_formulas():
    """Last value, seasonal naive and ridge on two series of period 4 (the second shifted), forecast 3 steps
    ahead in the series loader's layout (horizon-major, targets first), with one more input feature."""
    season = np.array([0.0, 1.0, 3.0, -1.0])
    t = np.arange(10)[:, None] + np.arange(8 + 3)[None, :]
    both = np.stack([season[t % 4], season[(t + 1) % 4]], axis=-1)  # (10, 11, 2)
    x = np.concatenate([both[:, :8], np.ones((10, 8, 1))], axis=-1)  # 8 steps: two targets and a constant
    y = both[:, 8:].reshape(10, 3 * 2)  # step 1 of both targets, then step 2, then step 3
    data = regression(x, y, targets=["a", "b"], horizon=3)
    cfg = config_from_raw({"data": {"name": "sine", "window": 8}, "baseline": {"period": 4}}, "x")
    found = {b.name: b for b in fit_baselines(cfg, data).items}
    last = np.tile(x[:, -1, :2], (1, 3))
    assert found["last_value"].value == pytest.approx(np.mean((y - last) ** 2))
    assert found["last_value"].value > 0.5
    assert found["seasonal_naive"].value == 0.0  # a period of 4 repeats exactly
    assert found["ridge"].value < 1e-3 and found["ridge"].size == 6 * 24 + 6 + 2 * 24
    assert fit_baselines(cfg, data).best().name == "seasonal_naive"
    one = regression(x[:, :, :1], y[:, :1])  # no inputs record: one target, the first feature, one step
    assert {b.name: b for b in fit_baselines(cfg, one).items}["last_value"].value == \
        pytest.approx(np.mean((y[:, 0] - x[:, -1, 0]) ** 2))


def test_one_class_in_the_training_rows_is_a_note_not_a_crash():
    x = np.zeros((6, 3, 1), "float32")
    data = Dataset("toy", "binary", "real", x, np.ones(6, "float32"), x, np.ones(6, "float32"))
    found = fit_baselines(config_from_raw({"data": {"name": "sine"}}, "x"), data)
    assert found.items == [] and "one class" in found.note


# ----------------------------------------------------------------------------- the recurrent run's own rows


def _spy(monkeypatch):
    """What a real training run hands to model.fit and model.evaluate."""
    from gru_lab.training import pipeline

    seen = {}
    real_train, real_eval = pipeline.train_dataset, pipeline.eval_dataset

    def train_dataset(x, y, *args, **kwargs):
        seen["fit"] = (np.array(x), np.array(y))
        return real_train(x, y, *args, **kwargs)

    def eval_dataset(x, y, *args, **kwargs):
        if y is not None:
            seen["evaluate"] = (np.array(x), np.array(y))  # the last one: the test set
        return real_eval(x, y, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train_dataset", train_dataset)
    monkeypatch.setattr(pipeline, "eval_dataset", eval_dataset)
    return seen


@pytest.mark.parametrize("case", ["imdb-validation-split",
                                  pytest.param("adding-validation-split", marks=pytest.mark.slow),
                                  pytest.param("sine-own-validation", marks=pytest.mark.slow)])
def test_baselines_fit_the_rows_a_recurrent_run_fits_and_score_its_test_rows(case, tmp_path, monkeypatch):
    from gru_lab.training.fit import train

    if case.startswith("imdb"):
        write_tree(tmp_path / "src", REVIEWS)
        raw = imdb_config(tmp_path, validation_split=0.25)
    elif case.startswith("sine"):
        raw = {"data": SINE, "model": {"units": 2}, "train": {"epochs": 1}}
    else:
        raw = {"data": {"name": "adding", "length": 6, "n_train": 40, "n_val": 0, "n_test": 8},
               "model": {"units": 2}, "train": {"epochs": 1, "validation_split": 0.3}}
    cfg = config_from_raw(raw, "x")
    data = load_dataset(cfg.data, cfg.seed)
    seen = _spy(monkeypatch)
    metrics = train(cfg, data).metrics
    rows = fitted_rows(cfg, data)
    np.testing.assert_array_equal(seen["fit"][0], data.x_train[rows])
    np.testing.assert_array_equal(seen["fit"][1], data.y_train[rows])
    np.testing.assert_array_equal(seen["evaluate"][0], data.x_test)
    for b in fit_baselines(cfg, data).items:
        assert (b.n_train, b.n_test) == (metrics["n_train_fit"], metrics["n_test"])
    if data.documents is not None:  # the texts are those rows' reviews: cut and padded, each is its x row
        for split, x in (("train", seen["fit"][0]), ("test", seen["evaluate"][0])):
            docs = data.documents[split].rows(rows) if split == "train" else data.documents[split]
            assert len(docs) == len(x)
            for i in range(len(x)):
                whole = np.concatenate([[imdb.START], docs[i]])[-cfg.data.maxlen:]
                whole[whole >= cfg.data.num_words] = imdb.OOV
                np.testing.assert_array_equal(x[i][x[i] != 0], whole)


# ----------------------------------------------------------------------------- once per plan, cached


def test_fitted_once_per_data_config_and_reused_from_the_cache(tmp_path):
    short = config_from_raw({"data": SINE}, "x")
    long_ = config_from_raw({"data": {**SINE, "window": 20}}, "x")
    other_cell = config_from_raw({"data": SINE, "model": {"cell": "lstm"}, "train": {"seed": 9}}, "x")
    loads = []

    def load(data_cfg, seed):
        loads.append(data_cfg.window)
        return load_dataset(data_cfg, seed)

    first = baselines_for([short, other_cell, long_], tmp_path, load)
    assert loads == [12, 20] and len(first) == 2  # the cell and train seed do not matter; the data does
    files = sorted((tmp_path / "baselines").iterdir())
    assert [f.name for f in files] == sorted(f"{k}.json" for k in first)  # nothing else: no temporary file left

    def unreachable(*_):
        raise AssertionError("a cached baseline must not load the data again")

    again = baselines_for([short, long_], tmp_path, unreachable)
    assert all(b.cached for b in again.values())
    assert {k: [x.value for x in b.items] for k, b in again.items()} == \
        {k: [x.value for x in b.items] for k, b in first.items()}

    files[0].write_text("{ damaged")  # a damaged cache file is fitted again, not trusted
    loads.clear()
    refit = baselines_for([short, long_], tmp_path, load)
    assert len(loads) == 1 and sum(not b.cached for b in refit.values()) == 1
    assert json.loads(files[0].read_text())["key"] in refit


def test_interrupted_plan_only_reads_the_cache_and_none_fits_nothing(tmp_path):
    cfg = config_from_raw({"data": SINE}, "x")
    (found,) = baselines_for([cfg], tmp_path, fit=False).values()
    assert found.items == [] and "interrupted" in found.note and not (tmp_path / "baselines").exists()
    off = config_from_raw({"data": SINE, "baseline": "none"}, "x")
    (found,) = baselines_for([off], tmp_path, load=lambda *_: pytest.fail("baseline: none loads nothing")).values()
    assert found.items == [] and found.note == "baseline: none"


def test_baseline_none_turns_off_rows_and_verdicts_and_keeps_run_ids(tmp_path):
    from gru_lab.experiments.baselines import with_settings
    from gru_lab.experiments.compare import CompareResult, plan_compare, summarize
    from gru_lab.experiments.executor import RunOutcome
    from tests.experiments.test_compare import tiny, write

    raw = tiny(tmp_path / "results")
    on = plan_compare(write(tmp_path / "on.yaml", raw), cells=["gru"], seeds=1)
    off = plan_compare(write(tmp_path / "off.yaml", {**raw, "baseline": "none"}), cells=["gru"], seeds=1)
    assert [r.run_id for r in on.runs] == [r.run_id for r in off.runs]  # the baseline is not part of a run
    found = baselines_for([with_settings(r.cfg, off.base) for r in off.runs], off.folder)
    comp = summarize(CompareResult(off, [RunOutcome(r, "not run") for r in off.runs], False, "inline", 0.0, found))
    assert list(comp.table.kind) == ["recurrent"] and "beats_baseline" not in comp.table
    assert not any("classical baseline" in v.claim for v in comp.verdicts)
    assert not (tmp_path / "results" / "cmp" / "baselines").exists()


# ----------------------------------------------------------------------------- the verdict

BEST = Baseline("tfidf_logreg", "TF-IDF", "test_accuracy", 0.90, 30.0, 1000, "text", 20, 25)


@pytest.mark.parametrize("values,higher,status", [
    ([0.91, 0.92], True, HOLDS),
    ([0.86, 0.87, 0.85], True, FAILS),
    ([0.89, 0.91], True, INCONCLUSIVE),  # seeds on both sides
    ([0.95], True, INCONCLUSIVE),  # one run: no spread
    ([0.90, 0.90], True, FAILS),  # equal is not better
    ([0.80, 0.85], False, HOLDS),  # mse: lower is better
    ([], True, INCONCLUSIVE),
], ids=["every-seed-better", "every-seed-worse", "straddles", "one-seed", "ties", "mse-lower", "no-runs"])
def test_baseline_verdict(values, higher, status):
    v = baseline_verdict("GRU(8)", values, BEST, "accuracy", higher)
    assert v.status == status and v.claim == "GRU(8) beats the classical baseline"
    if values:
        assert v.numbers["difference"] == pytest.approx(sum(values) / len(values) - 0.90)
        assert "TF-IDF 0.9 (fit in 30 s, 1,000 numbers)" in v.detail


def test_baseline_verdict_without_a_baseline_says_why():
    v = baseline_verdict("GRU(8)", [0.9, 0.91], None, "accuracy", True, "classical baseline not fitted: no data")
    assert v.status == INCONCLUSIVE and "no data" in v.detail


def test_series_file_baselines_match_the_loaders_own_last_value(tmp_path):
    """A series of the user's (data.name: series, two targets, 3 steps ahead): the last value equals the loader's
    own naive forecast, and the seasonal naive of the series' period is exact."""
    t = np.arange(150)
    rows = ["a,b,c"] + [f"{np.sin(2 * np.pi * i / 6):.6f},{(i % 6) ** 2},{i % 2}" for i in t]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    cfg = config_from_raw({"data": {"name": "series", "path": str(tmp_path / "s.csv"), "targets": ["a", "b"],
                                    "features": ["c"], "window": 12, "horizon": 3},
                           "baseline": {"period": 6}}, "x")
    data = load_dataset(cfg.data, cfg.seed)
    found = {b.name: b for b in fit_baselines(cfg, data).items}
    assert found["last_value"].value == pytest.approx(data.extra["last_value_mse"])
    assert found["seasonal_naive"].value == pytest.approx(0.0, abs=1e-10)
    assert found["ridge"].n_train == len(data.x_train) and found["ridge"].n_test == len(data.x_test)
