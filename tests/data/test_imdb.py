"""gru_lab.data.imdb: id conventions, padding, sources, cache, slices, errors, and facts of the real archive."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from gru_lab.config import ImdbData
from gru_lab.data import imdb
from gru_lab.errors import DataError
from tests.conftest import REAL_IMDB as REAL
from tests.conftest import needs_real_imdb as needs_real

# A tiny aclImdb whose train-split word counts are known by hand:
#   bad 4, great 4, movie 4 (ties: alphabetical) -> ids 4, 5, 6; acting 2, loved 2 -> 7, 8;
#   boring, fun, it, plot, the (1 each) -> 9 .. 13. "superb", "awful", "holes" occur only in test -> OOV 2.
FAKE = {
    "train/pos/0_9.txt": "Great great movie<br />loved it!",
    "train/pos/1_8.txt": "Great fun, loved the movie.",
    "train/pos/2_10.txt": "great acting",
    "train/neg/0_1.txt": "Bad movie, bad plot.",
    "train/neg/1_2.txt": "bad bad acting",
    "train/neg/2_3.txt": "boring movie",
    "test/pos/0_9.txt": "Great movie, superb!",
    "test/pos/1_7.txt": "loved it",
    "test/pos/2_8.txt": "fun fun fun",
    "test/neg/0_2.txt": "Bad, boring movie. Awful.",
    "test/neg/1_1.txt": "bad",
    "test/neg/2_4.txt": "plot<br/>holes",
}
WORD_IDS = {"bad": 4, "great": 5, "movie": 6, "acting": 7, "loved": 8, "boring": 9, "fun": 10, "it": 11, "plot": 12,
            "the": 13}
# Each review as ids with the start marker, and its label.
TRAIN = [([1, 5, 5, 6, 8, 11], 1), ([1, 5, 10, 8, 13, 6], 1), ([1, 5, 7], 1),
         ([1, 4, 6, 4, 12], 0), ([1, 4, 4, 7], 0), ([1, 9, 6], 0)]
TEST = [([1, 5, 6, 2], 1), ([1, 8, 11], 1), ([1, 10, 10, 10], 1),
        ([1, 4, 9, 6, 2], 0), ([1, 4], 0), ([1, 12, 2], 0)]


def write_tree(parent: Path, reviews: dict[str, str] = FAKE) -> Path:
    """parent/aclImdb/... with one file per review; returns the aclImdb folder."""
    root = parent / "aclImdb"
    for rel, text in reviews.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def write_archive(root: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(root, arcname="aclImdb")
    return target


def rows(x: np.ndarray, y: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
    """Order-free view of a split: sorted (row, label) pairs (train is shuffled)."""
    return sorted((tuple(int(v) for v in r), int(label)) for r, label in zip(x, y))


def padded(reviews, maxlen, padding="pre", truncating="pre", num_words=10_000):
    """Hand-padded expectation for a few short sequences (keras.utils.pad_sequences is checked separately)."""
    out = []
    for seq, label in reviews:
        seq = [i if i < num_words else 2 for i in seq]
        seq = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        zeros = [0] * (maxlen - len(seq))
        out.append((tuple(zeros + seq if padding == "pre" else seq + zeros), label))
    return sorted(out)


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "src")


@pytest.fixture
def make_cfg(tmp_path):
    def make(path, **kw) -> ImdbData:
        kw.setdefault("cache_dir", str(tmp_path / "cache"))
        return ImdbData(name="imdb", path=str(path), **kw)
    return make


# ----------------------------------------------------------------------------- tokenizer and ids


@pytest.mark.parametrize("text, tokens", [
    ("Great great movie<br />loved it!", ["great", "great", "movie", "loved", "it"]),
    ("plot<br/>holes<BR>end<br >x", ["plot", "holes", "end", "x"]),
    ("Don't stop: 10/10, well-made 'film' O'Brien", ["don't", "stop", "10", "10", "well", "made", "film", "o'brien"]),
    ("Café  naïve\tsnake_case", ["café", "naïve", "snake", "case"]),
    ("", []),
], ids=["br-and-punctuation", "br-variants", "apostrophes-digits-hyphens", "unicode-underscore", "empty"])
def test_tokenize(text, tokens):
    assert imdb.tokenize(text) == tokens


def test_ids_follow_keras_conventions(tree, make_cfg):
    ds = imdb.load(make_cfg(tree, num_words=100, maxlen=8, padding="post", truncating="post"), seed=0)
    assert rows(ds.x_train, ds.y_train) == padded(TRAIN, 8, "post", "post")
    # "superb", "awful", "holes" are only in test: the vocabulary comes from train alone.
    assert rows(ds.x_test, ds.y_test) == padded(TEST, 8, "post", "post")
    assert ds.artifacts["vocabulary"]["word_index"] == WORD_IDS


def test_ids_at_or_above_num_words_become_oov(tree, make_cfg):
    ds = imdb.load(make_cfg(tree, num_words=7, maxlen=6), seed=0)
    assert rows(ds.x_train, ds.y_train) == padded(TRAIN, 6, num_words=7)
    assert ((1, 5, 5, 6, 2, 2), 1) in rows(ds.x_train, ds.y_train)  # loved (8), it (11) -> 2
    assert ds.x_train.max() == 6 and ds.vocab_size == 7
    assert ds.artifacts["vocabulary"]["word_index"] == {"bad": 4, "great": 5, "movie": 6}


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_padding_and_truncating(tree, make_cfg, padding, truncating):
    ds = imdb.load(make_cfg(tree, maxlen=4, padding=padding, truncating=truncating), seed=0)
    got = rows(ds.x_train, ds.y_train)
    long_review = (5, 6, 8, 11) if truncating == "pre" else (1, 5, 5, 6)  # [1, 5, 5, 6, 8, 11]
    short_review = (0, 1, 9, 6) if padding == "pre" else (1, 9, 6, 0)  # [1, 9, 6]
    assert (long_review, 1) in got and (short_review, 0) in got
    assert got == padded(TRAIN, 4, padding, truncating)
    assert ds.padding == padding and ds.artifacts["vocabulary"]["truncating"] == truncating


def test_padding_matches_keras_pad_sequences(tree, make_cfg):
    from keras.utils import pad_sequences

    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            ds = imdb.load(make_cfg(tree, maxlen=4, padding=padding, truncating=truncating), seed=0)
            want = pad_sequences([s for s, _ in TRAIN], maxlen=4, padding=padding, truncating=truncating)
            assert rows(ds.x_train, ds.y_train) == rows(want, [label for _, label in TRAIN])


def test_no_review_is_dropped_when_maxlen_is_short(tree, make_cfg):
    ds = imdb.load(make_cfg(tree, maxlen=2), seed=0)
    assert ds.x_train.shape == (6, 2) and ds.x_test.shape == (6, 2)
    assert (ds.x_train != 0).all()  # every review is at least 2 ids long (start + a word)


def test_dataset_record(tree, make_cfg):
    ds = imdb.load(make_cfg(tree, num_words=50, maxlen=4), seed=0)
    assert (ds.name, ds.task, ds.input_kind, ds.vocab_size, ds.padding) == ("imdb", "binary", "tokens", 50, "pre")
    assert ds.x_train.dtype == np.int32 and ds.x_test.dtype == np.int32
    assert ds.y_train.dtype == np.float32 and set(ds.y_train.tolist()) == {0.0, 1.0}
    assert ds.x_val is None and ds.y_val is None
    assert (ds.timesteps, ds.features, ds.outputs) == (4, 1, 1)
    extra = json.loads(json.dumps(ds.extra))  # must fit in metrics.json
    assert extra["source"] == str(tree) and extra["n_train"] == 6 and extra["n_test"] == 6
    assert extra["num_words"] == 50 and extra["maxlen"] == 4 and extra["train_vocabulary"] == 10
    # Lengths with the start marker: train 6 6 3 5 4 3, test 4 4 4 5 2 3 -> 4 of 12 exceed maxlen 4.
    assert extra["truncated_fraction"] == round(4 / 12, 4)
    assert extra["mean_review_tokens"] == 3.0  # (21 + 15) words / 12 reviews
    assert extra["cache_hit"] is False
    vocab = json.loads(json.dumps(ds.artifacts))["vocabulary"]
    assert vocab == {"word_index": WORD_IDS, "num_words": 50, "maxlen": 4, "padding": "pre",
                     "truncating": "pre", "tokenizer": imdb.TOKENIZER_VERSION}


def test_as_real_gives_raw_ids_as_one_float_feature(tree, make_cfg):
    tokens = imdb.load(make_cfg(tree, maxlen=5), seed=1)
    real = imdb.load(make_cfg(tree, maxlen=5, as_real=True), seed=1)
    assert real.input_kind == "real" and real.features == 1 and real.vocab_size is None
    assert real.x_train.dtype == np.float32 and real.x_train.shape == (6, 5, 1) and real.x_test.shape == (6, 5, 1)
    np.testing.assert_array_equal(real.x_train[..., 0], tokens.x_train.astype(np.float32))
    np.testing.assert_array_equal(real.y_train, tokens.y_train)


@pytest.mark.parametrize("as_real", [False, True], ids=["tokens", "real"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_spec_known_without_loading_matches_the_loaded_data(tree, make_cfg, as_real, padding):
    from gru_lab.data import spec_for

    cfg = make_cfg(tree, num_words=20, maxlen=7, padding=padding, as_real=as_real)
    assert imdb.load(cfg, seed=0).spec == spec_for(cfg)


# ----------------------------------------------------------------------------- sources


def test_folder_parent_folder_and_archive_give_identical_arrays(tree, make_cfg, tmp_path):
    archive = write_archive(tree, tmp_path / "aclImdb_v1.tar.gz")
    loaded = [imdb.load(make_cfg(p, maxlen=5), seed=3) for p in (tree, tree.parent, archive)]
    for other in loaded[1:]:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(loaded[0], name), getattr(other, name))
        assert other.artifacts == loaded[0].artifacts
    assert loaded[2].extra["source"] == str(archive)


def test_resolve_source_prefers_path_then_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GRU_LAB_IMDB", str(tmp_path / "from-env"))
    assert imdb.resolve_source(ImdbData(name="imdb", path="/data/aclImdb")) == "/data/aclImdb"
    assert imdb.resolve_source(ImdbData(name="imdb")) == str(tmp_path / "from-env")
    monkeypatch.setenv("GRU_LAB_IMDB", "")
    assert imdb.resolve_source(ImdbData(name="imdb")) is None
    monkeypatch.delenv("GRU_LAB_IMDB")
    assert imdb.resolve_source(ImdbData(name="imdb")) is None


def test_env_var_is_used_when_path_is_unset(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("GRU_LAB_IMDB", str(tree))
    ds = imdb.load(ImdbData(name="imdb", maxlen=3, cache_dir=str(tmp_path / "c")), seed=0)
    assert ds.extra["source"] == str(tree) and ds.x_train.shape == (6, 3)


@pytest.fixture
def fake_keras(monkeypatch):
    """keras.datasets.imdb with no network: load_data returns reviews of 4, 10, 50 and 3 ids."""
    monkeypatch.delenv("GRU_LAB_IMDB", raising=False)
    calls = []

    def load_data(**kwargs):
        calls.append(kwargs)
        x_train = np.array([[1, 14, 22, 16], [1] + list(range(4, 13)), [1] + [5] * 49, [1, 2, 20]], dtype=object)
        x_test = np.array([[1, 30, 31], [1] + [7] * 20], dtype=object)
        return (x_train, np.array([1, 0, 1, 0])), (x_test, np.array([0, 1]))

    monkeypatch.setattr("keras.datasets.imdb.load_data", load_data)
    monkeypatch.setattr("keras.datasets.imdb.get_word_index", lambda **_: {"the": 1, "and": 2, "zebra": 20_000})
    return calls


def test_keras_source_keeps_every_review(fake_keras):
    cfg = ImdbData(name="imdb", maxlen=5, padding="post", truncating="pre")
    ds = imdb.load(cfg, seed=0)
    assert fake_keras == [{"num_words": 10_000}]  # never maxlen: Keras would drop the long reviews
    assert ds.x_train.shape == (4, 5) and ds.x_test.shape == (2, 5)
    assert rows(ds.x_train, ds.y_train) == sorted([
        ((1, 14, 22, 16, 0), 1), ((8, 9, 10, 11, 12), 0), ((5, 5, 5, 5, 5), 1), ((1, 2, 20, 0, 0), 0)])
    assert rows(ds.x_test, ds.y_test) == sorted([((1, 30, 31, 0, 0), 0), ((7, 7, 7, 7, 7), 1)])
    assert ds.extra["source"] == "keras.datasets.imdb" and ds.extra["truncated_fraction"] == 0.5
    assert ds.artifacts["vocabulary"]["word_index"] == {"the": 4, "and": 5}


def test_keras_source_without_word_index_still_loads(fake_keras, monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://example.invalid/imdb_word_index.json: None -- no network")

    monkeypatch.setattr("keras.datasets.imdb.get_word_index", offline)
    ds = imdb.load(ImdbData(name="imdb", maxlen=5), seed=0)
    assert ds.artifacts["vocabulary"]["word_index"] == {}
    assert ds.extra["word_index"].startswith("unavailable")


def test_failed_download_is_a_data_error_with_the_hint(monkeypatch):
    monkeypatch.delenv("GRU_LAB_IMDB", raising=False)

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz: "
                        "None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("keras.datasets.imdb.load_data", offline)
    with pytest.raises(DataError) as err:
        imdb.load(ImdbData(name="imdb"), seed=0)
    message = str(err.value)
    assert "could not be downloaded" in message and "name resolution" in message
    assert "data.path" in message and "GRU_LAB_IMDB" in message and "aclImdb_v1.tar.gz" in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- cache


def test_second_load_hits_the_cache_with_identical_arrays(tree, make_cfg, tmp_path):
    first = imdb.load(make_cfg(tree, maxlen=5), seed=0)
    second = imdb.load(make_cfg(tree, maxlen=7, padding="post"), seed=0)  # maxlen/padding apply after the cache
    third = imdb.load(make_cfg(tree, maxlen=5), seed=0)
    assert (first.extra["cache_hit"], second.extra["cache_hit"], third.extra["cache_hit"]) == (False, True, True)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(third, name))
    assert rows(second.x_train, second.y_train) == padded(TRAIN, 7, "post")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(first.extra["cache_file"]).name]


def test_changed_content_invalidates_the_cache(tree, make_cfg):
    imdb.load(make_cfg(tree), seed=0)
    (tree / "train/pos/2_10.txt").write_text("superb acting, superb", encoding="utf-8")
    ds = imdb.load(make_cfg(tree), seed=0)
    assert ds.extra["cache_hit"] is False
    # great drops to 3 (id 6 after bad, movie); superb now has 2, after acting and loved alphabetically.
    word_index = ds.artifacts["vocabulary"]["word_index"]
    assert [word_index[w] for w in ("bad", "movie", "great", "acting", "loved", "superb")] == [4, 5, 6, 7, 8, 9]


def test_changed_mtime_invalidates_the_cache(tree, make_cfg):
    imdb.load(make_cfg(tree), seed=0)
    review = tree / "test/neg/1_1.txt"
    st = review.stat()
    os.utime(review, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert imdb.load(make_cfg(tree), seed=0).extra["cache_hit"] is False
    assert imdb.load(make_cfg(tree), seed=0).extra["cache_hit"] is True


def test_changed_archive_invalidates_the_cache(tree, make_cfg, tmp_path):
    archive = write_archive(tree, tmp_path / "a.tar.gz")
    assert imdb.load(make_cfg(archive), seed=0).extra["cache_hit"] is False
    assert imdb.load(make_cfg(archive), seed=0).extra["cache_hit"] is True
    (tree / "test/pos/1_7.txt").write_text("loved it, loved it", encoding="utf-8")
    write_archive(tree, archive)
    assert imdb.load(make_cfg(archive), seed=0).extra["cache_hit"] is False


def test_tokenizer_version_invalidates_the_cache(tree, make_cfg, monkeypatch):
    imdb.load(make_cfg(tree), seed=0)
    monkeypatch.setattr(imdb, "TOKENIZER_VERSION", "test-tokenizer-2")
    ds = imdb.load(make_cfg(tree), seed=0)
    assert ds.extra["cache_hit"] is False
    assert ds.artifacts["vocabulary"]["tokenizer"] == "test-tokenizer-2"


@pytest.mark.parametrize("damage", [b"", b"not a zip file", b"PK\x03\x04" + b"\0" * 40],
                         ids=["empty", "garbage", "truncated-zip"])
def test_corrupt_cache_is_rebuilt(tree, make_cfg, damage):
    first = imdb.load(make_cfg(tree), seed=0)
    Path(first.extra["cache_file"]).write_bytes(damage)
    rebuilt = imdb.load(make_cfg(tree), seed=0)
    assert rebuilt.extra["cache_hit"] is False
    np.testing.assert_array_equal(rebuilt.x_train, first.x_train)
    assert imdb.load(make_cfg(tree), seed=0).extra["cache_hit"] is True


def test_unwritable_cache_dir_does_not_stop_the_load(tree, make_cfg, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ds = imdb.load(make_cfg(tree, cache_dir=str(blocker / "cache")), seed=0)
    assert ds.x_train.shape == (6, 200) and ds.extra["cache_hit"] is False and "cache_error" in ds.extra


def test_interrupted_cache_write_leaves_no_file(tree, make_cfg, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        imdb.load(make_cfg(tree), seed=0)
    assert list((tmp_path / "cache").iterdir()) == []


# ----------------------------------------------------------------------------- order and slices


def test_same_seed_same_arrays_and_train_is_shuffled(tree, make_cfg):
    a, b, c = (imdb.load(make_cfg(tree, maxlen=6), seed=s) for s in (5, 5, 6))
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x_train, c.x_train)
    # validation_split takes the last rows: they must not be one sorted block of labels.
    assert a.y_train.tolist() not in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_negative_and_huge_seeds_work(tree, make_cfg):
    for seed in (-1, 2**40):
        assert imdb.load(make_cfg(tree), seed=seed).x_train.shape == (6, 200)


def test_stratified_slices_keep_full_vocabulary_ids(tree, make_cfg):
    full = imdb.load(make_cfg(tree, maxlen=6), seed=2)
    part = imdb.load(make_cfg(tree, maxlen=6, n_train=4, n_test=2), seed=2)
    assert part.x_train.shape == (4, 6) and part.x_test.shape == (2, 6)
    assert part.y_train.sum() == 2 and part.y_test.sum() == 1
    assert set(rows(part.x_train, part.y_train)) <= set(rows(full.x_train, full.y_train))
    assert set(rows(part.x_test, part.y_test)) <= set(rows(full.x_test, full.y_test))
    assert part.artifacts == full.artifacts and part.extra["n_train"] == 4
    odd = imdb.load(make_cfg(tree, n_train=5, n_test=3), seed=2)
    assert (odd.y_train.sum(), odd.y_test.sum()) == (2, 1)  # the odd review is negative
    again = imdb.load(make_cfg(tree, maxlen=6, n_train=4, n_test=2), seed=2)
    np.testing.assert_array_equal(again.x_train, part.x_train)
    np.testing.assert_array_equal(again.x_test, part.x_test)


# ----------------------------------------------------------------------------- encode_texts


def test_encode_texts_reproduces_training_encoding(tree, make_cfg):
    ds = imdb.load(make_cfg(tree, num_words=9, maxlen=5, padding="post", truncating="post"), seed=0)
    vocab = json.loads(json.dumps(ds.artifacts["vocabulary"]))  # as predict reads vocabulary.json
    texts = [text for rel, text in FAKE.items() if rel.startswith("train/")]
    labels = [1 if "/pos/" in rel else 0 for rel in FAKE if rel.startswith("train/")]
    x = imdb.encode_texts(texts, vocab["word_index"], vocab["num_words"], vocab["maxlen"], vocab["padding"],
                          vocab["truncating"])
    assert x.dtype == np.int32 and x.shape == (6, 5)
    assert rows(x, labels) == rows(ds.x_train, ds.y_train)


def test_encode_texts_new_words_are_oov():
    x = imdb.encode_texts(["Great, SUPERB movie!<br />", "bad"], WORD_IDS, num_words=6, maxlen=6, padding="pre",
                          truncating="pre")
    assert x.tolist() == [[0, 0, 1, 5, 2, 2], [0, 0, 0, 0, 1, 4]]  # movie (6) is >= num_words


# ----------------------------------------------------------------------------- bad inputs


def _missing(tmp_path, tree):
    return tmp_path / "nowhere"


def _empty_dir(tmp_path, tree):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _no_test_neg(tmp_path, tree):
    return write_tree(tmp_path / "partial", {k: v for k, v in FAKE.items() if not k.startswith("test/neg/")}).parent


def _no_reviews_in_class(tmp_path, tree):
    root = write_tree(tmp_path / "hollow", {k: v for k, v in FAKE.items() if not k.startswith("train/pos/")})
    (root / "train/pos").mkdir()
    (root / "train/pos/README").write_text("not a review")
    return root


def _truncated_archive(tmp_path, tree):
    data = write_archive(tree, tmp_path / "full.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.tar.gz"


def _not_gzip(tmp_path, tree):
    (tmp_path / "reviews.csv").write_text("text,label\ngreat,1\n")
    return tmp_path / "reviews.csv"


def _archive_without_layout(tmp_path, tree):
    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)
    (other / "train/a.txt").write_text("great")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        tar.add(other, arcname="movies")
    return tmp_path / "other.tar.gz"


@pytest.mark.parametrize("make_path, phrase", [
    (_missing, "no such file or folder"),
    (_empty_dir, "the folder is empty"),
    (_no_test_neg, "missing folder(s)"),
    (_no_reviews_in_class, "no *.txt reviews in"),
    (_truncated_archive, "not a readable gzip-compressed tar archive"),
    (_not_gzip, "not a readable gzip-compressed tar archive"),
    (_archive_without_layout, "no reviews under aclImdb/train/neg"),
], ids=["missing-path", "empty-dir", "wrong-layout", "class-folder-without-reviews", "corrupt-archive",
        "not-a-gzip-file", "archive-without-layout"])
def test_bad_source_is_a_one_line_data_error(tmp_path, tree, make_cfg, make_path, phrase):
    path = make_path(tmp_path, tree)
    with pytest.raises(DataError) as err:
        imdb.load(make_cfg(path), seed=0)
    message = str(err.value)
    assert phrase in message and str(path) in message and "\n" not in message
    assert "aclImdb" in message  # says what was expected
    if make_path is _no_test_neg:
        assert "test/neg" in message and "train/neg" not in message


def test_error_names_the_env_var_when_it_gave_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GRU_LAB_IMDB", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="GRU_LAB_IMDB=.*gone: no such file or folder"):
        imdb.load(ImdbData(name="imdb", cache_dir=str(tmp_path / "c")), seed=0)


def test_unreadable_review_is_a_data_error(tree, make_cfg, monkeypatch):
    read_bytes = Path.read_bytes

    def guarded(self):
        if self.name == "1_2.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", guarded)
    with pytest.raises(DataError,
                       match=r"cannot read review .*train/neg/1_2\.txt \(PermissionError: Permission denied\)"):
        imdb.load(make_cfg(tree), seed=0)


def test_invalid_utf8_is_replaced_not_fatal(tree, make_cfg):
    (tree / "train/neg/2_3.txt").write_bytes(b"boring \xff\xfe movie")
    ds = imdb.load(make_cfg(tree, maxlen=6), seed=0)
    assert ((0, 0, 0, 1, 9, 6), 0) in rows(ds.x_train, ds.y_train)


def test_slice_larger_than_split_is_a_data_error(tree, make_cfg):
    with pytest.raises(DataError, match=r"'data.n_train' is 8, which needs 4 pos reviews, but the train split has 3"):
        imdb.load(make_cfg(tree, n_train=8), seed=0)


# ----------------------------------------------------------------------------- the real archive
# Marked slow: the first load tokenizes all 50,000 reviews.


@pytest.fixture(scope="session")
def real_slice(real_cache):
    """One full tokenization of the 50,000 reviews per session; later loads hit real_cache."""
    cfg = ImdbData(name="imdb", path=str(REAL), n_train=2000, n_test=1000, cache_dir=str(real_cache))
    return imdb.load(cfg, seed=0)


@needs_real
@pytest.mark.slow
def test_real_archive_vocabulary_matches_keras_ranks(real_slice):
    word_index = real_slice.artifacts["vocabulary"]["word_index"]
    # keras.datasets.imdb.get_word_index() ranks the, and, a, of as 1..4, i.e. ids 4..7.
    assert [word_index[w] for w in ("the", "and", "a", "of")] == [4, 5, 6, 7]
    assert len(word_index) == 10_000 - 4 and max(word_index.values()) == 9_999
    assert "br" not in word_index  # <br /> is markup, not a word
    extra = real_slice.extra
    assert extra["reviews_available"] == {"train": 25_000, "test": 25_000}
    assert 60_000 < extra["train_vocabulary"] < 120_000
    assert 200 < extra["mean_review_tokens"] < 260


@needs_real
@pytest.mark.slow
def test_real_archive_slice_shapes_and_balance(real_slice):
    ds = real_slice
    assert ds.x_train.shape == (2000, 200) and ds.x_test.shape == (1000, 200)
    assert ds.y_train.mean() == 0.5 and ds.y_test.mean() == 0.5
    assert 0 <= ds.x_train.min() and ds.x_train.max() < 10_000
    assert ((ds.x_train == 1).sum(axis=1) <= 1).all()  # one start marker, or none once truncated away
    assert (ds.x_train != 0).any(axis=1).all()
    assert (ds.x_train == 2).any()  # rarer words than the top 10,000 exist


@needs_real
@pytest.mark.slow
def test_real_archive_full_load_hits_cache_and_drops_nothing(real_slice, real_cache):
    cfg = ImdbData(name="imdb", path=str(REAL), cache_dir=str(real_cache))
    ds = imdb.load(cfg, seed=0)
    assert ds.extra["cache_hit"] is True
    assert ds.x_train.shape == (25_000, 200) and ds.x_test.shape == (25_000, 200)
    assert ds.extra["truncated_fraction"] > 0.3  # many reviews exceed maxlen, and all are kept
    assert ds.y_train.sum() == 12_500 and ds.y_test.sum() == 12_500


@pytest.mark.parametrize("padding,truncating", [("pre", "pre"), ("pre", "post"), ("post", "pre"), ("post", "post")])
def test_tensorflow_encoder_gives_encode_texts_ids(padding, truncating):
    """The SavedModel export's tokenizer (TensorFlow ops) against gru-lab's own, on punctuation, apostrophes,
    <br />, underscores, non-ASCII letters and case, and texts longer and shorter than maxlen."""
    import tensorflow as tf

    texts = ["Great movie!<br /><br />I LOVED it, don't miss... 'quoted' rock'n'roll a''b _under_score x_y",
             "Çà et là: naïve café — 10/10, Ünïcödé İstanbul ΣΊΣΥΦΟΣ", "", "x " * 30 + "end"]
    words = sorted({w for t in texts for w in imdb.tokenize(t)})
    vocabulary = {"word_index": {w: i + 4 for i, w in enumerate(words)}, "num_words": 20, "maxlen": 12,
                  "padding": padding, "truncating": truncating}
    _, encode = imdb.tensorflow_encoder(vocabulary)
    expected = imdb.encode_texts(texts, vocabulary["word_index"], 20, 12, padding, truncating)
    assert np.array_equal(encode(tf.constant(texts)).numpy(), expected)
