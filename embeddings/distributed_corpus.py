"""Corpus preparation on a Dask cluster, with output identical to `prepare_corpus`.

The input is cut into shards: whole files of a directory (small consecutive ones
grouped), and byte ranges of large plain files cut just after a newline
(`.gz` / `.bz2` files cannot be split and are one piece each). A newline byte
never occurs inside a UTF-8 sequence and ends any `\\r\\n`, so the lines of a
range are exactly the lines the serial reader sees there. Each worker
tokenizes its shard, writes its share of `corpus.txt` to a part file next to
the output (shared storage), and returns only its word counts. The driver
merges the counts and concatenates the parts in input order while hashing, then
writes `vocab.txt` and `corpus.json` with the serial code.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from .atomic import atomic_write
from .cluster import iter_tasks, parse_spec, using, worker_count
from .corpus import (CORPUS_FILE, PreparedCorpus, TokenizerConfig, encoded_sentences, finish_prepared,
                     input_files, input_key, open_text, prepare_corpus, reusable_prepared, text_stream)

#: Target input bytes per shard (one task); a plain file is cut at the first newline after this.
SHARD_BYTES = 64 << 20
#: The smallest shard `shard_size` picks (smaller ones cost more in task overhead than they save).
MIN_SHARD_BYTES = 1 << 20
_UNSPLITTABLE = (".gz", ".bz2")
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Piece:
    """Bytes `start:end` of a file; `end=None` is the whole file (compressed files)."""

    path: str
    start: int
    end: int | None


@dataclass(frozen=True)
class ShardTask:
    """One task: the pieces to tokenize, in input order, and the part file to write."""

    pieces: tuple[Piece, ...]
    size: int        # input bytes, for progress
    part: str        # where the worker writes its share of corpus.txt
    config: TokenizerConfig


@dataclass(frozen=True)
class ShardResult:
    """What a task returns to the driver: counts and sizes, never the text."""

    words: list[str]
    counts: list[int]
    n_sentences: int
    n_bytes: int     # bytes written to the part file


def shard_size(total_bytes: int, workers: int) -> int:
    """Bytes per shard: about 4 shards per worker (so a slow or lost worker delays little),
    at least MIN_SHARD_BYTES (task overhead) and at most SHARD_BYTES (worker memory)."""
    return max(min(MIN_SHARD_BYTES, SHARD_BYTES), min(SHARD_BYTES, total_bytes // (4 * max(1, workers)) + 1))


def newline_cuts(path: str | os.PathLike, size: int, shard_bytes: int) -> list[int]:
    """Offsets 0 < c < size just after a b"\\n", about `shard_bytes` apart, where a file is cut."""
    cuts: list[int] = []
    with open(path, "rb") as handle:
        pos = 0
        while size - pos > shard_bytes:
            handle.seek(pos + shard_bytes)
            offset = pos + shard_bytes
            while True:
                block = handle.read(1 << 16)
                if not block:
                    return cuts
                found = block.find(b"\n")
                if found >= 0:
                    pos = offset + found + 1
                    break
                offset += len(block)
            if pos >= size:
                break
            cuts.append(pos)
    return cuts


def plan_shards(files: list[Path], shard_bytes: int) -> list[tuple[tuple[Piece, ...], int]]:
    """(pieces, input bytes) per shard, in input order: big plain files in byte ranges,
    consecutive small files grouped up to `shard_bytes`."""
    pieces: list[tuple[Piece, int]] = []
    for file in files:
        size = file.stat().st_size
        if file.suffix in _UNSPLITTABLE or size <= shard_bytes:
            pieces.append((Piece(str(file), 0, None), size))
            continue
        bounds = [0, *newline_cuts(file, size, shard_bytes), size]
        pieces += [(Piece(str(file), a, b), b - a) for a, b in zip(bounds, bounds[1:])]
    shards: list[tuple[tuple[Piece, ...], int]] = []
    group: list[Piece] = []
    group_size = 0
    for piece, size in pieces:
        if group and group_size + size > shard_bytes:
            shards.append((tuple(group), group_size))
            group, group_size = [], 0
        group.append(piece)
        group_size += size
    if group:
        shards.append((tuple(group), group_size))
    return shards


class _ByteRange(io.RawIOBase):
    """A read-only stream of bytes `start:end` of a file."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__()
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: max(0, self._left)]
        n = self._file.readinto(view) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def open_piece(piece: Piece) -> IO[str]:
    """The text of a piece, decoded exactly as `open_text` decodes the whole file."""
    if piece.end is None:
        return open_text(piece.path)
    return text_stream(io.BufferedReader(_ByteRange(piece.path, piece.start, piece.end), _BLOCK))


