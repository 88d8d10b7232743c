"""SVD co-occurrence embeddings: each pure step against matrices computed by hand,
the fast counter against a per-token Python reference, quality on the sample
corpus (measured with gensim), reproducibility, and the CLI's counts re-use."""
from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp

from embeddings import cooccurrence, store, svd
from wordspace.cli import main
from embeddings.corpus import Vocabulary
from embeddings.datasets import benchmark_path
from embeddings.svd import SVDTrainer, count_cooccurrences, ppmi, svd_embed
from embeddings.training import Checkpoints, UnfinishedRun, checkpoint_dir
from tests.helpers import to_keyed_vectors

TOY = [["a", "b", "c"], ["a", "c", "b", "a"]]
WORDS = ["a", "b", "c"]


def dense(m: sp.spmatrix) -> np.ndarray:
    return np.asarray(m.todense())


# -- counting -----------------------------------------------------------------------
def test_counts_uniform_by_hand():
    # Sentence 1: (a,b)@1 (b,c)@1 (a,c)@2.  Sentence 2 "a c b a": (a,c)@1 (c,b)@1 (b,a)@1 (a,b)@2 (c,a)@2.
    expected = np.array([[0, 3, 3],
                         [3, 0, 2],
                         [3, 2, 0]], dtype=float)
    got = count_cooccurrences(TOY, WORDS, window=2)
    assert isinstance(got, sp.csr_matrix) and got.shape == (3, 3)
    np.testing.assert_array_equal(dense(got), expected)


def test_counts_harmonic_by_hand():
    # Same pairs, weight 1/d: {a,b} = 1 + 1 + 1/2, {b,c} = 1 + 1, {a,c} = 1/2 + 1 + 1/2.
    expected = np.array([[0, 2.5, 2],
                         [2.5, 0, 2],
                         [2, 2, 0]])
    np.testing.assert_allclose(dense(count_cooccurrences(TOY, WORDS, 2, "harmonic")), expected)


def test_counts_diagonal_and_sentence_boundaries_by_hand():
    # Window 3 adds (a,a)@3 in sentence 2, counted once per direction; the last word of
    # sentence 1 and the first of sentence 2 are 1 apart in the stream but never paired.
    uniform = np.array([[2, 3, 3], [3, 0, 2], [3, 2, 0]], dtype=float)
    harmonic = np.array([[2 / 3, 2.5, 2], [2.5, 0, 2], [2, 2, 0]])
    # dynamic window 3: distance weights 1, 2/3, 1/3
    dynamic = np.array([[2 / 3, 1 + 1 + 2 / 3, 2 / 3 + 1 + 2 / 3],
                        [1 + 1 + 2 / 3, 0, 2],
                        [2 / 3 + 1 + 2 / 3, 2, 0]])
    np.testing.assert_allclose(dense(count_cooccurrences(TOY, WORDS, 3)), uniform)
    np.testing.assert_allclose(dense(count_cooccurrences(TOY, WORDS, 3, "harmonic")), harmonic)
    np.testing.assert_allclose(dense(count_cooccurrences(TOY, WORDS, 3, dynamic_window=True)), dynamic)


