"""The FAISS boundary: flat equals brute force (ties allowed), HNSW recall, gensim
semantics, analogies, exclusion of input words, restrict_vocab, persistence."""
from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from embeddings import store
from embeddings.vectors import Embeddings
from embeddings.index import (INDEX_FILE, BruteForceBackend, FaissBackend, build_faiss, check_fits, load_or_build,
                              read_index_file, save_index)
from embeddings.query import COSMUL_EPS, MissingWords, WordIndex
from tests.conftest import planted_embeddings
from tests.helpers import to_keyed_vectors


def read_index(model_dir, emb):
    """The persisted index of a resolved model directory, checked to fit `emb` (as serving does)."""
    return check_fits(read_index_file(model_dir), emb, Path(model_dir) / INDEX_FILE)

TOL = 1e-5


def random_embeddings(n: int, dim: int, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    words = [f"w{i}" for i in range(n)]
    return Embeddings(words, vectors, np.arange(n, 0, -1), {"method": "random"})


def assert_same_ranking(got, expected, tol: float = TOL) -> None:
    """Same scores position by position; words may differ only inside ties."""
    assert len(got) == len(expected)
    got_scores = np.array([s for _, s in got])
    exp_scores = np.array([s for _, s in expected])
    np.testing.assert_allclose(got_scores, exp_scores, atol=tol)
    if not expected:
        return
    cutoff = exp_scores[-1] + tol
    assert {w for w, s in got if s > cutoff} == {w for w, s in expected if s > cutoff}


def pairs(rows):
    return [(r.word, r.score) for r in rows]


@pytest.fixture(scope="module")
def rand() -> Embeddings:
    return random_embeddings(3000, 24, seed=1)


@pytest.fixture(scope="module")
def rand_flat(rand) -> WordIndex:
    return WordIndex.in_memory(rand, "flat")


@pytest.fixture(scope="module")
def rand_brute(rand) -> WordIndex:
    return WordIndex.brute_force(rand)


@pytest.fixture(scope="module")
def big_hnsw():
    """50k random words x 32 dims: HNSW with the service defaults, and the exact oracle."""
    emb = random_embeddings(50_000, 32, seed=7)
    return WordIndex.in_memory(emb, "hnsw"), WordIndex.brute_force(emb)


# -- flat == brute force == gensim ---------------------------------------------------
@pytest.mark.parametrize("k", [1, 10, 100])
def test_flat_neighbours_equal_brute_force(rand, rand_flat, rand_brute, k):
    for word in rand.words[:: 97]:
        assert_same_ranking(pairs(rand_flat.neighbors(word, k)), pairs(rand_brute.neighbors(word, k)))


def test_backend_search_equals_numpy(rand):
    queries = np.ascontiguousarray(rand.normalized[:50])
    flat = FaissBackend(build_faiss(rand, "flat"))
    brute = BruteForceBackend(rand.normalized)
    d1, i1 = flat.search(queries, 10)
    d2, i2 = brute.search(queries, 10)
    np.testing.assert_allclose(d1, d2, atol=TOL)
    full = queries @ rand.normalized.T
    np.testing.assert_allclose(np.take_along_axis(full, i1, axis=1), d1, atol=TOL)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "brute"])
def test_most_similar_matches_gensim(kind):
    emb = random_embeddings(800, 16, seed=3)
    index = WordIndex.brute_force(emb) if kind == "brute" else WordIndex.in_memory(emb, kind)
    kv = to_keyed_vectors(emb)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pos = [emb.words[i] for i in rng.choice(len(emb), 2, replace=False)]
        neg = [emb.words[int(rng.integers(len(emb)))]]
        neg = [w for w in neg if w not in pos]
        expected = kv.most_similar(positive=pos, negative=neg, topn=10)
        got = pairs(index.most_similar(pos, neg, k=10))
        assert_same_ranking(got, [(w, float(s)) for w, s in expected], tol=1e-4)


def test_weighted_terms_and_vectors_match_gensim(rand, rand_flat):
    kv = to_keyed_vectors(rand)
    # gensim takes a tuple's weight as given even under `negative`; ours subtracts it.
    expected = kv.most_similar(positive=[("w3", 2.0), ("w5", 0.5), ("w8", -1.5)], topn=10)
    got = pairs(rand_flat.most_similar([("w3", 2.0), ("w5", 0.5)], [("w8", 1.5)], k=10))
    assert_same_ranking(got, [(w, float(s)) for w, s in expected], tol=1e-4)
    vector = np.asarray(rand.vectors[10]) * 3.0
    expected = kv.most_similar(positive=[vector], topn=5)
    got = pairs(rand_flat.nearest_to_vector(vector, k=5))
    assert_same_ranking(got, [(w, float(s)) for w, s in expected], tol=1e-4)
    assert got[0][0] == "w10"  # a raw vector excludes nothing


