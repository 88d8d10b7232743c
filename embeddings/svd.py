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

The counts are the expensive step, so `fit` keeps them, in the model's checkpoint
directory (`training.checkpoint_dir`, locked like every trainer's):

* `partial/`: while counting a corpus file, a snapshot every `checkpoint_every`
  seconds; `resume=True` continues a killed count from it (counts are exact
  integers and subsampling is seeded per chunk: identical to an uninterrupted run);
* `counts/`: right after counting; `resume=True` starts from them (a kill during
  PPMI or SVD loses nothing);
* with the model, as `cooccurrence.npz` (+ vocabulary and info), checksummed;
  `fit(counts_from=models_dir)` re-uses the counts of any svd model there whose
  counting parameters (`counts_key`) match (`find_counts`).

`fit(cluster=...)` runs the two heavy steps on a Dask cluster: the counts
(`distributed_counts`: the serial chunks on the workers, summed in a tree, the
same matrix exactly) and the SVD (`randomized_svd`: PPMI row blocks, scikit-learn's
randomized algorithm over them, the same model up to float32 rounding).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

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
    count_cooccurrences,
    distance_weights,
    load_counts_npz,
    read_counts,
    write_counts,
)
from .cluster import using, worker_count
from .corpus import PreparedCorpus, Vocabulary, build_vocabulary
from .distributed_counts import count_cooccurrences_on_cluster
from .metadata import CorpusInfo, ModelMeta
from .randomized_svd import BLOCKS_PER_WORKER, N_OVERSAMPLES, randomized_svd_on_cluster, row_blocks
from .store import ModelError, list_models, read_meta, verify_file
from .training import (Progress, ProgressCallback, Trainer, as_prepared, check_bool, check_int, check_real,
                       notify, training_run, words_sha256)
from .vectors import Embeddings

__all__ = ["COUNTS_FILE", "COUNTS_INFO", "COUNTS_VOCAB", "COUNTS_CHECKPOINT", "PARTIAL_CHECKPOINT",
           "MAX_WEIGHTED_WINDOW", "MAX_WINDOW", "WEIGHTINGS", "CountCheckpoint", "SVDTrainer",
           "count_cooccurrences", "distance_weights", "find_counts", "load_counts_npz", "ppmi",
           "read_counts", "svd_embed", "write_counts"]
#: Sub-directories of an svd model's checkpoint directory.
COUNTS_CHECKPOINT = "counts"
PARTIAL_CHECKPOINT = "partial"


# -- PPMI ---------------------------------------------------------------------
#: Context-distribution smoothing raises context counts to cds in (0, 1] (1: none; 0.75 is
#: Levy et al.'s); above 1 it is no smoothing and large values overflow the counts.
CDS_MAX = 1.0


def ppmi(counts: sp.spmatrix, cds: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """Positive PMI with context-distribution smoothing and a shift by log(`shift`).

    PMI(w, c) = log( #(w,c) * sum_c' #(c')**cds / (#(w) * #(c)**cds) ), with #(w)
    the row sums and #(c) the column sums of `counts`; entries <= log(shift)
    become 0 (and are removed), the others are PMI - log(shift). `cds=1` is
    plain PPMI (hyperwords' default); ours is 0.75. Returns float64 CSR.
    """
    m, sums = _ppmi_setup(counts, cds, shift, copy=True)
    top = _pmi_in_place(m, *sums, shift)
    _check_ppmi_nnz(m.nnz, top, shift)
    return m


def ppmi_row_blocks(counts: sp.spmatrix, bounds: Sequence[tuple[int, int]], cds: float = 0.75,
                    shift: float = 1.0) -> Iterator[sp.csr_matrix]:
    """`ppmi(counts)[lo:hi]` for each (lo, hi) of `bounds`, one block at a time.

    The row and column sums are global (taken once from the whole matrix), so the
    blocks are bit for bit the rows of `ppmi`; only one block is held beside the
    counts. Raises `ValueError` as `ppmi` does (the shift check after the last block)."""
    m, (row_sums, col_cds, total) = _ppmi_setup(counts, cds, shift, copy=False)
    nnz, top = 0, -math.inf
    for lo, hi in bounds:
        block = m[lo:hi]
        if block.nnz:
            top = max(top, _pmi_in_place(block, row_sums[lo:hi], col_cds, total, shift))
        nnz += block.nnz
        yield block
    _check_ppmi_nnz(nnz, top, shift)


def _ppmi_setup(counts: sp.spmatrix, cds: float, shift: float,
                copy: bool) -> tuple[sp.csr_matrix, tuple[np.ndarray, np.ndarray, float]]:
    """Validated float64 CSR counts (canonical) and their (row sums, column sums**cds, total)."""
    check_real("cds", cds, 0.0, CDS_MAX, low_open=True)
    check_real("shift (the k of log k)", shift, 1.0)
    m = sp.csr_matrix(counts, dtype=np.float64, copy=copy)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"counts must be square (V x V), got shape {m.shape}")
    if not copy and not (m.has_canonical_format and (m.nnz == 0 or m.data.min() > 0)):
        m = m.copy()  # never canonicalize the caller's matrix in place
    m.sum_duplicates()
    m.eliminate_zeros()
    if m.nnz == 0:
        raise ValueError("the co-occurrence matrix is empty")
    if m.data.min() < 0 or not np.all(np.isfinite(m.data)):
        raise ValueError("co-occurrence counts must be finite and >= 0")
    row_sums = np.asarray(m.sum(axis=1)).ravel()
    col_sums = np.asarray(m.sum(axis=0)).ravel() ** cds
    return m, (row_sums, col_sums, col_sums.sum())