def test_distance_weights_by_hand():
    np.testing.assert_allclose(svd.distance_weights(3), [1, 1, 1])
    np.testing.assert_allclose(svd.distance_weights(3, "harmonic"), [1, 1 / 2, 1 / 3])
    np.testing.assert_allclose(svd.distance_weights(3, dynamic_window=True), [1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(svd.distance_weights(3, "harmonic", True), [1, 1 / 3, 1 / 9])


def test_out_of_vocabulary_words_are_removed_before_windowing():
    got = count_cooccurrences([["a", "zzz", "b"], ["c"]], WORDS, window=1)
    np.testing.assert_array_equal(dense(got), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_token_lookup_is_exact():
    # Thousands of words (so the open-addressing table has collisions), 1-40 bytes, non-ASCII,
    # plus tokens that differ from a word only by a prefix or a dropped last character.
    rng = random.Random(4)
    words = list(dict.fromkeys("".join(rng.choice("abcé-'") for _ in range(rng.randrange(1, 40)))
                               for _ in range(5000)))
    lookup = cooccurrence._Lookup(words)
    tokens = words + ["z" + w for w in words[:500]] + [w[:-1] for w in words[:500] if len(w) > 1]
    rng.shuffle(tokens)
    data = " ".join(tokens).encode("utf-8")
    buf = cooccurrence._padded(data)
    starts, ends = cooccurrence._token_bounds(buf[:len(data)])
    index = {w: i for i, w in enumerate(words)}
    assert lookup.ids(buf, len(data), starts, ends).tolist() == [index.get(t, -1) for t in tokens]


def reference_counts(sentences, words, window, weighting="uniform", dynamic=False) -> np.ndarray:
    """Per-token Python loop: the independent reference for the vectorized counter."""
    index = {w: i for i, w in enumerate(words)}
    out = np.zeros((len(words), len(words)))
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]
        for i, a in enumerate(ids):
            for d in range(1, window + 1):
                if i + d >= len(ids):
                    break
                weight = 1.0 / d if weighting == "harmonic" else 1.0
                if dynamic:
                    weight *= (window - d + 1) / window
                b = ids[i + d]
                out[a, b] += weight
                out[b, a] += weight
    return out


def random_corpus(seed: int, n_sentences: int = 60):
    rng = random.Random(seed)
    alphabet = "abcdéfgh"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 7, 8, 9, 16, 17, 25, 40])))
             for _ in range(40)]
    words = list(dict.fromkeys(words))
    weights = [1 / (i + 1) for i in range(len(words))]
    sentences = [rng.choices(words + ["oov-word", "x" * 30], weights + [0.3, 0.1], k=rng.randrange(1, 40))
                 for _ in range(n_sentences)]
    counts = Counter(w for s in sentences for w in s)
    vocab = Vocabulary.from_counter(Counter({w: c for w, c in counts.items() if w in words}))
    return sentences, vocab


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighting,dynamic", [("uniform", False), ("harmonic", False), ("uniform", True)])
def test_counts_match_python_reference(monkeypatch, seed, weighting, dynamic):
    sentences, vocab = random_corpus(seed)
    window = 1 + seed * 2
    expected = reference_counts(sentences, vocab.words, window, weighting, dynamic)
    got = count_cooccurrences(sentences, vocab, window, weighting, dynamic)
    np.testing.assert_allclose(dense(got), expected, rtol=1e-12)
    # Small band (rows past it go through the sort path) and many small chunks: same numbers.
    monkeypatch.setattr(cooccurrence, "BAND_CELLS", 3 * len(vocab))
    chunked = count_cooccurrences(sentences, vocab, window, weighting, dynamic, chunk_bytes=97)
    np.testing.assert_allclose(dense(chunked), expected, rtol=1e-12)


def test_file_input_and_counting_threads_give_identical_counts(tmp_path, monkeypatch):
    sentences, vocab = random_corpus(5, n_sentences=400)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    monkeypatch.setattr(cooccurrence, "BAND_CELLS", 4 * len(vocab))
    threads_used = []
    worker_count = cooccurrence._worker_count
    monkeypatch.setattr(cooccurrence, "_worker_count", lambda *a: threads_used.append(worker_count(*a)) or threads_used[-1])
    one = count_cooccurrences(path, vocab, 4, "harmonic", chunk_bytes=500, workers=1)
    two = count_cooccurrences(path, vocab, 4, "harmonic", chunk_bytes=500, workers=2)
    assert threads_used == [1, 2]
    mem = count_cooccurrences(sentences, vocab, 4, "harmonic", chunk_bytes=500)
    assert (one != two).nnz == 0 and (one != mem).nnz == 0
    np.testing.assert_allclose(dense(one), reference_counts(sentences, vocab.words, 4, "harmonic"))