def test_similarity_and_odd_one_out_match_gensim(planted):
    index = WordIndex.in_memory(planted)
    kv = to_keyed_vectors(planted)
    assert index.similarity("king", "queen") == pytest.approx(float(kv.similarity("king", "queen")), abs=1e-6)
    for words in (["king", "queen", "man", "noise7"], ["mussolini", "hitler", "italy", "woman"],
                  ["noise1", "noise2", "noise3", "noise4", "noise5"]):
        odd, scores = index.odd_one_out(words)
        assert odd == kv.doesnt_match(words)
    assert [s.word for s in scores] == words
    assert min(scores, key=lambda s: s.score).word == odd


# -- HNSW ------------------------------------------------------------------------
def test_hnsw_recall_at_10(big_hnsw):
    hnsw, exact = big_hnsw
    rng = np.random.default_rng(0)
    recalls = []
    for i in rng.choice(len(exact.emb), 300, replace=False):
        word = exact.emb.words[i]
        truth = {r.word for r in exact.neighbors(word, 10)}
        found = {r.word for r in hnsw.neighbors(word, 10)}
        recalls.append(len(truth & found) / 10)
    assert np.mean(recalls) >= 0.98


def test_hnsw_drops_minus_one_ids_when_k_exceeds_vocab(planted):
    index = WordIndex.in_memory(planted, "hnsw")
    backend_scores, backend_ids = index.backend.search(planted.normalized[:1], len(planted))
    assert backend_ids.shape == (1, len(planted))
    rows = index.neighbors("king", k=100)
    words = [r.word for r in rows]
    assert "king" not in words and len(words) == len(set(words)) <= len(planted) - 1
    assert all(np.isfinite(r.score) and -1.0001 <= r.score <= 1.0001 for r in rows)
    exact = {w: s for w, s in pairs(WordIndex.brute_force(planted).neighbors("king", k=100))}
    for word, score in pairs(rows):
        assert score == pytest.approx(exact[word], abs=TOL)  # never a -1 mapped to the last word


def test_hnsw_search_is_never_mutated(big_hnsw):
    hnsw, _ = big_hnsw
    before = hnsw.backend.index.hnsw.efSearch
    hnsw.neighbors("w1", 100)
    assert hnsw.backend.index.hnsw.efSearch == before


def test_hnsw_shared_search_parameters_follow_k(big_hnsw):
    """The per-efSearch parameters are shared between calls: each call still searches with
    max(efSearch, k), as a FAISS index set to that efSearch does."""
    hnsw, _ = big_hnsw
    backend = hnsw.backend
    queries = np.ascontiguousarray(hnsw.unit[:20])
    reference = faiss.clone_index(backend.index)
    for k in (10, 300, 10, 129, 300):
        reference.hnsw.efSearch = max(backend.ef_search, k)
        want_scores, want_ids = reference.search(queries, k)
        scores, ids = backend.search(queries, k)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)
    assert sorted(backend._hnsw_params) == [backend.ef_search, 129, 300]


# -- analogies -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("exact", [True, False])
def test_planted_analogies_3cosadd(planted, kind, exact):
    index = WordIndex.in_memory(planted, kind)
    assert index.analogy("man", "king", "woman", k=1, exact=exact)[0].word == "queen"
    assert index.analogy("italy", "mussolini", "germany", k=1, exact=exact)[0].word == "hitler"


def test_planted_analogies_3cosmul():
    emb = planted_embeddings(dim=64, noise_words=40, seed=0)
    index = WordIndex.in_memory(emb)
    assert index.analogy("man", "king", "woman", k=1, method="3cosmul")[0].word == "queen"
    assert index.analogy("italy", "mussolini", "germany", k=1, method="3cosmul")[0].word == "hitler"


def test_3cosadd_matches_gensim(rand, rand_flat):
    kv = to_keyed_vectors(rand)
    for a, b, c in [("w1", "w2", "w3"), ("w10", "w400", "w2999")]:
        expected = kv.most_similar(positive=[b, c], negative=[a], topn=5)
        assert_same_ranking(pairs(rand_flat.analogy(a, b, c, k=5)), [(w, float(s)) for w, s in expected], tol=1e-4)