def _pmi_in_place(m: sp.csr_matrix, row_sums: np.ndarray, col_cds: np.ndarray, total: float,
                  shift: float) -> float:
    """Replace the counts of `m` (rows with sums `row_sums`) by their positive shifted PMI,
    dropping the rest; return the largest PMI before the shift and clipping."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    with np.errstate(divide="ignore"):
        pmi = (np.log(m.data) + np.log(total)
               - np.log(row_sums[rows]) - np.log(col_cds[m.indices]))
    pmi -= math.log(shift)
    top = float(pmi.max()) + math.log(shift)
    pmi[pmi <= 0] = 0.0
    m.data = pmi
    m.eliminate_zeros()
    return top


def _check_ppmi_nnz(nnz: int, top: float, shift: float) -> None:
    """`ValueError` when the shift removed every entry (naming the largest usable shift)."""
    if nnz == 0:
        raise ValueError(f"shift={shift} removes every entry: the largest PMI is {top:.4g}, "
                         f"so the shift must be below exp({top:.4g}) = {math.exp(top):.4g}")


# -- SVD ------------------------------------------------------------------------
#: Eigenvalue weighting exponents accepted: the literature's range (Caron's p: 0, 0.5, 1; negative
#: values down-weight the top dimensions). Far outside it S**eig overflows: --eig 1000 gave a
#: model of only NaN and infinity.
EIG_RANGE = (-1.0, 2.0)


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

    check_svd_params(matrix.shape, dim, eig)
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
    return eig_weighted(us.astype(np.float64) / safe, s, svd.components_, eig, add_context)


def check_svd_params(shape: tuple[int, int], dim: int, eig: float) -> None:
    """`ValueError` unless 1 <= `dim` < min(`shape`) and `eig` is in `EIG_RANGE`."""
    n = min(shape)
    check_int("dim", dim, 1)
    if dim >= n:
        raise ValueError(f"dim={dim} must be smaller than the vocabulary size ({n})")
    check_real("eig", eig, *EIG_RANGE)


def eig_weighted(u: np.ndarray, s: np.ndarray, components: np.ndarray, eig: float,
                 add_context: bool) -> np.ndarray:
    """W = U * S**eig (+ V * S**eig with `add_context`), float32; zero singular values weigh 0.

    Shared by `svd_embed` and the cluster's randomized SVD: U (V x k), S (k,), V^T (k x V)."""
    weights = np.where(s > 0, s ** eig, 0.0)
    w = u * weights                          # U * S**eig
    if add_context:
        w = w + components.T * weights       # + V * S**eig
    return np.ascontiguousarray(w, dtype=np.float32)


# -- the estimator ----------------------------------------------------------------
def _sentences_corpus(sentences: Iterable[Sequence[str]]) -> tuple[list[list[str]], str, int]:
    """Materialize an in-memory corpus; return (sentences, sha256 of its corpus.txt form, tokens)."""
    kept = [list(s) for s in sentences if len(s)]
    digest = hashlib.sha256()
    for s in kept:
        digest.update((" ".join(s) + "\n").encode("utf-8"))
    return kept, digest.hexdigest(), sum(len(s) for s in kept)