def test_interrupted_count_resumes_to_identical_counts(tmp_path):
    sentences, vocab = random_corpus(7, n_sentences=400)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    options = dict(window=3, subsample=0.05, seed=1, chunk_bytes=3000)
    expected = count_cooccurrences(path, vocab, **options)
    seen: list[int] = []

    def killed_at_fifth_chunk(n: int) -> None:
        seen.append(n)
        if len(seen) == 5:
            raise KeyboardInterrupt

    first = svd.CountCheckpoint(tmp_path / "ck", "key", every_s=0)
    with pytest.raises(KeyboardInterrupt):
        count_cooccurrences(path, vocab, **options, progress=killed_at_fifth_chunk, checkpoint=first)
    assert first.saved == 4  # after chunks 1-4; the fifth was lost with the "kill"
    # Another key, or resume=False, starts afresh; the right key continues after chunk 4.
    assert svd.CountCheckpoint(tmp_path / "ck", "other").load(len(vocab), {}) is None
    resumed: list[int] = []
    again = count_cooccurrences(path, vocab, **options, progress=resumed.append,
                                checkpoint=svd.CountCheckpoint(tmp_path / "ck", "key", every_s=0))
    assert resumed[0] == sum(seen[:4])
    assert sum(resumed) == sum(len(s) for s in sentences)
    assert (again != expected).nnz == 0
    fresh: list[int] = []
    count_cooccurrences(path, vocab, **options, progress=fresh.append,
                        checkpoint=svd.CountCheckpoint(tmp_path / "ck", "key", every_s=3600, resume=False))
    assert fresh[0] == seen[0]


def test_subsampling_is_seeded_and_drops_frequent_words():
    sentences, vocab = random_corpus(3, n_sentences=300)
    full = count_cooccurrences(sentences, vocab, 3)
    a = count_cooccurrences(sentences, vocab, 3, subsample=1e-2, seed=7)
    b = count_cooccurrences(sentences, vocab, 3, subsample=1e-2, seed=7)
    c = count_cooccurrences(sentences, vocab, 3, subsample=1e-2, seed=8)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0
    # The most frequent word loses most of its pairs; it is row 0 (vocabulary order).
    assert a[0].sum() < 0.6 * full[0].sum()


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 0}, "window"),
    ({"window": 2.5}, "window"),
    ({"weighting": "gaussian"}, "weighting"),
    ({"window": 17, "weighting": "harmonic"}, "window"),
    ({"subsample": 0.0}, "subsample"),
])
def test_count_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        count_cooccurrences(TOY, WORDS, **kwargs)


def test_count_rejects_empty_and_all_oov_corpora():
    with pytest.raises(ValueError, match="vocabulary"):
        count_cooccurrences([], WORDS)
    with pytest.raises(ValueError, match="vocabulary"):
        count_cooccurrences([["x", "y", "z"]], WORDS)
    with pytest.raises(ValueError, match="no co-occurring pair"):
        count_cooccurrences([["a"], ["b"]], WORDS)
    with pytest.raises(ValueError, match="whitespace"):
        count_cooccurrences([["a b", "c"]], WORDS)


# -- PPMI -------------------------------------------------------------------------
def test_ppmi_by_hand():
    counts = sp.csr_matrix(np.array([[0, 3, 3], [3, 0, 2], [3, 2, 0]], dtype=float))
    # cds = 1: PMI = log(#(w,c) * 16 / (#w * #c)), row/column sums 6, 5, 5.
    plain = np.log(np.array([[0, 3 * 16 / 30, 3 * 16 / 30],
                             [3 * 16 / 30, 0, 2 * 16 / 25],
                             [3 * 16 / 30, 2 * 16 / 25, 0]]) + np.eye(3))  # log(1) = 0 on the diagonal
    np.testing.assert_allclose(dense(ppmi(counts, cds=1.0)), plain, rtol=1e-12)
    # cds = 0.75: context counts 6**.75, 5**.75, 5**.75 summing to Z.
    z = 6 ** 0.75 + 2 * 5 ** 0.75
    smoothed = np.array([[0, np.log(3 * z / (6 * 5 ** 0.75)), np.log(3 * z / (6 * 5 ** 0.75))],
                         [np.log(3 * z / (5 * 6 ** 0.75)), 0, np.log(2 * z / (5 * 5 ** 0.75))],
                         [np.log(3 * z / (5 * 6 ** 0.75)), np.log(2 * z / (5 * 5 ** 0.75)), 0]])
    np.testing.assert_allclose(dense(ppmi(counts)), np.maximum(smoothed, 0), rtol=1e-12)