def prepare_shard(task: ShardTask) -> ShardResult:
    """Worker task: tokenize a shard into its part file (atomically, so a re-run after a
    killed worker replaces a torn part) and return the word counts."""
    counter: Counter = Counter()
    n_sentences = n_bytes = 0

    def write(handle: IO[bytes]) -> None:
        nonlocal n_sentences, n_bytes
        for piece in task.pieces:
            with open_piece(piece) as text:
                for line in text:
                    for sentence, data in encoded_sentences(line, task.config):
                        counter.update(sentence)
                        handle.write(data)
                        n_sentences += 1
                        n_bytes += len(data)

    atomic_write(task.part, write)
    return ShardResult(list(counter), list(counter.values()), n_sentences, n_bytes)


def prepare_corpus_on_cluster(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TokenizerConfig = TokenizerConfig(),
    client: Any = None,
    progress: "bool | Callable[[int, int], None]" = False,
    shard_bytes: int | None = None,
) -> PreparedCorpus:
    """`prepare_corpus(source, out_dir, config)` with the tokenizing spread over a Dask cluster.

    The files written and their sha256 are identical to the serial run; an output
    already prepared from the same input is re-used before the cluster is touched.
    `client` is a `distributed.Client` or a cluster spec (connected only if there
    is work; None runs serially). Part files live in a hidden directory of
    `out_dir` (which workers must reach by the same path) and are removed at the
    end, also on failure. `progress` as in `prepare_corpus` (input bytes of
    finished shards)."""
    if client is None:
        return prepare_corpus(source, out_dir, config, progress=progress)
    if isinstance(client, str):
        parse_spec(client)  # a bad spec is refused even when nothing needs preparing
    out_dir = Path(out_dir)
    key = input_key(source, config)
    existing = reusable_prepared(out_dir, key)
    if existing is not None:
        return existing
    files = input_files(source)
    digest = hashlib.sha256()
    with using(client) as connected:
        shards = plan_shards(files, shard_bytes or shard_size(sum(f.stat().st_size for f in files),
                                                               worker_count(connected)))
        out_dir.mkdir(parents=True, exist_ok=True)
        parts = Path(tempfile.mkdtemp(prefix=".parts-", dir=out_dir))
        try:
            tasks = [ShardTask(pieces, size, str(parts / f"part-{k:06d}.txt"), config)
                     for k, (pieces, size) in enumerate(shards)]
            counter, n_sentences, sizes = _run_shards(connected, tasks, progress)
            atomic_write(out_dir / CORPUS_FILE, lambda handle: _concatenate(tasks, sizes, handle, digest))
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    return finish_prepared(source, out_dir, config, key, counter, n_sentences, digest.hexdigest())


def _run_shards(client: Any, tasks: list[ShardTask], progress: "bool | Callable[[int, int], None]"
                ) -> tuple[Counter, int, list[int]]:
    """Run the shard tasks, merging each one's counts as it finishes (the driver never
    holds more than one shard's result); returns (counts, sentences, part sizes)."""
    from tqdm import tqdm

    counter: Counter = Counter()
    n_sentences = done = 0
    sizes = [0] * len(tasks)
    total = sum(task.size for task in tasks)
    with tqdm(total=total, unit="B", unit_scale=True, desc="prepare corpus", disable=progress is not True,
              leave=False) as bar:
        for k, result in iter_tasks(client, prepare_shard, tasks):
            counter.update(dict(zip(result.words, result.counts)))
            n_sentences += result.n_sentences
            sizes[k] = result.n_bytes
            done += tasks[k].size
            bar.update(tasks[k].size)
            if callable(progress):
                progress(done, total)
    return counter, n_sentences, sizes


def _concatenate(tasks: list[ShardTask], sizes: list[int], handle: IO[bytes], digest: Any) -> None:
    """Copy the part files into `handle` in input order, hashing, removing each when copied."""
    for task, size in zip(tasks, sizes):
        part = Path(task.part)
        found = part.stat().st_size if part.is_file() else None
        if found != size:
            raise OSError(f"{part}: {'missing' if found is None else f'{found} bytes'} where a worker wrote "
                          f"{size} bytes; is the output directory on storage every worker shares?")
        with open(part, "rb") as source:
            for block in iter(lambda: source.read(_BLOCK), b""):
                digest.update(block)
                handle.write(block)
        part.unlink()
