"""`train svd` on a Dask cluster (the session's LocalCluster of 2 worker processes):
counts exactly equal to the serial counter's, the randomized SVD over row blocks
against numpy's exact SVD and scikit-learn's, and the sample-corpus model against
the serial model (same words, same scores), through the estimator and the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from embeddings import cooccurrence, distributed_counts, store, svd
from embeddings.datasets import benchmark_path
from embeddings.distributed_counts import count_cooccurrences_on_cluster
from embeddings.randomized_svd import randomized_svd_on_cluster, row_blocks
from embeddings.svd import SVDTrainer, count_cooccurrences
from embeddings.training import checkpoint_dir
from tests.helpers import to_keyed_vectors
from tests.test_svd import random_corpus, reference_counts
from wordspace.cli import main


def assert_identical(got: sp.csr_matrix, expected: sp.csr_matrix) -> None:
    """Same shape, sparsity pattern and float64 values, bit for bit."""
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.data, expected.data)


# -- counts ------------------------------------------------------------------------------
@pytest.mark.parametrize("weighting,dynamic,subsample", [
    ("uniform", False, None), ("harmonic", False, None), ("uniform", True, None),
    ("harmonic", True, 0.05), ("uniform", False, 0.05),
])
def test_cluster_counts_equal_serial_counts(dask_client, tmp_path, monkeypatch, weighting, dynamic, subsample):
    sentences, vocab = random_corpus(11, n_sentences=600)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    # A small band (rows past it take the sort path) and ~30 chunks of 700 bytes in 8 tasks.
    monkeypatch.setattr(cooccurrence, "BAND_CELLS", 3 * len(vocab))
    options = dict(window=4, weighting=weighting, dynamic_window=dynamic, subsample=subsample, seed=3,
                   chunk_bytes=700)
    serial_stats, cluster_stats, events = {}, {}, []
    expected = count_cooccurrences(path, vocab, **options, stats=serial_stats)
    got = count_cooccurrences_on_cluster(dask_client, path, vocab, **options, stats=cluster_stats,
                                         progress=lambda done, total: events.append((done, total)))
    assert len(cooccurrence._file_chunks(path, 700)) >= 20
    assert_identical(got, expected)
    assert cluster_stats == serial_stats
    size = path.stat().st_size
    assert events[0] == (0, size) and events[-1] == (size, size) and len(events) == 1 + 8
    if subsample is None:  # the independent per-token reference
        np.testing.assert_allclose(got.toarray(), reference_counts(sentences, vocab.words, 4, weighting, dynamic),
                                   rtol=1e-12)


def test_cluster_count_chunks_finer_only_without_subsampling():
    assert distributed_counts.cluster_chunk_bytes(1 << 30, 2, None) == cooccurrence.CHUNK_BYTES
    assert distributed_counts.cluster_chunk_bytes(3_300_000, 2, None) == 412_500  # 8 tasks for 2 workers
    assert distributed_counts.cluster_chunk_bytes(10_000, 2, None) == distributed_counts.MIN_CHUNK_BYTES
    # Subsampling draws per chunk: the serial layout, whatever the size.
    assert distributed_counts.cluster_chunk_bytes(3_300_000, 2, 1e-3) == cooccurrence.CHUNK_BYTES


def test_cluster_count_errors_match_the_serial_ones(dask_client, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("x y z\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no token of the corpus is in the vocabulary"):
        count_cooccurrences_on_cluster(dask_client, path, ["a", "b"])
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no co-occurring pair"):
        count_cooccurrences_on_cluster(dask_client, path, ["a", "b"])
    with pytest.raises(ValueError, match="window"):
        count_cooccurrences_on_cluster(dask_client, path, ["a", "b"], window=0)
    with pytest.raises(FileNotFoundError):
        count_cooccurrences_on_cluster(dask_client, tmp_path / "missing.txt", ["a", "b"])


# -- PPMI row blocks and the randomized SVD ---------------------------------------------------
def test_ppmi_row_blocks_are_the_rows_of_ppmi():
    sentences, vocab = random_corpus(2, n_sentences=300)
    counts = count_cooccurrences(sentences, vocab, 3)
    whole = svd.ppmi(counts, cds=0.75, shift=1.2)
    bounds = row_blocks(counts.indptr, 4, 3)
    assert len(bounds) == 4 and bounds[0][0] == 0 and bounds[-1][1] == len(vocab)
    blocks = list(svd.ppmi_row_blocks(counts, bounds, cds=0.75, shift=1.2))
    assert_identical(sp.vstack(blocks, format="csr"), whole)
    with pytest.raises(ValueError, match="shift=1000 removes every entry"):
        list(svd.ppmi_row_blocks(counts, bounds, shift=1000))


def test_row_blocks_balance_non_zeros_and_keep_blocks_tall():
    indptr = np.concatenate([[0], np.cumsum([100, 100] + [1] * 198)])  # two heavy rows, then light ones
    bounds = row_blocks(indptr, 4, 10)
    assert [hi - lo for lo, hi in bounds][0] == 10  # the heavy rows alone would be a 2-row block
    assert all(hi - lo >= 10 for lo, hi in bounds) and bounds[-1][1] == 200
    assert row_blocks(indptr, 4, 150) == [(0, 200)]


def write_blocks(matrix: sp.csr_matrix, bounds, directory) -> list:
    paths = []
    for i, (lo, hi) in enumerate(bounds):
        paths.append(directory / f"block-{i}.npz")
        sp.save_npz(paths[-1], matrix[lo:hi], compressed=False)
    return paths


@pytest.fixture(scope="module")
def decaying_matrix() -> sp.csr_matrix:
    """300 x 200, 30% non-zeros, rows and columns scaled so the spectrum decays (randomized SVD converges)."""
    a = sp.random(300, 200, density=0.3, random_state=1, format="csr")
    return sp.csr_matrix(sp.diags(0.97 ** np.arange(300)) @ a @ sp.diags(0.96 ** np.arange(200)))


def test_randomized_svd_on_cluster_matches_numpy_exact_svd(dask_client, tmp_path, decaying_matrix):
    a, k = decaying_matrix, 10
    bounds = row_blocks(a.indptr, 4, k + 10)
    assert len(bounds) == 4
    u, s, vt = randomized_svd_on_cluster(dask_client, write_blocks(a, bounds, tmp_path), bounds, 200, k,
                                         random_state=0, dtype=np.float64)
    exact_u, exact_s, exact_vt = np.linalg.svd(a.toarray(), full_matrices=False)
    assert u.shape == (300, k) and s.shape == (k,) and vt.shape == (k, 200)
    np.testing.assert_allclose(s, exact_s[:k], rtol=2e-5)
    # The same subspaces: the cosines of the principal angles are 1.
    np.testing.assert_allclose(np.linalg.svd(u.T @ exact_u[:, :k], compute_uv=False), 1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.svd(vt @ exact_vt[:k].T, compute_uv=False), 1, atol=1e-6)
    # Orthonormal factors, and the vectors one by one (equal up to sign).
    np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:k], axis=1)), 1, atol=1e-4)
    # scikit-learn's convention (svd_flip, v-based): each right vector's largest entry is positive,
    # and A V = U S (U flipped with V).
    assert np.all(vt[np.arange(k), np.abs(vt).argmax(axis=1)] > 0)
    np.testing.assert_allclose(a @ vt.T, u * s, atol=1e-4 * s[0])


def test_randomized_svd_on_cluster_reproduces_scikit_learn_for_the_same_seed(dask_client, tmp_path,
                                                                             decaying_matrix):
    from sklearn.decomposition import TruncatedSVD

    a, k = decaying_matrix, 20
    bounds = row_blocks(a.indptr, 3, k + 10)
    paths = write_blocks(a, bounds, tmp_path)
    us, s, vt = randomized_svd_on_cluster(dask_client, paths, bounds, 200, k, random_state=4, fit_transform=True)
    reference = TruncatedSVD(k, algorithm="randomized", n_iter=5, random_state=4)
    expected_us = reference.fit_transform(a.astype(np.float32))
    assert us.dtype == vt.dtype == np.float32
    # float32 rounding apart (sums in another order, QR instead of LU), the same factors and signs.
    np.testing.assert_allclose(s, reference.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(vt, reference.components_, atol=2e-4)
    np.testing.assert_allclose(us, expected_us, atol=2e-4 * s[0])
    # The same seed gives the same vectors on every run (a fixed summation tree).
    again = randomized_svd_on_cluster(dask_client, paths, bounds, 200, k, random_state=4, fit_transform=True)
    np.testing.assert_array_equal(again[0], us)


def test_randomized_svd_on_cluster_rejects_bad_blocks(dask_client, tmp_path, decaying_matrix):
    paths = write_blocks(decaying_matrix, [(0, 300)], tmp_path)
    with pytest.raises(ValueError, match="consecutive"):
        randomized_svd_on_cluster(dask_client, paths, [(1, 300)], 200, 5)
    with pytest.raises(ValueError, match="n_components=200"):
        randomized_svd_on_cluster(dask_client, paths, [(0, 300)], 200, 200)


# -- the estimator and the CLI ---------------------------------------------------------------
def scores(emb) -> dict[str, float]:
    """WS353 and SimLex Spearman, Google analogy accuracy (gensim, as tests/test_svd.py)."""
    from threadpoolctl import threadpool_limits

    kv = to_keyed_vectors(emb)
    # One BLAS thread: the analogy search ran 10x slower with two beside the cluster's workers.
    with threadpool_limits(limits=1, user_api="blas"):
        return {"ws353": kv.evaluate_word_pairs(str(benchmark_path("ws353")))[1].statistic,
                "simlex": kv.evaluate_word_pairs(str(benchmark_path("simlex")))[1].statistic,
                "google": kv.evaluate_word_analogies(str(benchmark_path("google")))[0]}


def test_sample_corpus_on_the_cluster_scores_as_the_serial_model(sample_corpus, dask_client):
    # The setting (as tests/test_svd.py's `sample_svd`). Measured: the three scores
    # are equal to the serial model's to the last digit (differences 0.0; WS353 0.515,
    # SimLex 0.176, Google 0.083), because the cluster draws scikit-learn's Omega for the
    # seed; the vectors differ by float32 rounding only.
    options = dict(dim=100, window=5, cds=0.75, eig=0.5, min_count=5, random_state=0)
    serial = SVDTrainer(**options).fit(sample_corpus)
    events = []
    cluster = SVDTrainer(**options).fit(sample_corpus, cluster=dask_client, progress=events.append)
    a, b = serial.embeddings_, cluster.embeddings_
    assert b.words == a.words and b.dim == a.dim == 100 and b.vectors.dtype == np.float32
    assert_identical(cluster.counts_, serial.counts_)
    expected, got = scores(a), scores(b)
    for name in expected:
        assert abs(got[name] - expected[name]) <= 0.005, (name, got[name], expected[name])
    meta = b.meta
    assert meta["cluster"] == {"workers": 2, "svd_on_cluster": True, "counted_on_cluster": True}
    assert meta["cooccurrence"] == a.meta["cooccurrence"] and meta["dropped_words"] == a.meta["dropped_words"]
    assert meta["tokens_counted"] == sample_corpus.n_tokens
    assert set(meta["timings"]) >= {"count_s", "ppmi_s", "svd_s", "total_s"}
    counted = [e for e in events if e.stage == "count"]
    size = sample_corpus.path.stat().st_size
    assert counted[-1].done == counted[-1].total == size and counted[-1].unit == "B"


def test_cluster_fit_keeps_the_counts_checkpoint_for_resume(sample_corpus, dask_client, models_dir):
    options = dict(dim=8, min_count=40, random_state=5)
    ckpt = checkpoint_dir(models_dir, "m")
    fitted = SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt, cluster=dask_client)
    assert svd.read_counts(ckpt / "counts", fitted.counts_key_, fitted.vocabulary_.words) is not None
    assert not [p for p in ckpt.iterdir() if "ppmi" in p.name]  # the PPMI blocks are gone
    events = []
    resumed = SVDTrainer(**options).fit(sample_corpus, checkpoint_dir=ckpt, resume=True, cluster=dask_client,
                                        progress=events.append)
    assert not [e for e in events if e.stage == "count"]
    assert resumed.embeddings_.meta["cluster"]["counted_on_cluster"] is False
    np.testing.assert_array_equal(resumed.embeddings_.vectors, fitted.embeddings_.vectors)


def test_token_lists_are_counted_here_and_decomposed_on_the_cluster(sample_corpus, dask_client):
    sentences = [s for _, s in zip(range(300), sample_corpus.sentences())]
    serial = SVDTrainer(dim=10, min_count=3, random_state=1).fit(sentences).embeddings_
    cluster = SVDTrainer(dim=10, min_count=3, random_state=1).fit(sentences, cluster=dask_client).embeddings_
    assert cluster.meta["cluster"]["counted_on_cluster"] is False and cluster.words == serial.words
    np.testing.assert_allclose(cluster.vectors, serial.vectors, atol=1e-3 * np.abs(serial.vectors).max())


def test_cli_train_svd_on_the_cluster_saves_a_model(sample_corpus, dask_client, models_dir, tmp_path):
    code = main(["train", "svd", "--models", str(models_dir), "--data", str(tmp_path), "--quiet",
                 "--corpus", str(sample_corpus.directory), "--min-count", "40", "--dim", "8",
                 "--name", "clustered", "--cluster", dask_client.scheduler.address])
    assert code == 0
    model = store.load_model(models_dir, "clustered")
    assert model.meta["method"] == "svd" and model.dim == 8
    assert model.meta["cluster"] == {"workers": 2, "svd_on_cluster": True, "counted_on_cluster": True}
    saved = svd.load_counts_npz(store.model_path(models_dir, "clustered").resolve() / "cooccurrence.npz")
    assert_identical(saved, count_cooccurrences(sample_corpus, sample_corpus.vocabulary(40), 5))
    assert not checkpoint_dir(models_dir, "clustered").exists()