def test_ppmi_clips_negative_values_and_shifts():
    counts = sp.csr_matrix(np.array([[10.0, 1.0], [1.0, 10.0]]))
    # PMI(0,0) = log(10 * 22 / 121) > 0; PMI(0,1) = log(22 / 121) < 0 -> removed.
    got = ppmi(counts, cds=1.0)
    np.testing.assert_allclose(dense(got), np.diag([np.log(220 / 121)] * 2))
    assert got.nnz == 2
    shifted = ppmi(counts, cds=1.0, shift=1.5)
    np.testing.assert_allclose(dense(shifted), np.diag([np.log(220 / 121) - np.log(1.5)] * 2))
    with pytest.raises(ValueError, match="shift=2 removes every entry"):
        ppmi(counts, cds=1.0, shift=2)


@pytest.mark.parametrize("kwargs,message", [({"cds": 0}, "cds"), ({"cds": -1}, "cds"),
                                            ({"shift": 0.5}, "shift"), ({"shift": float("nan")}, "shift")])
def test_ppmi_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppmi(sp.csr_matrix(np.ones((2, 2))), **kwargs)


# -- SVD --------------------------------------------------------------------------------
def known_svd_matrix():
    q = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0  # orthonormal
    s = np.array([4.0, 2.0, 1.0, 0.5])
    return q, s, sp.csr_matrix(q @ np.diag(s) @ q.T)


def assert_columns_equal_up_to_sign(got, expected):
    signs = np.sign(np.sum(got * expected, axis=0))
    assert np.all(signs != 0)
    np.testing.assert_allclose(got * signs, expected, atol=1e-5)


@pytest.mark.parametrize("eig", [0.0, 0.5, 1.0])
def test_svd_eig_weighting_by_hand(eig):
    q, s, m = known_svd_matrix()
    w = svd_embed(m, dim=2, eig=eig)
    assert w.dtype == np.float32 and w.shape == (4, 2)
    assert_columns_equal_up_to_sign(w, q[:, :2] * s[:2] ** eig)


def test_svd_add_context_on_symmetric_matrix_doubles_vectors():
    q, s, m = known_svd_matrix()
    w = svd_embed(m, dim=2, eig=0.5)
    np.testing.assert_allclose(svd_embed(m, dim=2, eig=0.5, add_context=True), 2 * w, atol=1e-5)


def test_svd_rejects_dim_not_below_vocabulary():
    with pytest.raises(ValueError, match="dim=4 must be smaller"):
        svd_embed(known_svd_matrix()[2], dim=4)


# -- the estimator ----------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_svd(sample_corpus):
    """The issue's setting on the sample corpus: window 5, cds 0.75, eig 0.5, 100-d, min_count 5."""
    return SVDTrainer(dim=100, window=5, cds=0.75, eig=0.5, min_count=5, random_state=0).fit(sample_corpus)


def test_sample_corpus_quality_meets_the_bar(sample_svd):
    kv = to_keyed_vectors(sample_svd.embeddings_)
    pearson, spearman, oov = kv.evaluate_word_pairs(str(benchmark_path("ws353")))
    accuracy, _sections = kv.evaluate_word_analogies(str(benchmark_path("google")))
    assert spearman.statistic >= 0.42, spearman
    assert accuracy >= 0.06, accuracy


def test_fit_records_meta_and_vocabulary_order(sample_svd, sample_corpus):
    emb = sample_svd.embeddings_
    meta = emb.meta
    assert meta["method"] == "svd" and meta["corpus"]["sha256"] == sample_corpus.sha256
    assert meta["train_seconds"] == meta["timings"]["total_s"] > 0 and meta["epochs"] is None
    assert meta["params"]["dim"] == 100 and meta["params"]["cds"] == 0.75 and meta["params"]["min_count"] == 5
    assert set(meta["timings"]) >= {"count_s", "ppmi_s", "svd_s", "total_s"}
    vocab = sample_corpus.vocabulary(5)
    assert sample_svd.counts_.shape == (len(vocab), len(vocab))
    assert len(emb) == len(vocab) - meta["dropped_words"]
    assert emb.words[:5] == tuple(vocab.words[:5]) and list(emb.counts[:5]) == vocab.counts[:5]
    assert np.all(emb.norms > 0)  # no zero vector for a word without contexts