def test_3cosmul_is_the_formula_computed_by_hand(rand, rand_flat):
    a, b, c = "w4", "w9", "w77"
    unit = rand.normalized.astype(np.float64)
    cos = lambda w: (unit @ unit[rand.index_of(w)] + 1) / 2  # noqa: E731
    scores = cos(b) * cos(c) / (cos(a) + COSMUL_EPS)
    order = [i for i in np.argsort(-scores) if rand.words[i] not in (a, b, c)][:10]
    got = pairs(rand_flat.analogy(a, b, c, k=10, method="3cosmul"))
    assert_same_ranking(got, [(rand.words[i], float(scores[i])) for i in order], tol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "brute"])
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_input_words_never_returned(kind, method):
    emb = random_embeddings(60, 8, seed=5)
    index = WordIndex.brute_force(emb) if kind == "brute" else WordIndex.in_memory(emb, kind)
    rng = np.random.default_rng(1)
    for _ in range(15):
        a, b, c = (emb.words[i] for i in rng.choice(len(emb), 3, replace=False))
        for exact in (True, False):
            rows = index.analogy(a, b, c, k=100, method=method, exact=exact)
            words = [r.word for r in rows]
            assert not {a, b, c} & set(words)
            assert len(words) == len(set(words))
            if kind != "hnsw" or exact or method == "3cosmul":
                assert len(words) == len(emb) - 3
        rows = index.most_similar([a, b], [c], k=100)
        assert not {a, b, c} & {r.word for r in rows}


# -- restrict_vocab --------------------------------------------------------------
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_restrict_vocab(rand, rand_flat, method):
    kv = to_keyed_vectors(rand)
    rows = rand_flat.neighbors("w5", k=10, restrict_vocab=200)
    assert all(rand.index_of(r.word) < 200 for r in rows)
    expected = kv.most_similar("w5", topn=10, restrict_vocab=200)
    assert_same_ranking(pairs(rows), [(w, float(s)) for w, s in expected], tol=1e-4)
    answers = rand_flat.analogy("w1", "w2", "w3", k=10, method=method, restrict_vocab=50)
    assert all(rand.index_of(r.word) < 50 for r in answers) and len(answers) == 10
    # The query word itself may lie outside the restricted range.
    assert len(rand_flat.neighbors("w2500", k=5, restrict_vocab=30)) == 5


# -- validation inside the library -----------------------------------------------------
def test_missing_words_are_all_named_with_suggestions(planted):
    index = WordIndex.in_memory(planted)
    with pytest.raises(MissingWords) as info:
        index.most_similar(["kinq", "queen", "zzzzzz"])
    assert info.value.words == ["kinq", "zzzzzz"]
    assert "king" in info.value.suggestions["kinq"]
    assert len(info.value.suggestions["zzzzzz"]) <= 5


@pytest.mark.parametrize("vector", [np.zeros(8), np.ones(7), np.array([np.nan] + [1.0] * 7)])
def test_bad_query_vectors_raise_value_error(planted, vector):
    index = WordIndex.in_memory(planted)
    with pytest.raises(ValueError):
        index.nearest_to_vector(vector)


def test_backend_checks_dimensions_itself(planted):
    backend = FaissBackend(build_faiss(planted, "flat"))
    with pytest.raises(ValueError, match="dimensions"):
        backend.search(np.ones((1, 5), dtype=np.float32), 3)


def test_cancelling_terms_give_no_results(planted):
    """king - king has no direction: no neighbours (gensim would return arbitrary words)."""
    index = WordIndex.in_memory(planted)
    assert index.most_similar(["king"], ["king"]) == []
    assert index.most_similar([("king", 2.0)], ["king", "king"]) == []
    assert index.most_similar(["king", "queen"], ["king"])  # a partial cancellation still searches


