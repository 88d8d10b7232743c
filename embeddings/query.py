"""The one query layer: word queries over an `Embeddings` and a nearest-neighbour
back end (`embeddings.index`). The REST API, the Python API (`wordspace.Model`),
the plots and contextual lookups all answer through it.

- `neighbors` / `most_similar`: gensim's `most_similar(positive, negative)`,
  cosine to the mean of the weighted unit vectors, every input word excluded.
- `analogy`: a is to b as c is to ?, 3CosAdd (argmax cos(x, b - a + c)) or
  3CosMul (Levy & Goldberg 2014; `COSMUL_EPS`).
- `similarity`, `odd_one_out` (gensim's `doesnt_match`), `nearest_to_vector`.
- `complete` (words by prefix over the whole vocabulary) and `project` (2-D map
  coordinates of words, `embeddings.projection`), for the web explorer.

Searches ask the back end for `k + len(excluded)` rows, drop FAISS's `-1` ids and
the excluded words. `restrict_vocab=N` (the first N rows, most frequent first)
and `exact=True` searches use FAISS's brute-force `knn` over the unit rows
(exact, about 7 ms at 400k x 50 on one core); 3CosMul needs every cosine to the
three words, so it is always computed exactly with one (n x d) @ (d x 3) product.
Unknown words raise `MissingWords` (a `KeyError`) naming each with close spellings.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, NamedTuple, Sequence, Union

import faiss
import numpy as np

from .completion import Completions, PrefixIndex
from .index import HNSW_EF_SEARCH, Backend, BruteForceBackend, FaissBackend, build_faiss
from .projection import RANDOM_STATE, Projection, project_2d
from .topk import as_queries, top_k
from .vectors import Embeddings

#: 3CosMul's epsilon (Levy & Goldberg 2014), also used by the batch evaluation.
COSMUL_EPS = 1e-3
ANALOGY_METHODS = ("3cosadd", "3cosmul")

#: A query term: a word, (word, weight), or a raw vector (weight 1, never excluded).
Term = Union[str, tuple[str, float], np.ndarray]


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

    @cached_property
    def prefixes(self) -> PrefixIndex:
        """The sorted vocabulary for `complete` (built on first use, then shared)."""
        return PrefixIndex(self.emb.words)

    def complete(self, prefix: str, limit: int = 10) -> Completions:
        """Up to `limit` words starting with `prefix`, most frequent (lowest row) first,
        searched over the whole vocabulary; also how many words match."""
        return self.prefixes.complete(prefix, limit)

    def project(self, words: Sequence[str], fit_top: int | None = None,
                random_state: int = RANDOM_STATE) -> Projection:
        """2-D coordinates of `words` (`embeddings.projection`): the map of their unit
        vectors fit on the words themselves, or on the `fit_top` most frequent words."""
        self.require(words)
        rows = self.unit[[self.emb.index_of(w) for w in words]]
        if fit_top is None:
            return project_2d(rows, None, random_state)
        if isinstance(fit_top, bool) or not isinstance(fit_top, int) or fit_top < 2:
            raise ValueError(f"fit_top must be an integer >= 2, got {fit_top!r}")
        return project_2d(rows, self.unit[:fit_top], random_state)

    def _is_zero(self, row: int) -> bool:
        """Whether unit row `row` is all zeros (no direction); the first component decides
        for almost every row without a NumPy reduction (~0.2 us instead of ~2.5 per query)."""
        return self.unit[row, 0] == 0 and not self.unit[row].any()

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
            scores, ids = faiss.knn(as_queries(query, self.emb.dim), self.unit[:limit], want,
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

    def _combine(self, positive: Sequence[Term], negative: Sequence[Term]) -> tuple[np.ndarray | None, list[int]]:
        """gensim's mean of the weighted unit vectors (raw vectors as given), unit-normed;
        None when the terms cancel out exactly (king - king): no direction to search."""
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
        scale = 0.0  # the largest norm the mean could have: what "cancelled out" is relative to
        used: list[int] = []
        for term, weight in terms:
            if isinstance(term, np.ndarray):
                vector = np.asarray(term, dtype=np.float64).reshape(-1)
                if vector.shape != (self.emb.dim,):
                    raise ValueError(f"vector must have {self.emb.dim} dimensions, got {vector.shape[0]}")
                if not np.all(np.isfinite(vector)):
                    raise ValueError("vector values must be finite")
                if not np.any(vector):
                    raise ValueError("the vector is all zeros; a zero vector has no direction")
                mean += weight * vector
                scale += abs(weight) * float(np.linalg.norm(vector))
            else:
                row = self.emb.index_of(term)
                used.append(row)
                mean += weight * self.unit[row]
                scale += 0.0 if self._is_zero(row) else abs(weight)  # a zero vector adds nothing
        norm = np.linalg.norm(mean)
        if not np.isfinite(norm):
            raise ValueError("the query vector is not finite; nothing to search for")
        if scale == 0:
            raise ValueError("every term has a zero vector; there is no direction to search")
        if norm <= 1e-9 * scale:  # cancelled out, up to rounding (a + b - a - b need not be exactly 0)
            return None, used
        return (mean / norm).astype(np.float32), used

    # -- queries -----------------------------------------------------------------
    def neighbors(self, word: str, k: int = 10, restrict_vocab: int | None = None,
                  exact: bool = False) -> list[Neighbor]:
        """Nearest neighbours of `word`, the word itself excluded (= most_similar([word]):
        the mean of one unit vector is that vector, so it is used as the query directly)."""
        self.require([word])
        row = self.emb.index_of(word)
        if self._is_zero(row):
            raise ValueError(f"{word!r} has a zero vector; it has no neighbours")
        return self._search(self.unit[row:row + 1], k, (row,), restrict_vocab, exact)

    def nearest_to_vector(self, vector: np.ndarray, k: int = 10, restrict_vocab: int | None = None,
                          exact: bool = False) -> list[Neighbor]:
        """Nearest words to a raw vector (cosine); nothing is excluded."""
        return self.most_similar([np.asarray(vector)], k=k, restrict_vocab=restrict_vocab, exact=exact)

    def most_similar(self, positive: Sequence[Term] = (), negative: Sequence[Term] = (), k: int = 10,
                     restrict_vocab: int | None = None, exact: bool = False) -> list[Neighbor]:
        """gensim `most_similar(positive, negative, topn=k)`: cosine to the mean of the
        weighted unit vectors; every input word excluded from the results. Terms that cancel
        out exactly (king - king) leave no direction: no results (gensim returns arbitrary words)."""
        query, used = self._combine(positive, negative)
        if query is None:
            return []
        return self._search(query, k, used, restrict_vocab, exact)

    def analogy(self, a: str, b: str, c: str, k: int = 10, method: str = "3cosadd",
                restrict_vocab: int | None = None, exact: bool = True,
                eps: float = COSMUL_EPS) -> list[Neighbor]:
        """a is to b as c is to ?: 3CosAdd argmax cos(x, b - a + c) on unit vectors, or
        3CosMul argmax cos'(x,b) cos'(x,c) / (cos'(x,a) + eps), cos' = (cos + 1) / 2
        (eps 1e-3 as Levy & Goldberg; gensim's `most_similar_cosmul` uses 1e-6).
        a, b and c are never returned. 3CosMul is always exact."""
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < float("inf")):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
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
        scores = cos[:, 1] * cos[:, 2] / (cos[:, 0] + eps)
        excluded = {r for r in rows if r < limit}
        top_scores, ids = top_k(scores[None, :], min(k + len(excluded), limit))
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
    """Some query words are not in the vocabulary; names each with its close spellings."""

    def __init__(self, words: Sequence[str], suggestions: Mapping[str, list[str]]) -> None:
        self.words = list(words)
        self.suggestions = dict(suggestions)
        parts = []
        for word in self.words:
            hint = self.suggestions.get(word) or []
            parts.append(f"{word!r}" + (f" (did you mean {', '.join(hint)}?)" if hint else ""))
        self.message = f"not in the vocabulary: {'; '.join(parts)}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return self.message