def test_same_seed_gives_identical_vectors(sample_corpus):
    sentences = [s for _, s in zip(range(40), sample_corpus.sentences())]
    first = SVDTrainer(dim=20, min_count=10, random_state=3).fit(sentences).embeddings_
    second = SVDTrainer(dim=20, min_count=10, random_state=3).fit(sentences).embeddings_
    assert first.words == second.words
    np.testing.assert_array_equal(first.vectors, second.vectors)


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 0}, "window"), ({"cds": 0}, "cds"), ({"shift": 0.9}, "shift"), ({"dim": 0}, "dim"),
    ({"dim": 3}, "dim=3 must be smaller than the vocabulary size"), ({"min_count": 50}, "min_count"),
])
def test_fit_rejects_bad_input_before_counting(kwargs, message, monkeypatch):
    monkeypatch.setattr(svd, "count_cooccurrences", lambda *a, **k: pytest.fail("counted anyway"))
    with pytest.raises(ValueError, match=message):
        SVDTrainer(**{"min_count": 1, **kwargs}).fit(TOY)


def test_fit_rejects_empty_corpus():
    with pytest.raises(ValueError, match="empty"):
        SVDTrainer(min_count=1).fit([[], []])


# -- CLI and the saved counts ------------------------------------------------------
def train(models, data, *extra):
    return main(["train", "svd", "--models", str(models), "--data", str(data), "--quiet", *extra])


