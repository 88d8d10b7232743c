"""Co-occurrence counts on a Dask cluster, equal to `count_cooccurrences` bit for bit.

The corpus file is cut into the serial counter's newline-aligned chunks
(`_file_chunks`) and every chunk is counted by the serial `_count_chunk` with its
own index, so subsampling draws the same numbers. Runs of consecutive chunks form
one task, which reads its byte range of `corpus.txt` by path (the corpus must be on
storage every worker sees) and returns the integer upper triangle of its counts.
The results are added pairwise on the workers as they finish (`tree_reduce`); only
the final sum comes back to the driver. Counts are exact integers, so the order of
the additions does not matter: the matrix equals the serial one exactly.

The counting plan and the vocabulary travel once per worker
(`client.scatter(..., broadcast=True)`), and the vocabulary's hash table is built
once per worker process (`_WORKER_TABLES`). A worker lost mid-count costs only a
re-run: the scheduler recomputes its tasks (and lost partial sums) from their
inputs, and each task has `TASK_RETRIES` more attempts.

Without subsampling the chunk layout does not change the counts, so a corpus too
small to keep every worker busy with `CHUNK_BYTES` chunks is cut finer; with
subsampling the draws depend on the layout, so the serial one is kept.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from .cluster import TASK_RETRIES, tree_reduce, worker_count
from .cooccurrence import (_Accumulator, _check_chunk_bytes, _count_chunk, _file_chunks, _final_counts, _Lookup,
                           _make_plan, _Plan)
from .corpus import PreparedCorpus, Vocabulary
from .training import words_sha256

__all__ = ["cluster_chunk_bytes", "count_cooccurrences_on_cluster"]

#: Tasks per worker thread the count is cut into when the corpus allows (load balance).
TASKS_PER_WORKER = 4
#: Smallest chunk a corpus is cut into for the cluster (without subsampling): below it the
#: per-chunk work (the dense band of frequent rows) outweighs the counting.
MIN_CHUNK_BYTES = 256 << 10
#: Most corpus bytes one task counts (bounds a task's memory and the work a lost worker redoes).
TASK_BYTES = 64 << 20

# Per worker process: the plan and vocabulary hash table of the latest count (one entry).
_WORKER_TABLES: dict[str, tuple[_Plan, _Lookup]] = {}


@dataclass
class _Counted:
    """Counts of some chunks: the integer upper triangle (`_Accumulator.upper`) and token numbers."""

    upper: sp.csr_matrix
    tokens: int
    kept: int


def _worker_tables(payload: dict[str, Any]) -> tuple[_Plan, _Lookup]:
    """The plan and `_Lookup` of `payload`, built once per worker process."""
    key = payload["key"]
    tables = _WORKER_TABLES.get(key)
    if tables is None:
        _WORKER_TABLES.clear()
        tables = _WORKER_TABLES[key] = (payload["plan"], _Lookup(payload["words"]))
    return tables


def _count_chunks(payload: dict[str, Any], path: str, bounds: Sequence[tuple[int, int]], first: int) -> _Counted:
    """Task: count the chunks `bounds` (byte ranges of `path`, chunk indices first, first + 1, ...)."""
    plan, lookup = _worker_tables(payload)
    acc = _Accumulator(plan)
    with open(path, "rb") as handle:
        for index, (start, end) in enumerate(bounds, start=first):
            handle.seek(start)
            acc.add(_count_chunk(plan, lookup, handle.read(end - start), index))
    return _Counted(acc.upper(), acc.tokens, acc.kept)


def _add_counted(a: _Counted, b: _Counted) -> _Counted:
    """Task: the sum of two partial counts (exact integers)."""
    return _Counted(a.upper + b.upper, a.tokens + b.tokens, a.kept + b.kept)


def cluster_chunk_bytes(size: int, workers: int, subsample: float | None) -> int:
    """Chunk size for counting `size` bytes on `workers` workers: the serial `CHUNK_BYTES`, or
    (without subsampling, where the layout does not change the counts) less, so every worker gets
    `TASKS_PER_WORKER` tasks, but not below `MIN_CHUNK_BYTES`."""
    serial = _check_chunk_bytes(None)
    if subsample is not None:
        return serial
    return min(serial, max(MIN_CHUNK_BYTES, math.ceil(size / (TASKS_PER_WORKER * workers))))


def _task_groups(bounds: Sequence[tuple[int, int]], workers: int) -> list[range]:
    """Consecutive chunk indices per task: `TASKS_PER_WORKER` tasks a worker, at most `TASK_BYTES` each."""
    if not bounds:
        return []
    size = bounds[-1][1] - bounds[0][0]
    n_tasks = min(len(bounds), max(TASKS_PER_WORKER * workers, math.ceil(size / TASK_BYTES)))
    edges = np.linspace(0, len(bounds), n_tasks + 1).round().astype(int)
    return [range(lo, hi) for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()) if hi > lo]


def _plan_key(plan: _Plan, words: Sequence[str]) -> str:
    """sha256 naming a plan and vocabulary (the key of the workers' cached tables)."""
    digest = hashlib.sha256(words_sha256(words).encode("ascii"))
    digest.update(repr((plan.n_words, plan.window, plan.numerators, plan.scale, plan.band_rows,
                        plan.seed)).encode("ascii"))
    if plan.keep_prob is not None:
        digest.update(plan.keep_prob.tobytes())
    return digest.hexdigest()


def count_cooccurrences_on_cluster(
    client: Any,
    corpus: "PreparedCorpus | str | os.PathLike",
    vocab: "Vocabulary | Sequence[str]",
    window: int = 5,
    weighting: str = "uniform",
    dynamic_window: bool = False,
    subsample: float | None = None,
    seed: int = 0,
    *,
    chunk_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stats: dict[str, Any] | None = None,
) -> sp.csr_matrix:
    """`count_cooccurrences(corpus, vocab, ...)` counted on the Dask cluster of `client`: the same matrix.

    `corpus` is a prepared corpus or a `corpus.txt` path that every worker can read.
    `chunk_bytes` defaults to `cluster_chunk_bytes` (the serial layout when
    subsampling); `progress(done, total)` gets corpus bytes counted so far after each
    task; `stats` receives token numbers. Raises `ValueError` as the serial counter does.
    """
    from distributed import as_completed

    plan, words = _make_plan(vocab, window, weighting, dynamic_window, subsample, seed)
    if isinstance(corpus, PreparedCorpus):
        path = corpus.path
    elif isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus)
    else:
        raise TypeError("the cluster counts a corpus file (a PreparedCorpus or a path), not token lists")
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    workers = worker_count(client)
    size = path.stat().st_size
    if chunk_bytes is None:
        chunk_bytes = cluster_chunk_bytes(size, workers, subsample)
    bounds = _file_chunks(path, _check_chunk_bytes(chunk_bytes))
    groups = _task_groups(bounds, workers)
    if not groups:
        return _final_counts(sp.csr_matrix((plan.n_words, plan.n_words), dtype=np.int64), plan.scale, 0)
    payload = client.scatter([{"key": _plan_key(plan, words), "plan": plan, "words": words}],
                             broadcast=True, hash=False)[0]
    where = str(path.resolve())
    tasks = [client.submit(_count_chunks, payload, where, [bounds[i] for i in group], group.start,
                           pure=False, retries=TASK_RETRIES) for group in groups]
    task_bytes = {task.key: bounds[group[-1]][1] - bounds[group.start][0] for task, group in zip(tasks, groups)}
    done = 0
    total = tree_reduce(client, tasks, _add_counted)
    if progress is not None:
        progress(0, size)
    for task in as_completed(tasks):
        if task.status == "error":
            task.result()  # raises the task's exception
        if progress is not None:
            done += task_bytes[task.key]
            progress(done, size)
    counted: _Counted = total.result()
    total.release()
    payload.release()
    if stats is not None:
        stats.update(tokens=counted.tokens, kept_tokens=counted.kept)
    return _final_counts(counted.upper, plan.scale, counted.kept)