def find_counts(models_dir: str | os.PathLike, key: str, words: Sequence[str]) -> tuple[sp.csr_matrix, str] | None:
    """Saved counts for `key` (see `SVDTrainer.counts_key`) in an svd model of `models_dir`,
    verified against its meta.json: (counts, "model 'NAME'"), or None."""
    models_dir = Path(models_dir)
    for info in list_models(models_dir):
        if info.method != "svd" or info.error is not None:
            continue
        try:
            path = info.path.resolve()
            meta = read_meta(path)
            if meta.get("counts_key") != key:
                continue
            for rel in (COUNTS_FILE, COUNTS_INFO, COUNTS_VOCAB):
                verify_file(path, rel, meta)
        except (ModelError, OSError):
            continue
        found = read_counts(path, key, words)
        if found is not None:
            return found, f"model {info.name!r}"
    return None


class SVDTrainer(Trainer):
    """PPMI + truncated SVD word vectors, as a scikit-learn-style estimator.

    `fit(corpus)` chains `count_cooccurrences` -> `ppmi` -> `svd_embed` and
    sets `embeddings_` (rows in vocabulary order, most frequent first),
    `counts_` (the V x V co-occurrence matrix), `vocabulary_` and `counts_key_`
    (identifies the counts: corpus sha256 + counting parameters + vocabulary).
    Words whose PPMI row is empty (no positive-PMI context) get no vector and
    are left out of `embeddings_` rather than given a zero vector; their number
    is in meta["dropped_words"]. `save` writes the counts with the model.
    """

    method = "svd"
    distributed = True
    cli_flags = {"dim": "--dim", "window": "--window", "min_count": "--min-count", "max_vocab": "--max-vocab",
                 "cds": "--cds", "shift": "--shift", "eig": "--eig", "random_state": "--seed",
                 "workers": "--workers"}

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
        check_int(self.label("dim"), self.dim, 1)
        _check_count_params(self.window, self.weighting, self.dynamic_window, self.subsample)
        check_int(self.label("min_count"), self.min_count, 1)
        if self.max_vocab is not None:
            check_int(self.label("max_vocab"), self.max_vocab, 2)
        check_real(f"{self.label('cds')} (context counts are raised to it)", self.cds, 0.0, CDS_MAX, low_open=True)
        check_real(f"{self.label('shift')} (PMI is shifted by log(shift))", self.shift, 1.0)
        check_real(self.label("eig"), self.eig, *EIG_RANGE)
        check_int(self.label("random_state"), self.random_state, 0, 2**32 - 1)
        check_int(self.label("n_iter"), self.n_iter, 1)
        if self.workers is not None:
            check_int(self.label("workers"), self.workers, 1, 512)
        check_bool("add_context", self.add_context)

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
                           "words": words_sha256(vocab.words)}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def fit(
        self,
        corpus: "PreparedCorpus | str | os.PathLike | Iterable[Sequence[str]]",
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        counts: sp.spmatrix | None = None,
        counts_from: str | os.PathLike | None = None,
        checkpoint_every: float = 60.0,
        data_dir: str | os.PathLike | None = None,
        cluster: Any = None,
    ) -> "SVDTrainer":
        """Train on `corpus` (prepared corpus, path, "sample", or token lists); return self.

        The counts come from, in order: `counts` (a matrix counted earlier with the
        same `counts_key_`; the caller checks the key), the `counts/` checkpoint in
        `checkpoint_dir` when `resume`, a matching svd model in `counts_from` (a
        models directory), or a fresh count (continued from `partial/` when
        `resume`). Without `resume`, a checkpoint left in `checkpoint_dir` by an
        interrupted run raises `training.UnfinishedRun`. `progress` gets "count"
        events (tokens read; corpus bytes on a cluster) and notes saying where the
        counts came from.

        `cluster` (a spec such as "local:2", a `distributed.Client`, or None: serial)
        counts a corpus file and runs the randomized SVD on a Dask cluster (see
        `_embed_on_cluster`); token lists are counted here. A cluster count takes no
        `partial/` snapshots (a killed count starts over; a lost worker only costs a
        re-run of its tasks), but its result is still kept in `counts/`, so a rerun
        with `resume` skips the count. The corpus (and `checkpoint_dir`, where the
        PPMI row blocks are written for the workers) must be on storage every worker
        sees; without `checkpoint_dir` the blocks go to this machine's temp directory.
        """
        self.check_params()
        check_real("checkpoint_every (--checkpoint-every, seconds)", checkpoint_every, 0.0)
        with using(cluster) as client:
            return self._fit(corpus, client, checkpoint_dir, resume, progress, counts, counts_from,
                             checkpoint_every, data_dir)

    def _fit(self, corpus: Any, client: Any, checkpoint_dir: str | os.PathLike | None, resume: bool,
             progress: ProgressCallback | None, counts: sp.spmatrix | None,
             counts_from: str | os.PathLike | None, checkpoint_every: float,
             data_dir: str | os.PathLike | None) -> "SVDTrainer":
        """`fit` with its cluster open (`client`, or None to run here)."""
        started = time.perf_counter()
        if isinstance(corpus, (PreparedCorpus, str, os.PathLike)):
            prepared = as_prepared(corpus, data_dir)
            vocab = self.vocabulary(prepared)
            source: Any = prepared
            corpus_info = CorpusInfo.of(prepared)
        else:
            sentences, sha, n_tokens = _sentences_corpus(corpus)
            if n_tokens == 0:
                raise ValueError("the corpus is empty: it contains no tokens")
            vocab = build_vocabulary(sentences, self.min_count, self.max_vocab)
            self._check_vocab(vocab)
            source = sentences
            corpus_info = CorpusInfo("<token lists>", sha, n_tokens, len(sentences), None)
        self.vocabulary_ = vocab
        self.counts_key_ = key = self.counts_key(corpus_info.sha256, vocab)
        V = len(vocab)
        timings: dict[str, float] = {}
        stats: dict[str, Any] = {}
        resumed_chunk = None
        with training_run(checkpoint_dir) as checkpoints:
            if checkpoints is not None and not resume:
                checkpoints.refuse_leftovers()
                checkpoints.clear()
            origin = None
            if counts is not None:
                counts = sp.csr_matrix(counts, dtype=np.float64)
                if counts.shape != (V, V):
                    raise ValueError(f"the given counts matrix has shape {counts.shape}, expected ({V}, {V})")
                origin = "the caller"
            elif checkpoints is not None:
                counts = read_counts(checkpoints.directory / COUNTS_CHECKPOINT, key, vocab.words)
                origin = None if counts is None else "checkpoint"
            if counts is None and counts_from is not None:
                found = find_counts(counts_from, key, vocab.words)
                if found is not None:
                    counts, origin = found
            if counts is not None:
                notify(progress, Progress("note", message=f"re-using the co-occurrence counts from {origin} "
                                                          "(same corpus and counting parameters)"))
            else:
                counts, resumed_chunk = self._count(source, corpus_info, key, checkpoints, resume,
                                                    checkpoint_every, progress, stats, client)
                timings["count_s"] = time.perf_counter() - started
            self.counts_ = counts
            if client is None:
                t = time.perf_counter()
                weighted = ppmi(counts, self.cds, self.shift)
                timings["ppmi_s"] = time.perf_counter() - t
                t = time.perf_counter()
                vectors = svd_embed(weighted, self.dim, self.eig, self.random_state, self.add_context, self.n_iter)
                timings["svd_s"] = time.perf_counter() - t
                row_nnz = np.diff(weighted.indptr)
            else:
                vectors, row_nnz = self._embed_on_cluster(client, counts, checkpoints, timings)
        keep = row_nnz > 0
        words = [w for w, k in zip(vocab.words, keep.tolist()) if k]
        timings["total_s"] = time.perf_counter() - started
        extra: dict[str, Any] = {
            "trainer": ("PPMI (context smoothing) + scikit-learn TruncatedSVD (randomized)" if client is None else
                        "PPMI (context smoothing) + randomized truncated SVD (Halko et al.) on a Dask cluster"),
            "counts_key": key,
            "counts_reused": origin is not None,
            "count_resumed_at_chunk": resumed_chunk,
            "cooccurrence": {"file": COUNTS_FILE, "shape": [V, V], "nnz": int(counts.nnz),
                             "ppmi_nnz": int(row_nnz.sum())},
            "vocab_size_before_drop": V,
            "dropped_words": int(V - len(words)),
            "timings": timings,
        }
        if client is not None:
            extra["cluster"] = {"workers": worker_count(client), "svd_on_cluster": True,
                                "counted_on_cluster": origin is None and isinstance(source, PreparedCorpus)}
        if stats:
            extra["tokens_counted"] = stats["tokens"]
            extra["tokens_kept"] = stats["kept_tokens"]
            if timings.get("count_s"):
                extra["tokens_per_second"] = stats["tokens"] / timings["count_s"]
        meta = ModelMeta(self.method, self.get_params(), corpus_info, train_seconds=timings["total_s"],
                         extra=extra)
        self.embeddings_ = Embeddings(words, vectors[keep], np.asarray(vocab.counts)[keep], meta.to_dict())
        return self

    def _count(self, source: Any, corpus_info: CorpusInfo, key: str, checkpoints, resume: bool,
               checkpoint_every: float, progress: ProgressCallback | None,
               stats: dict[str, Any], client: Any = None) -> tuple[sp.csr_matrix, int | None]:
        """Count afresh (or from the `partial/` snapshot); keep the result in `counts/`.

        With `client` a corpus file is counted on the cluster (no `partial/` snapshot)."""
        if client is not None and isinstance(source, PreparedCorpus):
            def counted_bytes(done: int, total: int) -> None:
                notify(progress, Progress("count", done=done, total=total, unit="B"))

            counts = count_cooccurrences_on_cluster(
                client, source, self.vocabulary_, self.window, self.weighting, self.dynamic_window,
                self.subsample, self.random_state, progress=counted_bytes if progress is not None else None,
                stats=stats)
            if checkpoints is not None:
                write_counts(checkpoints.directory / COUNTS_CHECKPOINT, counts, self.vocabulary_.words, key)
                shutil.rmtree(checkpoints.directory / PARTIAL_CHECKPOINT, ignore_errors=True)
            return counts, None
        partial = None
        if checkpoints is not None:
            partial = CountCheckpoint(checkpoints.directory / PARTIAL_CHECKPOINT, key, every_s=checkpoint_every,
                                      resume=resume)
        done = 0

        def counted(n: int) -> None:
            nonlocal done
            done += n
            notify(progress, Progress("count", done=done, total=corpus_info.n_tokens, unit="tok"))

        counts = count_cooccurrences(source, self.vocabulary_, self.window, self.weighting, self.dynamic_window,
                                     self.subsample, self.random_state, workers=self.workers,
                                     progress=counted if progress is not None else None, stats=stats,
                                     checkpoint=partial)
        resumed = None if partial is None else partial.resumed_chunk
        if resumed is not None:
            notify(progress, Progress("note", message=f"resumed the count from its snapshot (chunk {resumed})"))
        if checkpoints is not None:
            write_counts(checkpoints.directory / COUNTS_CHECKPOINT, counts, self.vocabulary_.words, key)
            shutil.rmtree(checkpoints.directory / PARTIAL_CHECKPOINT, ignore_errors=True)
        return counts, resumed

    def _embed_on_cluster(self, client: Any, counts: sp.csr_matrix, checkpoints,
                          timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """PPMI row blocks, then the randomized SVD over them on the cluster: (vectors, PPMI non-zeros per row).

        PPMI runs here, one row block at a time (`ppmi_row_blocks`): this machine holds
        the counts anyway (they are checkpointed and saved with the model), PPMI is one
        pass over the non-zeros, cheap next to the SVD's 2 * n_iter + 2 sparse products,
        and its column sums need the whole matrix. Each block goes to a `.npz` file in a
        temporary directory (inside the checkpoint directory when there is one, as a
        hidden `.tmp-` entry that a later run clears) that the workers load by path."""
        check_svd_params(counts.shape, self.dim, self.eig)
        t = time.perf_counter()
        bounds = row_blocks(counts.indptr, BLOCKS_PER_WORKER * worker_count(client), min_rows=self.dim + N_OVERSAMPLES)
        where = None if checkpoints is None else checkpoints.directory
        with tempfile.TemporaryDirectory(prefix=".ppmi-blocks.tmp-", dir=where) as work:
            paths, row_nnz = [], []
            for i, block in enumerate(ppmi_row_blocks(counts, bounds, self.cds, self.shift)):
                paths.append(Path(work) / f"ppmi-{i:05d}.npz")
                sp.save_npz(paths[-1], block, compressed=False)
                row_nnz.append(np.diff(block.indptr))
            timings["ppmi_s"] = time.perf_counter() - t
            t = time.perf_counter()
            us, s, vt = randomized_svd_on_cluster(client, paths, bounds, counts.shape[1], self.dim,
                                                  n_iter=self.n_iter, random_state=self.random_state,
                                                  fit_transform=True)
        safe = np.where(s > 0, s, 1.0)
        vectors = eig_weighted(us.astype(np.float64) / safe, s, vt, self.eig, self.add_context)  # as `svd_embed`
        timings["svd_s"] = time.perf_counter() - t
        return vectors, np.concatenate(row_nnz)

    def _write_extra(self, directory: Path) -> None:
        """The co-occurrence counts (cooccurrence.npz + vocabulary + info), for re-use by later runs."""
        write_counts(directory, self.counts_, self.vocabulary_.words, self.counts_key_)