def test_cli_saves_counts_and_reuses_them(sample_corpus, models_dir, tmp_path, capsys):
    corpus = ["--corpus", str(sample_corpus.directory), "--min-count", "40"]
    assert train(models_dir, tmp_path, *corpus, "--name", "small", "--dim", "8") == 0
    first = store.load_model(models_dir, "small")
    assert first.meta["method"] == "svd" and first.meta["counts_reused"] is False
    path = store.model_path(models_dir, "small").resolve()
    counts = svd.load_counts_npz(path / "cooccurrence.npz")
    vocab = sample_corpus.vocabulary(40)
    assert counts.shape == (len(vocab), len(vocab))
    words = (path / "cooccurrence_vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert words == vocab.words
    expected = count_cooccurrences(sample_corpus, vocab, 5)
    assert (counts != expected).nnz == 0
    assert not checkpoint_dir(models_dir, "small").exists()
    capsys.readouterr()

    # Only dim/eig/cds change: the counts come from model "small".
    assert train(models_dir, tmp_path, *corpus, "--name", "other", "--dim", "6", "--eig", "0", "--cds", "1") == 0
    assert "re-using the co-occurrence counts from model 'small'" in capsys.readouterr().err
    other = store.load_model(models_dir, "other")
    assert other.meta["counts_reused"] is True and other.dim == 6
    # A counting parameter changes: counted again (replacing "other" needs --overwrite).
    assert train(models_dir, tmp_path, *corpus, "--name", "other", "--dim", "6", "--window", "2") == 1
    assert "a model named 'other' already exists" in capsys.readouterr().err
    assert train(models_dir, tmp_path, *corpus, "--name", "other", "--dim", "6", "--window", "2",
                 "--overwrite") == 0
    assert "re-using" not in capsys.readouterr().err
    assert store.load_model(models_dir, "other").meta["counts_reused"] is False


def test_cli_resumes_from_counts_checkpoint_with_identical_vectors(sample_corpus, models_dir, tmp_path, capsys):
    corpus = ["--corpus", str(sample_corpus.directory), "--min-count", "40", "--dim", "8", "--seed", "5"]
    assert train(models_dir, tmp_path, *corpus, "--name", "ref") == 0
    reference = store.load_model(models_dir, "ref", mmap=False)
    # What a kill during the SVD leaves behind: the counts checkpoint and no model.
    trainer = SVDTrainer(dim=8, min_count=40, random_state=5)
    vocab = trainer.vocabulary(sample_corpus)
    key = trainer.counts_key(sample_corpus.sha256, vocab)
    svd.write_counts(checkpoint_dir(models_dir, "killed") / "counts", count_cooccurrences(sample_corpus, vocab),
                     vocab.words, key)
    capsys.readouterr()
    assert train(models_dir, tmp_path, *corpus, "--name", "killed", "--resume") == 0
    assert "from checkpoint" in capsys.readouterr().err
    resumed = store.load_model(models_dir, "killed", mmap=False)
    np.testing.assert_array_equal(resumed.vectors, reference.vectors)
    assert not checkpoint_dir(models_dir, "killed").exists()


def test_cli_resume_continues_a_killed_count(sample_corpus, models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cooccurrence, "CHUNK_BYTES", 300_000)  # the sample corpus in about 12 chunks
    corpus = ["--corpus", str(sample_corpus.directory), "--min-count", "40", "--dim", "8", "--seed", "2",
              "--subsample", "1e-3"]
    elsewhere = tmp_path / "reference-models"  # so that "killed" cannot re-use its counts
    assert train(elsewhere, tmp_path, *corpus, "--name", "ref") == 0
    reference = store.load_model(elsewhere, "ref", mmap=False)
    # What `kill -9` in the middle of counting leaves: a snapshot in .checkpoints/NAME/partial.
    trainer = SVDTrainer(dim=8, min_count=40, random_state=2, subsample=1e-3)
    vocab = trainer.vocabulary(sample_corpus)
    key = trainer.counts_key(sample_corpus.sha256, vocab)
    calls = []

    def kill(n):
        calls.append(n)
        if len(calls) == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        count_cooccurrences(sample_corpus, vocab, 5, subsample=1e-3, seed=2, progress=kill,
                            checkpoint=svd.CountCheckpoint(checkpoint_dir(models_dir, "killed") / "partial",
                                                           key, every_s=0))
    capsys.readouterr()
    assert train(models_dir, tmp_path, *corpus, "--name", "killed", "--resume") == 0
    assert "resumed the count from its snapshot (chunk 5)" in capsys.readouterr().err
    resumed = store.load_model(models_dir, "killed", mmap=False)
    assert resumed.meta["count_resumed_at_chunk"] == 5
    np.testing.assert_array_equal(resumed.vectors, reference.vectors)


def test_fit_keeps_counts_in_the_checkpoint_dir_and_refuses_to_drop_them(sample_corpus, models_dir, tmp_path):
    options = dict(dim=8, min_count=40, random_state=5)
    ckpt = checkpoint_dir(models_dir, "m")
    events = []
    fitted = SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt, progress=events.append)
    counted = [e for e in events if e.stage == "count"]
    assert counted and counted[-1].done == counted[-1].total == sample_corpus.n_tokens
    assert svd.read_counts(ckpt / "counts", fitted.counts_key_, fitted.vocabulary_.words) is not None
    # A second fit without resume must not silently drop (or re-use) what is there.
    with pytest.raises(UnfinishedRun, match=r"\(counts\).*--resume.*--restart"):
        SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt)
    events.clear()
    resumed = SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt, resume=True, progress=events.append)
    assert [e.message for e in events if e.stage == "note"] == [
        "re-using the co-occurrence counts from checkpoint (same corpus and counting parameters)"]
    assert not [e for e in events if e.stage == "count"]
    np.testing.assert_array_equal(resumed.embeddings_.vectors, fitted.embeddings_.vectors)
    # Another process training the same name holds the lock.
    with Checkpoints(ckpt).lock():
        with pytest.raises(ValueError, match="another process is training"):
            SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt, resume=True)


