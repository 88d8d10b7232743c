"""SVD co-occurrence embeddings: counts -> PPMI -> truncated SVD.

The method of CS224n's first assignment, tuned as Levy, Goldberg & Dagan (2015)
did in `hyperwords`: count word-context pairs in a symmetric window, weight them
by positive PMI with context-distribution smoothing, and keep the top singular
vectors with eigenvalue weighting W = U * S**eig.

Three pure steps, each testable against a matrix computed by hand, chained by
`SVDTrainer`:

* `count_cooccurrences(corpus, vocab, window, weighting, ...)` -> CSR (V x V)
* `ppmi(counts, cds=0.75, shift=1.0)` -> CSR (V x V)
* `svd_embed(ppmi, dim=100, eig=0.5, random_state=0)` -> (V x dim) float32

The counting engine (conventions, speed, memory) lives in `embeddings.cooccurrence`;
`count_cooccurrences` is re-exported here.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .cooccurrence import (  # noqa: F401  (re-exported: the counting step is part of this module's API)
    CHUNK_BYTES,
    COUNTS_FILE,
    COUNTS_INFO,
    COUNTS_VERSION,
    COUNTS_VOCAB,
    MAX_WEIGHTED_WINDOW,
    MAX_WINDOW,
    WEIGHTINGS,
    CountCheckpoint,
    _check_count_params,
    _PROGRESS,
    _words_sha256,
    count_cooccurrences,
    distance_weights,
    load_counts_npz,
    read_counts,
    write_counts,
)
from .corpus import PreparedCorpus, Vocabulary
from .vectors import Embeddings


# -- PPMI ---------------------------------------------------------------------
def ppmi(counts: sp.spmatrix, cds: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """Positive PMI with context-distribution smoothing and a shift by log(`shift`).

    PMI(w, c) = log( #(w,c) * sum_c' #(c')**cds / (#(w) * #(c)**cds) ), with #(w)
    the row sums and #(c) the column sums of `counts`; entries <= log(shift)
    become 0 (and are removed), the others are PMI - log(shift). `cds=1` is
    plain PPMI (hyperwords' default); ours is 0.75. Returns float64 CSR.
    """
    if isinstance(cds, bool) or not isinstance(cds, (int, float)) or not math.isfinite(cds) or cds <= 0:
        raise ValueError(f"cds must be a number > 0, got {cds!r}")
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift < 1:
        raise ValueError(f"shift must be a number >= 1 (the k of log k), got {shift!r}")
    m = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"counts must be square (V x V), got shape {m.shape}")
    m.sum_duplicates()
    m.eliminate_zeros()
    if m.nnz == 0:
        raise ValueError("the co-occurrence matrix is empty")
    if m.data.min() < 0 or not np.all(np.isfinite(m.data)):
        raise ValueError("co-occurrence counts must be finite and >= 0")
    row_sums = np.asarray(m.sum(axis=1)).ravel()
    col_sums = np.asarray(m.sum(axis=0)).ravel() ** cds
    total = col_sums.sum()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    with np.errstate(divide="ignore"):
        pmi = (np.log(m.data) + np.log(total)
               - np.log(row_sums[rows]) - np.log(col_sums[m.indices]))
    pmi -= math.log(shift)
    top = float(pmi.max()) + math.log(shift)
    pmi[pmi <= 0] = 0.0
    m.data = pmi
    m.eliminate_zeros()
    if m.nnz == 0:
        raise ValueError(f"shift={shift} removes every entry: the largest PMI is {top:.4g}, "
                         f"so the shift must be below exp({top:.4g}) = {math.exp(top):.4g}")
    return m


# -- SVD ------------------------------------------------------------------------
def svd_embed(
    matrix: sp.spmatrix,
    dim: int = 100,
    eig: float = 0.5,
    random_state: int = 0,
    add_context: bool = False,
    n_iter: int = 5,
) -> np.ndarray:
    """Word vectors W = U * S**eig from a truncated SVD of `matrix` (V x V).

    Uses scikit-learn's randomized `TruncatedSVD` with a fixed `random_state`,
    whose sign convention (svd_flip) makes a run reproducible; BLAS runs on one
    thread so the rounding does not depend on the machine's cores. `add_context`
    returns W + C with C = V * S**eig (hyperwords' "w+c"). The SVD runs in float32.
    Returns float32 (V x dim).
    """
    from sklearn.decomposition import TruncatedSVD
    from threadpoolctl import threadpool_limits

    n = min(matrix.shape)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if dim >= n:
        raise ValueError(f"dim={dim} must be smaller than the vocabulary size ({n})")
    if isinstance(eig, bool) or not isinstance(eig, (int, float)) or not math.isfinite(eig):
        raise ValueError(f"eig must be a finite number, got {eig!r}")
    # float32 halves the memory traffic of the sparse products that dominate randomized SVD
    # (2x faster here); word vectors are float32 anyway.
    x = sp.csr_matrix(matrix, dtype=np.float32)
    svd = TruncatedSVD(n_components=int(dim), algorithm="randomized", n_iter=n_iter,
                       random_state=random_state)
    # One BLAS thread: the float rounding (hence the vectors) no longer depends on the
    # core count, and the small dense LU/QR/SVD steps ran 4x faster than with
    # OpenBLAS's 2 threads on the shared 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        us = svd.fit_transform(x)             # (V, dim) = U * S
    s = svd.singular_values_                  # (dim,)
    safe = np.where(s > 0, s, 1.0)
    weights = np.where(s > 0, s ** eig, 0.0)
    w = us.astype(np.float64) / safe * weights   # U * S**eig
    if add_context:
        w = w + svd.components_.T * weights   # + V * S**eig
    return np.ascontiguousarray(w, dtype=np.float32)


# -- the estimator ----------------------------------------------------------------
def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")


def _sentences_corpus(sentences: Iterable[Sequence[str]]) -> tuple[list[list[str]], str, int]:
    """Materialize an in-memory corpus; return (sentences, sha256 of its corpus.txt form, tokens)."""
    kept = [list(s) for s in sentences if len(s)]
    digest = hashlib.sha256()
    for s in kept:
        digest.update((" ".join(s) + "\n").encode("utf-8"))
    return kept, digest.hexdigest(), sum(len(s) for s in kept)


class SVDTrainer:
    """PPMI + truncated SVD word vectors, as a scikit-learn-style estimator.

    `fit(corpus)` chains `count_cooccurrences` -> `ppmi` -> `svd_embed` and
    sets `embeddings_` (rows in vocabulary order, most frequent first),
    `counts_` (the V x V co-occurrence matrix), `vocabulary_` and `counts_key_`
    (identifies the counts: corpus sha256 + counting parameters + vocabulary).
    Words whose PPMI row is empty (no positive-PMI context) get no vector and
    are left out of `embeddings_` rather than given a zero vector; their number
    is in meta["dropped_words"].
    """

    method = "svd"

    def __init__(
        self,
        dim: int = 100,
        window: int = 5,
        weighting: str = "uniform",
        dynamic_window: bool = False,
        subsample: float | None = None,
        min_count: int = 5,
        max_vocab: int | None = None,
        cds: float = 0.75,
        shift: float = 1.0,
        eig: float = 0.5,
        add_context: bool = False,
        random_state: int = 0,
        n_iter: int = 5,
        workers: int | None = None,
    ) -> None:
        self.dim = dim
        self.window = window
        self.weighting = weighting
        self.dynamic_window = dynamic_window
        self.subsample = subsample
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.cds = cds
        self.shift = shift
        self.eig = eig
        self.add_context = add_context
        self.random_state = random_state
        self.n_iter = n_iter
        self.workers = workers

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters, as stored in meta.json."""
        return {
            "dim": self.dim, "window": self.window, "weighting": self.weighting,
            "dynamic_window": bool(self.dynamic_window), "subsample": self.subsample,
            "min_count": self.min_count, "max_vocab": self.max_vocab, "cds": float(self.cds),
            "shift": float(self.shift), "eig": float(self.eig), "add_context": bool(self.add_context),
            "random_state": self.random_state, "n_iter": self.n_iter,
        }

    def count_params(self) -> dict[str, Any]:
        """The parameters that decide the counts matrix (a change means recounting)."""
        return {"window": self.window, "weighting": self.weighting,
                "dynamic_window": bool(self.dynamic_window), "subsample": self.subsample,
                "min_count": self.min_count, "max_vocab": self.max_vocab,
                # subsampling draws per chunk, so the chunk size matters then
                "seed": self.random_state if self.subsample is not None else None,
                "chunk_bytes": CHUNK_BYTES if self.subsample is not None else None,
                "version": COUNTS_VERSION}

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad hyper-parameter (cheap: no corpus read)."""
        _check_int("dim", self.dim, 1)
        _check_count_params(self.window, self.weighting, self.dynamic_window, self.subsample)
        _check_int("min_count", self.min_count, 1)
        if self.max_vocab is not None:
            _check_int("max_vocab", self.max_vocab, 2)
        for name in ("cds", "shift", "eig"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.cds <= 0:
            raise ValueError(f"cds must be > 0 (context counts are raised to it), got {self.cds!r}")
        if self.shift < 1:
            raise ValueError(f"shift must be >= 1 (PMI is shifted by log(shift)), got {self.shift!r}")
        _check_int("random_state", self.random_state, 0, 2**32 - 1)
        _check_int("n_iter", self.n_iter, 1)
        if self.workers is not None:
            _check_int("workers", self.workers, 1, 512)
        if not isinstance(self.add_context, bool):
            raise ValueError(f"add_context must be True or False, got {self.add_context!r}")

    def vocabulary(self, corpus: PreparedCorpus) -> Vocabulary:
        """The vocabulary this trainer uses on `corpus`; raises `ValueError` if it cannot train."""
        if corpus.n_tokens <= 0:
            raise ValueError(f"the corpus {corpus.directory} is empty: it contains no tokens")
        vocab = corpus.vocabulary(self.min_count, self.max_vocab)
        self._check_vocab(vocab)
        return vocab

    def _check_vocab(self, vocab: Vocabulary) -> None:
        if self.dim >= len(vocab):
            raise ValueError(f"dim={self.dim} must be smaller than the vocabulary size ({len(vocab)} words "
                             f"with min_count={self.min_count}); lower --dim or --min-count")

    def counts_key(self, corpus_sha256: str, vocab: Vocabulary) -> str:
        """sha256 identifying a counts matrix: corpus, counting parameters and vocabulary."""
        blob = json.dumps({"corpus": corpus_sha256, "params": self.count_params(),
                           "words": _words_sha256(vocab.words)}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def fit(
        self,
        corpus: "PreparedCorpus | str | os.PathLike | Iterable[Sequence[str]]",
        *,
        counts: sp.spmatrix | None = None,
        progress: _PROGRESS | None = None,
        on_counts: Callable[[sp.csr_matrix, "SVDTrainer"], None] | None = None,
        checkpoint: CountCheckpoint | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> "SVDTrainer":
        """Train on `corpus` (prepared corpus, path, "sample", or token lists); return self.

        `counts` re-uses a matrix counted earlier with the same `counts_key_`
        (the caller checks the key); `on_counts(counts, self)` runs right after
        counting (the CLI checkpoints the matrix there); `checkpoint` snapshots a
        long count of a corpus file and resumes it (see `CountCheckpoint`);
        `progress(n)` gets the tokens read since its last call.
        """
        from .corpus import build_vocabulary
        from .training import as_prepared

        self.check_params()
        started = time.perf_counter()
        if isinstance(corpus, (PreparedCorpus, str, os.PathLike)):
            prepared = as_prepared(corpus, data_dir)
            vocab = self.vocabulary(prepared)
            source: Any = prepared
            corpus_info = {"sha256": prepared.sha256, "n_tokens": prepared.n_tokens,
                           "n_sentences": prepared.n_sentences, "n_types": prepared.n_types}
        else:
            sentences, sha, n_tokens = _sentences_corpus(corpus)
            if n_tokens == 0:
                raise ValueError("the corpus is empty: it contains no tokens")
            vocab = build_vocabulary(sentences, self.min_count, self.max_vocab)
            self._check_vocab(vocab)
            source = sentences
            corpus_info = {"sha256": sha, "n_tokens": n_tokens, "n_sentences": len(sentences),
                           "n_types": None}
        self.vocabulary_ = vocab
        self.counts_key_ = self.counts_key(corpus_info["sha256"], vocab)
        V = len(vocab)
        timings: dict[str, float] = {}
        stats: dict[str, Any] = {}
        t = time.perf_counter()
        if counts is not None:
            counts = sp.csr_matrix(counts, dtype=np.float64)
            if counts.shape != (V, V):
                raise ValueError(f"the given counts matrix has shape {counts.shape}, expected ({V}, {V})")
            reused = True
        else:
            counts = count_cooccurrences(source, vocab, self.window, self.weighting, self.dynamic_window,
                                         self.subsample, self.random_state, workers=self.workers,
                                         progress=progress, stats=stats, checkpoint=checkpoint)
            reused = False
            timings["count_s"] = time.perf_counter() - t
            if on_counts is not None:
                on_counts(counts, self)
        self.counts_ = counts
        t = time.perf_counter()
        weighted = ppmi(counts, self.cds, self.shift)
        timings["ppmi_s"] = time.perf_counter() - t
        t = time.perf_counter()
        vectors = svd_embed(weighted, self.dim, self.eig, self.random_state, self.add_context, self.n_iter)
        timings["svd_s"] = time.perf_counter() - t
        keep = np.diff(weighted.indptr) > 0
        words = [w for w, k in zip(vocab.words, keep.tolist()) if k]
        timings["total_s"] = time.perf_counter() - started
        meta: dict[str, Any] = {
            "method": self.method,
            "trainer": "PPMI (context smoothing) + scikit-learn TruncatedSVD (randomized)",
            "params": self.get_params(),
            "corpus": corpus_info,
            "corpus_sha256": corpus_info["sha256"],
            "counts_key": self.counts_key_,
            "counts_reused": reused,
            "count_resumed_at_chunk": None if checkpoint is None else checkpoint.resumed_chunk,
            "cooccurrence": {"file": COUNTS_FILE, "shape": [V, V], "nnz": int(counts.nnz),
                             "ppmi_nnz": int(weighted.nnz)},
            "vocab_size_before_drop": V,
            "dropped_words": int(V - len(words)),
            "timings": timings,
        }
        if stats:
            meta["tokens_counted"] = stats["tokens"]
            meta["tokens_kept"] = stats["kept_tokens"]
            if timings.get("count_s"):
                meta["tokens_per_second"] = stats["tokens"] / timings["count_s"]
        self.embeddings_ = Embeddings(words, vectors[keep], np.asarray(vocab.counts)[keep], meta)
        return self
