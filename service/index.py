"""A thin FAISS boundary over an `Embeddings`: nearest neighbours, gensim-style
`most_similar`, analogies (3CosAdd, 3CosMul), pair similarity and odd-one-out.

Back ends share one interface, `search(queries, k) -> (scores, ids)` over the
L2-normalised rows:

- `FaissBackend` over an exact `IndexFlatIP` (default up to `FLAT_MAX_WORDS`
  words) or an `IndexHNSWFlat` with inner product (default above that), whose
  `efSearch` is passed per call (the shared index is never mutated);
- `BruteForceBackend`: a NumPy matrix product, the test oracle.

`WordIndex` answers word queries on top of a back end. Searches ask for
`k + len(excluded)` rows, drop FAISS's `-1` ids and the excluded words.
`restrict_vocab=N` (the first N rows, most frequent first) and `exact=True`
searches use FAISS's brute-force `knn` over the unit rows (exact, about 7 ms
at 400k x 50 on one core); 3CosMul needs every cosine to the three words, so
it is always computed exactly with one (n x d) @ (d x 3) matrix product.

The index is persisted as `index.faiss` inside the model directory via
`store.add_model_file` (atomic, sha256 in meta.json) and read back with
`faiss.read_index` on that verified path; nothing is ever unpickled.
"""
from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Protocol, Sequence, Union

import faiss
import numpy as np

from embeddings import store
from embeddings.vectors import Embeddings

INDEX_FILE = "index.faiss"
#: Above this many words the default back end is HNSW instead of the exact flat index.
FLAT_MAX_WORDS = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
COSMUL_EPS = 1e-3
ANALOGY_METHODS = ("3cosadd", "3cosmul")

#: A query term: a word, (word, weight), or a raw vector (weight 1, never excluded).
Term = Union[str, tuple[str, float], np.ndarray]