# -- persistence -----------------------------------------------------------------
def _files(models_dir, name):
    return store.read_meta(store.model_path(models_dir, name).resolve())["files"]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_index_is_persisted_and_loaded(models_dir, planted, kind):
    store.save_model(models_dir, "p", planted)
    backend, report = load_or_build(models_dir, "p", planted, kind=kind)
    assert report.source == "built (persisted)" and report.reason is None
    assert INDEX_FILE in _files(models_dir, "p")
    emb = store.load_model(models_dir, "p")  # checksums of every file verified
    loaded, report2 = load_or_build(models_dir, "p", emb, kind=kind)
    assert report2.source == "loaded" and loaded.kind == kind
    served = WordIndex(emb, loaded)
    assert not served.unit.flags.writeable
    np.testing.assert_array_equal(served.unit, planted.normalized)  # the index's own storage, no copy
    q = np.ascontiguousarray(planted.normalized[:5])
    np.testing.assert_array_equal(loaded.search(q, 5)[1], backend.search(q, 5)[1])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_or_missing_recorded_index_fails_until_rebuilt(models_dir, planted, damage):
    store.save_model(models_dir, "p", planted)
    load_or_build(models_dir, "p", planted)
    path = store.model_path(models_dir, "p").resolve() / INDEX_FILE
    data = path.read_bytes()
    path.unlink()  # the file is a hard link shared with the version before the index: never write through it
    if damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(store.ModelError):
        read_index(path.parent, planted)
    with pytest.raises(store.ModelError, match="index.faiss.*--rebuild"):
        load_or_build(models_dir, "p", planted)
    backend, report = load_or_build(models_dir, "p", planted, rebuild=True)
    assert report.source == "built (persisted)" and report.reason == "rebuild requested"
    assert backend.ntotal == len(planted)
    assert read_index(store.model_path(models_dir, "p").resolve(), planted).ntotal == len(planted)


@pytest.mark.parametrize("foreign", ["other-shape", "same-shape"])
def test_index_of_other_vectors_is_rebuilt_not_served(models_dir, planted, foreign):
    """A valid index of other vectors, recorded with a correct checksum (a copied file, a
    re-sealed meta.json): refused by `check_fits` and rebuilt from the model's vectors."""
    store.save_model(models_dir, "p", planted)
    n = 10 if foreign == "other-shape" else len(planted)
    other = random_embeddings(n, planted.dim)
    save_index(models_dir, "p", build_faiss(other, "flat"))  # recorded as built from p's own vectors
    with pytest.raises(store.ModelError, match="index.faiss"):
        read_index(store.model_path(models_dir, "p").resolve(), planted)
    backend, report = load_or_build(models_dir, "p", planted)
    assert report.source == "built (persisted)" and "does not match the vectors" in report.reason
    np.testing.assert_allclose(WordIndex(planted, backend).unit, planted.normalized, atol=1e-6)
    assert load_or_build(models_dir, "p", planted)[1].source == "loaded"


def test_kind_change_rebuilds(models_dir, planted):
    store.save_model(models_dir, "p", planted)
    load_or_build(models_dir, "p", planted, kind="flat")
    backend, report = load_or_build(models_dir, "p", planted, kind="hnsw")
    assert backend.kind == "hnsw" and "flat" in report.reason


def test_default_kind_switches_at_threshold(models_dir, planted):
    store.save_model(models_dir, "p", planted)
    assert load_or_build(models_dir, "p", planted, flat_max=len(planted))[0].kind == "flat"
    assert load_or_build(models_dir, "p", planted, flat_max=len(planted) - 1)[0].kind == "hnsw"


def test_index_file_is_never_unpickled(models_dir, planted):
    """A pickle placed as index.faiss (checksummed) is refused by faiss.read_index, not executed."""
    import pickle

    store.save_model(models_dir, "p", planted)
    payload = pickle.dumps({"evil": True})
    store.add_model_file(models_dir, "p", INDEX_FILE, lambda handle: handle.write(payload))
    with pytest.raises(store.ModelError, match="unreadable"):
        read_index(store.model_path(models_dir, "p").resolve(), planted)
    meta = json.loads((store.model_path(models_dir, "p") / "meta.json").read_text())
    assert INDEX_FILE in meta["files"]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_zero_rows_are_told_from_rows_starting_with_zero(kind):
    """A zero vector has no neighbours and adds nothing to a mean; a vector whose first
    component is 0 (but not the rest) is an ordinary query."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    vectors[0] = 0.0
    vectors[1, 0] = 0.0
    words = [f"w{i}" for i in range(40)]
    index = WordIndex.in_memory(Embeddings(words, vectors), kind)
    with pytest.raises(ValueError, match="zero vector"):
        index.neighbors("w0")
    oracle = WordIndex.brute_force(Embeddings(words, vectors))
    assert [n.word for n in index.neighbors("w1", k=5)] == [n.word for n in oracle.neighbors("w1", k=5)]
    # w0 adds nothing: the mean of w0 and w1 is w1's direction (w1 itself excluded, w0 too)
    both = [n.word for n in index.most_similar(["w0", "w1"], k=5)]
    assert both == [n.word for n in oracle.neighbors("w1", k=7) if n.word != "w0"][:5]