def test_find_counts_and_counts_from(sample_corpus, models_dir):
    first = SVDTrainer(dim=8, min_count=40, random_state=5).fit(sample_corpus)
    first.save(models_dir, "first")
    key, words = first.counts_key_, first.vocabulary_.words
    counts, origin = svd.find_counts(models_dir, key, words)
    assert origin == "model 'first'" and (counts != first.counts_).nnz == 0
    assert svd.find_counts(models_dir, "other-key", words) is None
    # Only dim/eig change: the counts come from "first", and the vectors equal a fresh count's.
    events = []
    again = SVDTrainer(dim=6, eig=0.0, min_count=40, random_state=5).fit(
        sample_corpus, counts_from=models_dir, progress=events.append)
    assert again.embeddings_.meta["counts_reused"] is True
    assert "from model 'first'" in [e.message for e in events if e.stage == "note"][0]
    fresh = SVDTrainer(dim=6, eig=0.0, min_count=40, random_state=5).fit(sample_corpus)
    np.testing.assert_array_equal(again.embeddings_.vectors, fresh.embeddings_.vectors)
    # A damaged saved matrix is not used.
    npz = store.model_path(models_dir, "first").resolve() / "cooccurrence.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    assert svd.find_counts(models_dir, key, words) is None


def test_train_model_svd_refuses_a_killed_runs_counts_until_resume(sample_corpus, models_dir, tmp_path, capsys):
    corpus = ["--corpus", str(sample_corpus.directory), "--min-count", "40", "--dim", "8", "--seed", "5"]
    trainer = SVDTrainer(dim=8, min_count=40, random_state=5)
    vocab = trainer.vocabulary(sample_corpus)
    key = trainer.counts_key(sample_corpus.sha256, vocab)
    svd.write_counts(checkpoint_dir(models_dir, "killed") / "counts", count_cooccurrences(sample_corpus, vocab),
                     vocab.words, key)
    capsys.readouterr()
    assert train(models_dir, tmp_path, *corpus, "--name", "killed") == 1
    err = capsys.readouterr().err
    assert "unfinished run (counts)" in err and "--resume" in err
    assert (checkpoint_dir(models_dir, "killed") / "counts" / "cooccurrence.npz").is_file()
    assert train(models_dir, tmp_path, *corpus, "--name", "killed", "--restart") == 0
    assert "re-using" not in capsys.readouterr().err  # --restart deleted the counts: counted again
    assert store.load_model(models_dir, "killed").meta["counts_reused"] is False
    assert not checkpoint_dir(models_dir, "killed").exists()


def test_damaged_or_pickled_counts_are_never_used(tmp_path):
    counts = sp.csr_matrix(np.array([[0, 2.0], [2.0, 0]]))
    svd.write_counts(tmp_path, counts, ["a", "b"], "k")
    assert (svd.read_counts(tmp_path, "k", ["a", "b"]) != counts).nnz == 0
    assert svd.read_counts(tmp_path, "other-key", ["a", "b"]) is None
    assert svd.read_counts(tmp_path, "k", ["a", "c"]) is None
    # An object array inside the npz (a pickle payload) is refused by allow_pickle=False.
    np.savez(tmp_path / "cooccurrence.npz", format=np.array("csr"), shape=np.array([2, 2]),
             data=np.array([{"x": 1}, 2], dtype=object), indices=np.array([1, 0]), indptr=np.array([0, 1, 2]))
    info = json.loads((tmp_path / "cooccurrence.json").read_text())
    from embeddings.atomic import sha256_file
    info["sha256"] = sha256_file(tmp_path / "cooccurrence.npz")
    (tmp_path / "cooccurrence.json").write_text(json.dumps(info))
    assert svd.read_counts(tmp_path, "k", ["a", "b"]) is None
    with pytest.raises(ValueError):
        svd.load_counts_npz(tmp_path / "cooccurrence.npz")


def test_cli_rejects_bad_values_before_reading_the_corpus(models_dir, tmp_path, capsys):
    missing = str(tmp_path / "no-such-corpus")
    for extra, message in ((["--window", "0"], "window"), (["--cds", "0"], "cds"),
                           (["--shift", "0.5"], "shift"), (["--name", "../x"], "invalid model name")):
        assert train(models_dir, tmp_path, "--corpus", missing, *extra) == 1
        assert message in capsys.readouterr().err