class Backend(Protocol):
    """What `WordIndex` needs from a nearest-neighbour back end."""

    kind: str
    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` inner products of unit `queries` (m x d) with the unit rows."""
        ...


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """A C-contiguous float32 (m x dim) copy-or-view; FAISS only asserts dimensions."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"query vectors must have {dim} dimensions, got shape {queries.shape}")
    return queries


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` largest entries of each row of `scores`, best first (ids, scores)."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    else:
        part = np.tile(np.arange(n), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return np.take_along_axis(part_scores, order, axis=1).astype(np.float32), ids


class BruteForceBackend:
    """Exact search by a NumPy matrix product over the unit rows (the test oracle)."""

    kind = "brute"

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit
        self.ntotal = int(unit.shape[0])
        self.dim = int(unit.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` cosines of each unit query, best first."""
        queries = _as_queries(queries, self.dim)
        # (n x d) @ (d x m): matrix-vector for one query, far faster than (1 x d) @ (d x n) in OpenBLAS.
        if len(queries) == 1:
            return _top_k((self.unit @ queries[0])[None, :], k)
        return _top_k((self.unit @ queries.T).T, k)


class FaissBackend:
    """A FAISS inner-product index over the unit rows (flat or HNSW)."""

    def __init__(self, index: faiss.Index, ef_search: int = HNSW_EF_SEARCH) -> None:
        self.index = index
        self.kind = index_kind(index)
        self.ntotal = int(index.ntotal)
        self.dim = int(index.d)
        self.ef_search = int(ef_search)

    def unit_view(self) -> np.ndarray:
        """The unit rows stored inside the index, as a read-only (n x d) view (no copy).

        Valid while this backend (which owns the index) is alive."""
        flat = self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)
        view = faiss.rev_swig_ptr(flat.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)
        view.flags.writeable = False
        return view

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` inner products; ids may contain -1 where FAISS found fewer."""
        queries = _as_queries(queries, self.dim)
        k = min(int(k), self.ntotal)
        if k <= 0:
            return _top_k(np.empty((len(queries), 0), dtype=np.float32), 0)
        if self.kind == "hnsw":
            # Per-call parameters: the shared index is never mutated while serving.
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            return self.index.search(queries, k, params=params)
        return self.index.search(queries, k)


def index_kind(index: faiss.Index) -> str:
    """'flat' or 'hnsw' for the index types this module builds; ValueError otherwise."""
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexFlatIP):
        return "flat"
    raise ValueError(f"unsupported FAISS index type {type(index).__name__}")


def default_kind(n_words: int, flat_max: int = FLAT_MAX_WORDS) -> str:
    """Exact flat search for small vocabularies, HNSW above `flat_max` words."""
    return "flat" if n_words <= flat_max else "hnsw"


def build_faiss(
    emb: Embeddings,
    kind: str | None = None,
    *,
    flat_max: int = FLAT_MAX_WORDS,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
) -> faiss.Index:
    """Build a FAISS inner-product index over a contiguous float32 copy of the unit rows."""
    kind = kind or default_kind(len(emb), flat_max)
    # Normalise a private copy (as Embeddings.normalized does) without caching a second copy on `emb`.
    unit = np.array(emb.vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(unit, axis=1)
    norms[norms == 0] = 1.0
    unit /= norms[:, None]
    if kind == "flat":
        index = faiss.IndexFlatIP(emb.dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(emb.dim, int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
    else:
        raise ValueError(f"unknown index kind {kind!r}: use 'flat' or 'hnsw'")
    index.add(unit)
    return index


def save_index(models_dir: str | os.PathLike, name: str, index: faiss.Index) -> Path:
    """Persist `index` as `index.faiss` in model `name` (atomic, checksum in meta.json)."""
    def write(handle) -> None:
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))

    return store.add_model_file(models_dir, name, INDEX_FILE, write)


def read_index_file(model_dir: str | os.PathLike) -> faiss.Index:
    """Verify `index.faiss` against meta.json, then read it; `store.ModelError` if it is
    missing, unlisted, corrupt or of a type this module does not build."""
    path = store.verify_file(Path(model_dir), INDEX_FILE)
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise store.ModelError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    try:
        index_kind(index)
    except ValueError as exc:
        raise store.ModelError(f"{path}: {exc}") from None
    return index


def check_fits(index: faiss.Index, emb: Embeddings, path: str | os.PathLike) -> faiss.Index:
    """`store.ModelError` unless `index` holds exactly one row per word of `emb`."""
    if index.ntotal != len(emb) or index.d != emb.dim:
        raise store.ModelError(
            f"{path}: index has {index.ntotal} x {index.d}, the model {len(emb)} x {emb.dim}")
    return index


def read_index(model_dir: str | os.PathLike, emb: Embeddings) -> faiss.Index:
    """Read and check the persisted index of a (resolved) model directory.

    Raises `store.ModelError` when it is missing, unlisted, corrupt, or does not
    fit the vectors (wrong size, dimension or type).
    """
    return check_fits(read_index_file(model_dir), emb, Path(model_dir) / INDEX_FILE)


@dataclass
class IndexReport:
    """How an index came to be: loaded from disk or built (and why), with timings."""

    kind: str
    source: str  # "loaded" | "built" | "built (persisted)"
    seconds: float
    reason: str | None = None
    ef_search: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for GET /models."""
        out = {"kind": self.kind, "source": self.source, "seconds": round(self.seconds, 3)}
        if self.ef_search is not None:
            out["ef_search"] = self.ef_search
        if self.reason:
            out["rebuild_reason"] = self.reason
        return out


def load_or_build(
    models_dir: str | os.PathLike,
    name: str,
    emb: Embeddings,
    *,
    model_dir: str | os.PathLike | None = None,
    kind: str | None = None,
    flat_max: int = FLAT_MAX_WORDS,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    ef_search: int = HNSW_EF_SEARCH,
    persist: bool = True,
    rebuild: bool = False,
    preloaded: Callable[[], faiss.Index] | None = None,
) -> tuple[FaissBackend, IndexReport]:
    """Load model `name`'s persisted index, or build it (and persist it) when it is
    missing, unrecorded, of the wrong kind, or `rebuild` is set. A recorded index that
    fails its checksum raises `store.ModelError` (the model is reported failed).

    `preloaded()` may return the index file already read (e.g. in a thread while the
    vectors loaded) or raise `store.ModelError`; by default `read_index_file` is called."""
    want = kind or default_kind(len(emb), flat_max)
    model_dir = Path(model_dir) if model_dir is not None else store.model_path(models_dir, name).resolve()
    started = time.perf_counter()
    reason = "rebuild requested" if rebuild else None
    if not rebuild:
        try:
            index = check_fits((preloaded or (lambda: read_index_file(model_dir)))(), emb,
                               model_dir / INDEX_FILE)
            if index_kind(index) == want:
                report = IndexReport(want, "loaded", time.perf_counter() - started,
                                     ef_search=ef_search if want == "hnsw" else None)
                return FaissBackend(index, ef_search), report
            reason = f"persisted index is {index_kind(index)}, configured {want}"
        except store.ModelError as exc:
            if INDEX_FILE in store.read_meta(model_dir)["files"]:
                # A recorded index that fails its checksum is corruption: report the model as
                # failed (issue 8) instead of silently serving a rebuilt one.
                raise store.ModelError(
                    f"{exc}; rebuild it with: wordspace index {name} --rebuild") from None
            # Never built, or a build killed before meta.json recorded it: build now.
            reason = None if not (model_dir / INDEX_FILE).exists() else "unrecorded index file from an interrupted build"
    index = build_faiss(emb, want, flat_max=flat_max, m=m, ef_construction=ef_construction)
    source = "built"
    if persist:
        save_index(models_dir, name, index)
        source = "built (persisted)"
    report = IndexReport(want, source, time.perf_counter() - started, reason,
                         ef_search=ef_search if want == "hnsw" else None)
    return FaissBackend(index, ef_search), report


# -- word queries ------------------------------------------------------------------
class Neighbor(NamedTuple):
    """One result row: a word and its score (a cosine, or the 3CosMul objective)."""

    word: str
    score: float


@dataclass
class WordIndex:
    """Read-only word queries over `emb` using `backend` for nearest-neighbour search."""

    emb: Embeddings
    backend: Backend
    suggest_limit: int = 100_000
    #: The L2-normalised rows: the FAISS index's own storage when it has one (no second
    #: copy, nothing to recompute at start), else `emb.normalized`.
    unit: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.unit is None:
            view = getattr(self.backend, "unit_view", None)
            self.unit = view() if view is not None else self.emb.normalized
        if self.unit.shape != (len(self.emb), self.emb.dim):
            raise ValueError(f"unit rows {self.unit.shape} do not match the embeddings "
                             f"({len(self.emb)} x {self.emb.dim})")

    @classmethod
    def brute_force(cls, emb: Embeddings) -> "WordIndex":
        """The oracle: exact NumPy search."""
        return cls(emb, BruteForceBackend(emb.normalized))

    @classmethod
    def in_memory(cls, emb: Embeddings, kind: str | None = None, ef_search: int = HNSW_EF_SEARCH,
                  **build_options: Any) -> "WordIndex":
        """Build a FAISS index in memory (no persistence)."""
        return cls(emb, FaissBackend(build_faiss(emb, kind, **build_options), ef_search))

    @property
    def kind(self) -> str:
        return self.backend.kind

    # -- helpers -----------------------------------------------------------------
    def require(self, words: Iterable[str]) -> None:
        """Raise `MissingWords` naming every unknown word (checked by membership)."""
        missing = self.emb.missing(words)
        if missing:
            raise MissingWords(missing, {w: self.suggestions(w) for w in missing})

    @cached_property
    def _by_length(self) -> dict[int, list[str]]:
        buckets: dict[int, list[str]] = {}
        for word in self.emb.words[: self.suggest_limit]:
            buckets.setdefault(len(word), []).append(word)
        return buckets

    def suggestions(self, word: str, n: int = 5) -> list[str]:
        """Up to `n` close spellings among the `suggest_limit` most frequent words."""
        if not isinstance(word, str) or not word:
            return []
        candidates: list[str] = []
        for length in range(max(1, len(word) - 2), len(word) + 3):
            candidates.extend(self._by_length.get(length, ()))
        lowered = word.lower()
        exact_case = [lowered] if lowered != word and lowered in self.emb else []
        close = difflib.get_close_matches(word, candidates, n=n, cutoff=0.7)
        return list(dict.fromkeys(exact_case + close))[:n]

    def _unit(self, word: str) -> np.ndarray:
        return self.unit[self.emb.index_of(word)]

    def _search(self, query: np.ndarray, k: int, exclude: Sequence[int] = (),
                restrict_vocab: int | None = None, exact: bool = False) -> list[Neighbor]:
        """Top-`k` rows for one unit query, skipping `exclude` ids and FAISS's -1."""
        n = len(self.emb)
        limit = n if restrict_vocab is None else max(0, min(int(restrict_vocab), n))
        excluded = {int(i) for i in exclude if int(i) < limit}
        want = min(k + len(excluded), limit)
        if want <= 0:
            return []
        if exact or limit < n:
            # Exact: FAISS's brute-force kNN over the (first `limit`) unit rows, no copy.
            scores, ids = faiss.knn(_as_queries(query, self.emb.dim), self.unit[:limit], want,
                                    metric=faiss.METRIC_INNER_PRODUCT)
        else:
            scores, ids = self.backend.search(query, want)
        out: list[Neighbor] = []
        for score, i in zip(scores[0].tolist(), ids[0].tolist()):
            if i < 0 or i in excluded:
                continue
            out.append(Neighbor(self.emb.words[i], float(score)))
            if len(out) == k:
                break
        return out

    def _combine(self, positive: Sequence[Term], negative: Sequence[Term]) -> tuple[np.ndarray, list[int]]:
        """gensim's mean of the weighted unit vectors (raw vectors as given), unit-normed."""
        terms: list[tuple[Any, float]] = []
        for sign, group in ((1.0, positive), (-1.0, negative)):
            for term in group:
                if isinstance(term, np.ndarray):
                    terms.append((term, sign))
                elif isinstance(term, tuple):
                    terms.append((term[0], sign * float(term[1])))
                else:
                    terms.append((term, sign))
        if not terms:
            raise ValueError("give at least one positive or negative term")
        self.require([t for t, _ in terms if not isinstance(t, np.ndarray)])
        mean = np.zeros(self.emb.dim, dtype=np.float64)
        used: list[int] = []
        for term, weight in terms:
            if isinstance(term, np.ndarray):
                vector = np.asarray(term, dtype=np.float64).reshape(-1)
                if vector.shape != (self.emb.dim,):
                    raise ValueError(f"vector must have {self.emb.dim} dimensions, got {vector.shape[0]}")
                if not np.all(np.isfinite(vector)):
                    raise ValueError("vector values must be finite")
                mean += weight * vector
            else:
                row = self.emb.index_of(term)
                used.append(row)
                mean += weight * self.unit[row]
        norm = np.linalg.norm(mean)
        if not np.isfinite(norm) or norm == 0:
            raise ValueError("the query vector is zero (or not finite); nothing to search for")
        return (mean / norm).astype(np.float32), used

    # -- queries -----------------------------------------------------------------
    def neighbors(self, word: str, k: int = 10, restrict_vocab: int | None = None,
                  exact: bool = False) -> list[Neighbor]:
        """Nearest neighbours of `word`, the word itself excluded (= most_similar([word]):
        the mean of one unit vector is that vector, so it is used as the query directly)."""
        self.require([word])
        row = self.emb.index_of(word)
        if not np.any(self.unit[row]):
            raise ValueError(f"{word!r} has a zero vector; it has no neighbours")
        return self._search(self.unit[row:row + 1], k, (row,), restrict_vocab, exact)

    def nearest_to_vector(self, vector: np.ndarray, k: int = 10, restrict_vocab: int | None = None,
                          exact: bool = False) -> list[Neighbor]:
        """Nearest words to a raw vector (cosine); nothing is excluded."""
        return self.most_similar([np.asarray(vector)], k=k, restrict_vocab=restrict_vocab, exact=exact)

    def most_similar(self, positive: Sequence[Term] = (), negative: Sequence[Term] = (), k: int = 10,
                     restrict_vocab: int | None = None, exact: bool = False) -> list[Neighbor]:
        """gensim `most_similar(positive, negative, topn=k)`: cosine to the mean of the
        weighted unit vectors; every input word excluded from the results."""
        query, used = self._combine(positive, negative)
        return self._search(query, k, used, restrict_vocab, exact)

    def analogy(self, a: str, b: str, c: str, k: int = 10, method: str = "3cosadd",
                restrict_vocab: int | None = None, exact: bool = True) -> list[Neighbor]:
        """a is to b as c is to ?: 3CosAdd argmax cos(x, b - a + c) on unit vectors, or
        3CosMul argmax cos'(x,b) cos'(x,c) / (cos'(x,a) + 1e-3), cos' = (cos + 1) / 2.
        a, b and c are never returned. 3CosMul is always exact."""
        if method not in ANALOGY_METHODS:
            raise ValueError(f"unknown analogy method {method!r}: use one of {', '.join(ANALOGY_METHODS)}")
        self.require([a, b, c])
        if method == "3cosadd":
            return self.most_similar([b, c], [a], k=k, restrict_vocab=restrict_vocab, exact=exact)
        rows = [self.emb.index_of(w) for w in (a, b, c)]
        n = len(self.emb)
        limit = n if restrict_vocab is None else max(0, min(int(restrict_vocab), n))
        unit = self.unit[:limit]
        cos = unit @ self.unit[rows].T  # (limit, 3): one matrix product
        cos += 1.0
        cos *= 0.5  # cosines shifted to [0, 1]
        scores = cos[:, 1] * cos[:, 2] / (cos[:, 0] + COSMUL_EPS)
        excluded = {r for r in rows if r < limit}
        top_scores, ids = _top_k(scores[None, :], min(k + len(excluded), limit))
        out = [Neighbor(self.emb.words[i], float(s))
               for s, i in zip(top_scores[0].tolist(), ids[0].tolist()) if i not in excluded]
        return out[:k]

    def similarity(self, a: str, b: str) -> float:
        """Cosine of two words (KeyError for unknown words)."""
        return float(self._unit(a) @ self._unit(b))

    def odd_one_out(self, words: Sequence[str]) -> tuple[str, list[Neighbor]]:
        """gensim `doesnt_match`: the word farthest (cosine) from the mean of the unit
        vectors; also every word's cosine to that mean, in input order."""
        if len(words) < 2:
            raise ValueError("odd-one-out needs at least two words")
        self.require(words)
        unit = self.unit[[self.emb.index_of(w) for w in words]]
        mean = unit.mean(axis=0)
        norm = np.linalg.norm(mean)
        if norm == 0:
            raise ValueError("the mean of these words is the zero vector")
        scores = unit @ (mean / norm)
        scored = [Neighbor(w, float(s)) for w, s in zip(words, scores.tolist())]
        return words[int(np.argmin(scores))], scored


class MissingWords(KeyError):
    """Some query words are not in the vocabulary; carries close spellings for each."""

    def __init__(self, words: Sequence[str], suggestions: Mapping[str, list[str]]) -> None:
        super().__init__(f"not in the vocabulary: {', '.join(repr(w) for w in words)}")
        self.words = list(words)
        self.suggestions = dict(suggestions)
