"""The in-memory word-vector store: words, a float32 matrix, counts and metadata.

A slim `KeyedVectors`: lookups never mutate the store, returned arrays are
read-only, and unknown words raise `KeyError` (never a silent zero vector).
File formats, persistence and indexing live in other modules and take an
`Embeddings`.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

_CHECK_ROWS = 1 << 16  # rows checked per step: bounded temporary memory for memory-mapped matrices


def first_non_finite_row(vectors: np.ndarray) -> int | None:
    """The first row of `vectors` holding NaN or an infinity (None when every value is
    finite). Checked in blocks, so a memory-mapped matrix is read once, never copied whole."""
    for start in range(0, len(vectors), _CHECK_ROWS):
        finite = np.isfinite(np.asarray(vectors[start:start + _CHECK_ROWS]))
        if not finite.all():
            return start + int(np.argmin(finite.all(axis=1)))
    return None


def _readonly(array: np.ndarray) -> np.ndarray:
    """Return a view of `array` that callers cannot write through."""
    view = array.view()
    view.flags.writeable = False
    return view


class Embeddings:
    """Word vectors: `words[i]` has vector `vectors[i]` (float32, n x d).

    `counts` (optional) are corpus frequencies in the same order; `meta` holds
    the method, hyper-parameters, corpus hash and creation time.
    """

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        counts: Sequence[int] | np.ndarray | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        words = tuple(words)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D matrix, got shape {vectors.shape}")
        if vectors.dtype != np.float32:
            vectors = vectors.astype(np.float32)
        if len(words) != vectors.shape[0]:
            raise ValueError(
                f"vocab/vector count mismatch: {len(words)} words but {vectors.shape[0]} vectors"
            )
        if vectors.shape[1] < 1:
            raise ValueError("vectors must have at least one dimension")
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word or "\t" in word or "\n" in word or "\r" in word:
                raise ValueError(f"word {i} is empty, not a string, or contains a tab or newline: {word!r}")
        index = {word: i for i, word in enumerate(words)}
        if len(index) != len(words):
            seen: dict[str, int] = {}
            for i, word in enumerate(words):
                if word in seen:
                    raise ValueError(f"duplicate word {word!r} at rows {seen[word]} and {i}")
                seen[word] = i
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(words),):
                raise ValueError(
                    f"counts has shape {counts.shape}, expected ({len(words)},)"
                )
            counts = _readonly(counts)
        self._words = words
        self._index = index
        self._vectors = _readonly(vectors)
        self._counts = counts
        self.meta: dict[str, Any] = dict(meta or {})

    # -- container protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._index

    def __iter__(self):
        return iter(self._words)

    def __repr__(self) -> str:
        method = self.meta.get("method", "?")
        return f"Embeddings(method={method!r}, vocab={len(self)}, dim={self.dim})"

    # -- accessors ----------------------------------------------------------
    @property
    def words(self) -> tuple[str, ...]:
        """Words in row order (most frequent first for trained models)."""
        return self._words

    @property
    def vectors(self) -> np.ndarray:
        """The read-only float32 matrix (n x d)."""
        return self._vectors

    @property
    def counts(self) -> np.ndarray | None:
        """Read-only corpus counts in row order, or None when unknown."""
        return self._counts

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def index_of(self, word: str) -> int:
        """Row of `word`; raises `KeyError` for unknown words and non-strings."""
        if not isinstance(word, str):
            raise KeyError(word)
        return self._index[word]

    def get_index(self, word: str, default: int | None = None) -> int | None:
        """Row of `word`, or `default` when it is unknown."""
        if not isinstance(word, str):
            return default
        return self._index.get(word, default)

    def vector(self, word: str) -> np.ndarray:
        """The (read-only) vector of `word`; raises `KeyError` if unknown."""
        return self._vectors[self.index_of(word)]

    def missing(self, words: Iterable[str]) -> list[str]:
        """The words of `words` that are not in the vocabulary, in order, once each."""
        seen: list[str] = []
        for word in words:
            if word not in self and word not in seen:
                seen.append(word)
        return seen

    @cached_property
    def norms(self) -> np.ndarray:
        """L2 norm of every row (float32, read-only)."""
        return _readonly(np.linalg.norm(self._vectors, axis=1).astype(np.float32))

    @cached_property
    def normalized(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero); cached, read-only, C-contiguous."""
        norms = np.asarray(self.norms).copy()
        norms[norms == 0] = 1.0
        unit = np.ascontiguousarray(self._vectors / norms[:, None], dtype=np.float32)
        return _readonly(unit)

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words."""
        unit = self.normalized
        return float(unit[self.index_of(word1)] @ unit[self.index_of(word2)])

    def subset(self, n: int) -> "Embeddings":
        """The first `n` words (the most frequent ones for trained models)."""
        counts = None if self._counts is None else self._counts[:n]
        return Embeddings(self._words[:n], self._vectors[:n], counts, self.meta)
