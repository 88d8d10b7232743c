"""Co-occurrence counting for the SVD trainer: streaming, vectorized, exact.

Counting conventions (documented choices):

* Pairs never cross a sentence (a line of the prepared corpus).
* Words outside the vocabulary (below `min_count`) and subsampled words are
  removed *before* windowing, as word2vec and GloVe do, so the window reaches
  past them.
* `counts[w, c]` sums, over every occurrence of `w` and every occurrence of `c`
  at distance 1..window in the same sentence, the weight of that distance:
  1 ("uniform"), 1/d ("harmonic", GloVe); `dynamic_window=True` multiplies by
  (window - d + 1) / window, the expected weight of word2vec's sampled window
  (deterministic, hyperwords' "dyn"). The matrix is therefore symmetric, and a
  word next to itself counts twice on the diagonal (once per direction).
* `subsample=s` drops each token with probability 1 - (sqrt(z/s) + 1) * s / z
  (word2vec's rule, z = the word's share of the vocabulary's tokens), drawn
  from `numpy.random.default_rng([seed, chunk])` so a run is reproducible.

How the counting is fast (no Python per token or per pair): the corpus is read
in newline-aligned byte chunks; token ids come from a vectorized, exact hash
lookup on the raw bytes (`_Lookup`); for each distance d the id arrays are
paired with themselves shifted by d; each pair is canonicalised as (lo, hi) with
lo <= hi. Pairs whose `lo` is one of the most frequent words (ids are sorted by
frequency) land in a bounded dense band of at most `BAND_CELLS` cells counted
with `np.bincount`; the rest are sorted and run-length reduced, then merged into
a sparse accumulator. With `workers` > 1, chunks are counted in threads (the
NumPy work releases the GIL) and merged in chunk order. Counts are exact
integers (weights scaled by their common denominator), so the result does not
depend on chunking or on the number of threads, and a count resumed from a
`CountCheckpoint` snapshot ends exactly as an uninterrupted one. Memory: the
chunks in flight (workers + 1), the band, and the non-zeros; never V x V.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from .atomic import atomic_write, atomic_write_json, sha256_file
from .corpus import PreparedCorpus, Vocabulary
from .training import cpu_count, words_sha256

WEIGHTINGS = ("uniform", "harmonic")
#: Largest window for "harmonic" or `dynamic_window`: exact integer weights need lcm(1..window).
MAX_WEIGHTED_WINDOW = 16
MAX_WINDOW = 100
#: Cells of the dense band of frequent rows (int64: 16 MiB; a larger one is slower here: cache misses and fresh pages).
BAND_CELLS = 1 << 21
#: Bytes of corpus text per chunk (chunks end at a newline).
CHUNK_BYTES = 4 << 20
#: Extra counting threads only for corpora of at least this many chunks per thread:
#: below that, starting them and the chunks in flight cost more than they save.
MIN_CHUNKS_PER_WORKER = 2
_PACK = 24  # tokens up to this many bytes are matched in NumPy; longer ones through a dict
_PROGRESS = Callable[[int], None]


# -- token ids from raw bytes ---------------------------------------------------
_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_MIX = tuple(np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                                    0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD))


def _token_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the tokens (runs of bytes > 32) in a uint8 buffer."""
    is_tok = (buf > 32).view(np.int8)
    edges = np.diff(is_tok, prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _pack(padded: np.ndarray, n: int, starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, ...]:
    """The first 24 bytes of every token as three little-endian uint64 words (an exact key:
    tokens never contain byte 0). Words past a token's length are 0."""
    words = np.ndarray((n + 16,), dtype="<u8", buffer=padded, strides=(1,))
    w0 = words[starts]
    w0 &= _MASKS[np.minimum(lens, 8)]
    w1 = np.zeros(len(starts), dtype=np.uint64)
    w2 = np.zeros(len(starts), dtype=np.uint64)
    longer = np.flatnonzero(lens > 8)
    if len(longer):
        ls, ll = starts[longer], lens[longer]
        w1[longer] = words[ls + 8] & _MASKS[np.minimum(ll - 8, 8)]
        w2[longer] = words[ls + 16] & _MASKS[np.clip(ll - 16, 0, 8)]
    return w0, w1, w2


def _mix(w0: np.ndarray, w1: np.ndarray, w2: np.ndarray, lens: np.ndarray) -> np.ndarray:
    h = w0 * _MIX[0]
    h ^= w1 * _MIX[1]
    h ^= w2 * _MIX[2]
    h ^= lens.astype(np.uint64) * _MIX[3]
    h ^= h >> np.uint64(29)
    h *= _MIX[4]
    return h


def _padded(data: bytes) -> np.ndarray:
    buf = np.zeros(len(data) + 32, dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buf


class _Lookup:
    """Exact word -> id mapping applied to raw UTF-8 bytes, vectorized.

    Tokens of up to 24 bytes are compared on their packed bytes and length in
    an open-addressing table probed with NumPy; longer tokens (rare) go
    through a dict. A token maps to an id only if its bytes equal the word's."""

    def __init__(self, words: Sequence[str]) -> None:
        encoded = [w.encode("utf-8") for w in words]
        self.long = {e: i for i, e in enumerate(encoded) if len(e) > _PACK}
        short = [i for i, e in enumerate(encoded) if len(e) <= _PACK]
        text = b" ".join(encoded[i] for i in short)
        buf = _padded(text)
        starts, ends = _token_bounds(buf[: len(text)])
        lens = ends - starts
        if len(starts) != len(short) or (len(short) and np.any(lens != [len(encoded[i]) for i in short])):
            bad = next(w for w in words if not w or any(b <= 32 for b in w.encode("utf-8")))
            raise ValueError(f"vocabulary word {bad!r} is empty or contains whitespace")
        w = _pack(buf, len(text), starts, lens)
        bits = max(4, int(math.ceil(math.log2(max(1, len(short)) * 4))))
        self.shift = np.uint64(64 - bits)
        self.mask = (1 << bits) - 1
        size = 1 << bits
        self.slot_id = np.full(size, -1, dtype=np.int32)
        self.slot_len = np.zeros(size, dtype=np.int64)   # 0 never matches a token
        self.slot_w = [np.zeros(size, dtype=np.uint64) for _ in range(3)]
        # Linear probing, all words at once: each round, the first word aiming at a free
        # slot takes it, every other word moves one slot on (slots never free up again,
        # so a lookup walking from a word's home slot meets no hole before the word).
        ids = np.asarray(short, dtype=np.int32)
        rows = np.arange(len(short))
        slot = (_mix(*w, lens) >> self.shift).astype(np.int64)
        while len(rows):
            free = np.flatnonzero(self.slot_id[slot] < 0)
            taken, first = np.unique(slot[free], return_index=True)
            winners = rows[free[first]]
            self.slot_id[taken] = ids[winners]
            self.slot_len[taken] = lens[winners]
            for k in range(3):
                self.slot_w[k][taken] = w[k][winners]
            moved = np.ones(len(rows), dtype=bool)
            moved[free[first]] = False
            rows, slot = rows[moved], (slot[moved] + 1) & self.mask

    def ids(self, buf: np.ndarray, n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Vocabulary id of each token (int32, -1 when out of vocabulary)."""
        lens = ends - starts
        w0, w1, w2 = _pack(buf, n, starts, lens)
        slot = (_mix(w0, w1, w2, lens) >> self.shift).astype(np.int64)
        out = np.full(len(starts), -1, dtype=np.int32)
        pending = None  # None: every token
        while True:
            match = (self.slot_w[0][slot] == w0) & (self.slot_len[slot] == lens)
            long_ = np.flatnonzero(lens > 8)
            if len(long_):
                s = slot[long_]
                match[long_] &= (self.slot_w[1][s] == w1[long_]) & (self.slot_w[2][s] == w2[long_])
            found = self.slot_id[slot[match]]
            if pending is None:
                out[match] = found
            else:
                out[pending[match]] = found
            again = ~match & (self.slot_id[slot] >= 0)
            if not again.any():
                break
            idx = np.flatnonzero(again)
            pending = idx if pending is None else pending[idx]
            slot = (slot[idx] + 1) & self.mask
            w0, w1, w2, lens = w0[idx], w1[idx], w2[idx], lens[idx]
        if self.long:
            data = buf.tobytes()
            for i in np.flatnonzero(ends - starts > _PACK).tolist():
                out[i] = self.long.get(data[starts[i]:ends[i]], -1)
        return out


# -- chunked corpus sources -----------------------------------------------------
def _next_target(end: int, chunk_bytes: int) -> int:
    """The first chunk-size multiple (minus one) at or after `end`: where the next chunk may end."""
    return -(-(end + 1) // chunk_bytes) * chunk_bytes - 1


def _file_chunks(path: Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """Newline-aligned (start, end) byte ranges: a chunk ends after the first newline at or
    past offset i * chunk_bytes - 1 (the same rule as `_iter_chunks`, so chunks agree)."""
    size = path.stat().st_size
    bounds = [0]
    target = chunk_bytes - 1
    with open(path, "rb") as handle:
        while target < size - 1:
            handle.seek(target)
            pos = target
            end = size
            while block := handle.read(1 << 16):
                idx = block.find(b"\n")
                if idx >= 0:
                    end = pos + idx + 1
                    break
                pos += len(block)
            bounds.append(end)
            target = _next_target(end, chunk_bytes)
    if bounds[-1] < size:
        bounds.append(size)
    return list(zip(bounds, bounds[1:]))


def _iter_chunks(sentences: Iterable[Sequence[str]], chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Serialize token lists into newline-separated chunks (same boundary rule as `_file_chunks`).

    Yields (chunk bytes, number of tokens written)."""
    parts: list[bytes] = []
    offset = 0          # global offset of the end of the text written so far
    n_tokens = 0
    target = chunk_bytes - 1
    for sentence in sentences:
        if isinstance(sentence, (str, bytes)):
            raise ValueError("the corpus must be an iterable of token lists, not of strings")
        if not sentence:
            continue
        line = (" ".join(sentence) + "\n").encode("utf-8")
        parts.append(line)
        offset += len(line)
        n_tokens += len(sentence)
        if offset - 1 >= target:
            yield b"".join(parts), n_tokens
            parts, n_tokens = [], 0
            target = _next_target(offset, chunk_bytes)
    if parts:
        yield b"".join(parts), n_tokens


# -- counting -----------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """Everything needed to count a chunk (shared read-only by the counting threads)."""

    n_words: int
    window: int
    numerators: tuple[int, ...]  # integer weight of distance d = numerators[d-1] / scale
    scale: int
    band_rows: int
    keep_prob: np.ndarray | None
    seed: int


def distance_weights(window: int, weighting: str = "uniform", dynamic_window: bool = False) -> np.ndarray:
    """Weight of a context word at distance 1..window (float64)."""
    numerators, scale = _integer_weights(window, weighting, dynamic_window)
    return np.asarray(numerators, dtype=np.float64) / scale


def _integer_weights(window: int, weighting: str, dynamic_window: bool) -> tuple[tuple[int, ...], int]:
    scale = math.lcm(*range(1, window + 1)) if weighting == "harmonic" else 1
    if dynamic_window:
        scale *= window
    nums = []
    for d in range(1, window + 1):
        num = scale // d if weighting == "harmonic" else scale
        if dynamic_window:
            num = num * (window - d + 1) // window
        nums.append(num)
    return tuple(nums), scale


def _check_count_params(window: object, weighting: object, dynamic_window: object, subsample: object) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    weighted = weighting == "harmonic" or bool(dynamic_window)
    limit = MAX_WEIGHTED_WINDOW if weighted else MAX_WINDOW
    if window > limit:
        what = "with harmonic weighting or a dynamic window" if weighted else ""
        raise ValueError(f"window must be <= {limit} {what}, got {window}".replace("  ", " "))
    if subsample is not None and (isinstance(subsample, bool) or not isinstance(subsample, (int, float))
                                  or not 0 < subsample < 1):
        raise ValueError(f"subsample must be None or a number in (0, 1), got {subsample!r}")


def _keep_probability(vocab: Vocabulary, s: float) -> np.ndarray:
    counts = np.asarray(vocab.counts, dtype=np.float64)
    z = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(z / s) + 1.0) * s / z)


@dataclass
class _Partial:
    """The counts of one chunk: the band cells, the other pairs as sorted unique keys
    (lo * V + hi) with their integer sums, and token numbers."""

    band: np.ndarray | None
    keys: np.ndarray
    values: np.ndarray
    tokens: int
    kept: int


def _count_chunk(plan: _Plan, lookup: _Lookup, data: bytes, chunk_index: int,
                 n_expected: int | None = None) -> _Partial:
    """Count one chunk of newline-separated token text (a pure function of its input)."""
    n = len(data)
    buf = _padded(data)
    starts, ends = _token_bounds(buf[:n])
    if n_expected is not None and len(starts) != n_expected:
        raise ValueError("tokens must be non-empty and contain no whitespace or control characters")
    ids = lookup.ids(buf, n, starts, ends)
    keep = ids >= 0
    if plan.keep_prob is not None:
        draw = np.random.default_rng([plan.seed, chunk_index]).random(len(ids))
        keep &= draw < plan.keep_prob[np.where(keep, ids, 0)]
    sent = np.searchsorted(np.flatnonzero(buf[:n] == 10), starts[keep])
    ids = ids[keep]
    band, keys, values = _pair_counts(plan, ids, sent)
    return _Partial(band, keys, values, len(starts), len(ids))


_EMPTY = np.zeros(0, dtype=np.int64)


def _pair_counts(plan: _Plan, ids: np.ndarray, sent: np.ndarray) -> tuple[np.ndarray | None, np.ndarray,
                                                                          np.ndarray]:
    """Counts of the pairs (i, i + d), d = 1..window, of one chunk's id array."""
    V, K, L = plan.n_words, plan.band_rows, plan.window
    n = len(ids)
    if n < 2:
        return None, _EMPTY, _EMPTY
    signed, unsigned = (np.int32, np.uint32) if V * V < (1 << 31) else (np.int64, np.uint64)
    ids = ids.astype(signed)
    band_limit = K * V
    # Sentence starts inside this chunk: pairs reaching across one are dropped.
    breaks = np.flatnonzero(sent[1:] != sent[:-1]) + 1
    keys = np.empty((L, n), dtype=signed)     # row d-1: key of pair (i, i+d), -1 if none
    for d in range(1, L + 1):
        row = keys[d - 1]
        if d >= n:
            row[:] = -1
            continue
        a, b, key = ids[:-d], ids[d:], row[: n - d]
        np.minimum(a, b, out=key)
        key *= V - 1
        key += a
        key += b                             # lo * V + hi
        row[n - d:] = -1
        if len(breaks):
            bad = (breaks[:, None] - np.arange(1, d + 1)).ravel()
            key[bad[(bad >= 0) & (bad < n - d)]] = -1
    flat = keys.ravel()
    in_band = flat.view(unsigned) < band_limit  # -1 is huge as unsigned: dropped
    band_keys = flat[in_band]
    is_rest = flat >= band_limit
    rest = flat[is_rest]
    if plan.scale != 1:
        rest = rest.astype(np.int64)
        numerators = np.asarray(plan.numerators, dtype=np.float64)
        weights = np.repeat(numerators, n)[in_band]
        band = np.bincount(band_keys, weights, minlength=band_limit).astype(np.int64)
        rest *= L
        rest += np.flatnonzero(is_rest) // n  # d - 1
    else:
        band = np.bincount(band_keys, minlength=band_limit)
    uniq, values = _reduce_keys(plan, rest) if len(rest) else (_EMPTY, _EMPTY)
    return band, uniq, values


def _reduce_keys(plan: _Plan, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort pair keys and sum equal ones (applying the distance weights); -> (unique keys, sums)."""
    if keys.dtype == np.int32:
        keys = keys.view(np.uint32)      # non-negative: same order, no copy
    elif keys.max() < (1 << 32):
        keys = keys.astype(np.uint32)    # smaller keys sort faster
    keys.sort()
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    uniq = keys[starts].astype(np.int64)
    counts = np.diff(np.append(starts, len(keys))).astype(np.int64)
    if plan.scale != 1:
        numerators = np.asarray(plan.numerators, dtype=np.int64)
        counts *= numerators[uniq % plan.window]
        uniq //= plan.window
        first = np.empty(len(uniq), dtype=bool)
        first[0] = True
        np.not_equal(uniq[1:], uniq[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        counts = np.add.reduceat(counts, starts)
        uniq = uniq[starts]
    return uniq, counts


class _Accumulator:
    """Exact integer counts of the pairs (lo, hi), lo <= hi: a dense band for rows
    lo < band_rows, a sparse matrix (plus not yet merged parts) for the rest."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.band: np.ndarray | None = None   # the first chunk's band is taken over, not copied
        self.rest: sp.csr_matrix | None = None
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_size = 0
        self.tokens = 0
        self.kept = 0

    def add(self, part: _Partial) -> None:
        """Add one chunk's counts."""
        if part.band is not None:
            if self.band is None:
                self.band = part.band
            else:
                self.band += part.band
        if len(part.keys):
            self.pending.append((part.keys, part.values))
            self.pending_size += len(part.keys)
        if self.pending_size > max(1 << 20, 0 if self.rest is None else self.rest.nnz):
            self._flush()
        self.tokens += part.tokens
        self.kept += part.kept

    def _flush(self) -> None:
        V = self.plan.n_words
        for uniq, counts in self.pending:
            indptr = np.zeros(V + 1, dtype=np.int64)
            np.cumsum(np.bincount(uniq // V, minlength=V), out=indptr[1:])
            part = sp.csr_matrix((counts, (uniq % V).astype(np.int32), indptr), shape=(V, V))
            part.has_canonical_format = True
            self.rest = part if self.rest is None else self.rest + part
        self.pending, self.pending_size = [], 0

    def upper(self) -> sp.csr_matrix:
        """All counts so far as one integer CSR matrix (pairs stored once, at (lo, hi))."""
        self._flush()
        V, K = self.plan.n_words, self.plan.band_rows
        band = np.zeros(K * V, dtype=np.int64) if self.band is None else self.band
        upper = sp.vstack([sp.csr_matrix(band.reshape(K, V)),
                           sp.csr_matrix((V - K, V), dtype=np.int64)], format="csr")
        if self.rest is not None:
            upper = upper + self.rest
        upper.sort_indices()
        return upper

    def load(self, upper: sp.csr_matrix, tokens: int, kept: int) -> None:
        """Start from a snapshot made by `upper()` (resuming a count)."""
        K = self.plan.band_rows
        split = upper.indptr[K]
        self.band = np.asarray(upper[:K].toarray(), dtype=np.int64).ravel()
        rest = upper.copy()
        rest.data[:split] = 0
        rest.eliminate_zeros()
        self.rest = rest if rest.nnz else None
        self.pending, self.pending_size = [], 0
        self.tokens, self.kept = tokens, kept


def _symmetric_counts(upper: sp.csr_matrix, scale: int) -> sp.csr_matrix:
    """The symmetric float64 counts from the integer upper triangle (`_Accumulator.upper`)."""
    counts = (upper + upper.T).tocsr().astype(np.float64)
    if scale != 1:
        counts.data /= scale
    counts.sum_duplicates()
    counts.eliminate_zeros()
    return counts


def _final_counts(upper: sp.csr_matrix, scale: int, kept: int) -> sp.csr_matrix:
    """`_symmetric_counts`, or `ValueError` for a corpus without any in-vocabulary pair."""
    if kept == 0:
        raise ValueError("no token of the corpus is in the vocabulary (empty or all out-of-vocabulary corpus)")
    counts = _symmetric_counts(upper, scale)
    if counts.nnz == 0:
        raise ValueError("the corpus has no co-occurring pair of vocabulary words (one-word sentences only?)")
    return counts


class CountCheckpoint:
    """Snapshots of a count in progress, taken at chunk boundaries at most every
    `every_s` seconds, so a killed run can continue (`resume=True`) and end with
    exactly the counts of an uninterrupted one (integer sums; per-chunk seeds).

    Files: `partial.npz` (the integer counts so far) and `partial.json` (re-use
    key, next chunk, chunk layout, sha256 of the npz), each written atomically,
    the json last."""

    def __init__(self, directory: str | os.PathLike, key: str, every_s: float = 60.0,
                 resume: bool = True) -> None:
        self.directory = Path(directory)
        self.key = key
        self.every_s = every_s
        self.resume = resume
        self.last = time.monotonic()
        self.saved = 0
        self.resumed_chunk: int | None = None  # set when a count continued from a snapshot

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def save(self, acc: _Accumulator, next_chunk: int, layout: dict[str, Any]) -> None:
        """Write a snapshot: every chunk before `next_chunk` is in `acc`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        npz = self.directory / "partial.npz"
        atomic_write(npz, lambda h: sp.save_npz(h, acc.upper(), compressed=False))
        atomic_write_json(self.directory / "partial.json", {
            "key": self.key, "next_chunk": next_chunk, "layout": layout, "tokens": acc.tokens,
            "kept": acc.kept, "sha256": sha256_file(npz)})
        self.last = time.monotonic()
        self.saved += 1

    def load(self, n_words: int, layout: dict[str, Any]) -> tuple[sp.csr_matrix, int, int, int] | None:
        """(counts so far, next chunk, tokens, kept) of a valid snapshot for this key and layout, else None."""
        if not self.resume:
            return None
        try:
            info = json.loads((self.directory / "partial.json").read_text(encoding="utf-8"))
            if info.get("key") != self.key or info.get("layout") != layout:
                return None
            npz = self.directory / "partial.npz"
            if sha256_file(npz) != info.get("sha256"):
                return None
            upper = load_counts_npz(npz, (n_words, n_words))
            snapshot = upper, int(info["next_chunk"]), int(info["tokens"]), int(info["kept"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self.resumed_chunk = snapshot[1]
        return snapshot


def _as_words(vocab: "Vocabulary | Sequence[str]") -> list[str]:
    words = list(vocab.words) if isinstance(vocab, Vocabulary) else list(vocab)
    if not words:
        raise ValueError("the vocabulary is empty")
    if len(set(words)) != len(words):
        raise ValueError("the vocabulary has duplicate words")
    return words


def _worker_count(workers: int | None, n_chunks: int) -> int:
    wanted = cpu_count() if workers is None else workers
    return max(1, min(wanted, n_chunks // MIN_CHUNKS_PER_WORKER))


def count_cooccurrences(
    corpus: "PreparedCorpus | str | os.PathLike | Iterable[Sequence[str]]",
    vocab: "Vocabulary | Sequence[str]",
    window: int = 5,
    weighting: str = "uniform",
    dynamic_window: bool = False,
    subsample: float | None = None,
    seed: int = 0,
    *,
    workers: int | None = 1,
    progress: _PROGRESS | None = None,
    chunk_bytes: int | None = None,
    checkpoint: CountCheckpoint | None = None,
    stats: dict[str, Any] | None = None,
) -> sp.csr_matrix:
    """Symmetric word-context co-occurrence counts (float64 CSR, V x V, rows in `vocab` order).

    `corpus` is a `PreparedCorpus`, a path to a `corpus.txt` (one sentence per
    line, tokens separated by spaces), or an iterable of token lists. See the
    module docstring for the conventions. `workers` > 1 counts the chunks of a
    large corpus file in that many threads (same result, exactly);
    `progress(n)` is called with the number of tokens read since the last call;
    `checkpoint` (file corpora only) snapshots the count now and then and, if
    it holds a valid snapshot and `resume` is set, continues from it; `stats`,
    when given, receives token numbers. Raises `ValueError` for bad parameters
    or a corpus without any in-vocabulary pair.
    """
    plan, words = _make_plan(vocab, window, weighting, dynamic_window, subsample, seed)
    chunk_bytes = _check_chunk_bytes(chunk_bytes)
    if isinstance(corpus, PreparedCorpus):
        path: Path | None = corpus.path
    elif isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path}")
    else:
        path = None
    lookup = _Lookup(words)
    acc = _Accumulator(plan)
    if path is None:
        for index, (data, n_tokens) in enumerate(_iter_chunks(corpus, chunk_bytes)):
            acc.add(_count_chunk(plan, lookup, data, index, n_expected=n_tokens))
            if progress is not None:
                progress(n_tokens)
    else:
        _count_file(acc, path, plan, lookup, chunk_bytes, workers, progress, checkpoint)
    if stats is not None:
        stats.update(tokens=acc.tokens, kept_tokens=acc.kept)
    return _final_counts(acc.upper(), plan.scale, acc.kept)


def _make_plan(vocab: "Vocabulary | Sequence[str]", window: int, weighting: str, dynamic_window: bool,
               subsample: float | None, seed: int) -> tuple[_Plan, list[str]]:
    """The validated counting plan and vocabulary words (shared by the serial and the cluster counters)."""
    _check_count_params(window, weighting, dynamic_window, subsample)
    words = _as_words(vocab)
    if subsample is not None and not isinstance(vocab, Vocabulary):
        raise ValueError("subsampling needs word counts: pass a Vocabulary")
    numerators, scale = _integer_weights(int(window), weighting, dynamic_window)
    V = len(words)
    plan = _Plan(V, int(window), numerators, scale, min(V, max(1, BAND_CELLS // V)),
                 None if subsample is None else _keep_probability(vocab, subsample), int(seed))
    return plan, words


def _check_chunk_bytes(chunk_bytes: int | None) -> int:
    """`chunk_bytes`, defaulting to `CHUNK_BYTES`; `ValueError` below 1."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    return chunk_bytes


def _count_file(acc: _Accumulator, path: Path, plan: _Plan, lookup: _Lookup, chunk_bytes: int,
                workers: int | None, progress: _PROGRESS | None, checkpoint: CountCheckpoint | None) -> None:
    """Count the chunks of a corpus file in order, `workers` chunks in flight, merging
    each into `acc` as it completes (in chunk order) and snapshotting when due.

    Threads, not processes: the NumPy work (ufuncs, sorting, bincount, boolean
    indexing) releases the GIL, and nothing is forked or pickled."""
    bounds = _file_chunks(path, chunk_bytes)
    layout = {"chunk_bytes": chunk_bytes, "n_chunks": len(bounds), "bytes": bounds[-1][1] if bounds else 0}
    first = 0
    if checkpoint is not None:
        snapshot = checkpoint.load(plan.n_words, layout)
        if snapshot is not None:
            upper, first, tokens, kept = snapshot
            acc.load(upper, tokens, kept)
            if progress is not None and tokens:
                progress(tokens)

    def work(index: int) -> _Partial:
        start, end = bounds[index]
        with open(path, "rb") as handle:
            handle.seek(start)
            return _count_chunk(plan, lookup, handle.read(end - start), index)

    def done(index: int, part: _Partial) -> None:
        acc.add(part)
        if progress is not None:
            progress(part.tokens)
        if checkpoint is not None and index + 1 < len(bounds) and checkpoint.due():
            checkpoint.save(acc, index + 1, layout)

    todo = range(first, len(bounds))
    n_workers = _worker_count(workers, len(todo))
    if n_workers == 1:
        for index in todo:
            done(index, work(index))
        return
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="svd-count") as pool:
        in_flight: deque = deque()
        for index in todo:
            in_flight.append((index, pool.submit(work, index)))
            if len(in_flight) > n_workers:
                i, future = in_flight.popleft()
                done(i, future.result())
        while in_flight:
            i, future = in_flight.popleft()
            done(i, future.result())


# -- the counts matrix on disk (no pickle) --------------------------------------
COUNTS_FILE = "cooccurrence.npz"
COUNTS_INFO = "cooccurrence.json"
COUNTS_VOCAB = "cooccurrence_vocab.txt"
COUNTS_VERSION = 1


def write_counts(directory: str | os.PathLike, counts: sp.csr_matrix, words: Sequence[str], key: str) -> None:
    """Write `cooccurrence.npz` (scipy's sparse npz), its row words and an info file
    (re-use key, sha256 of the npz), each atomically; the info file is written last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / COUNTS_FILE, lambda h: sp.save_npz(h, sp.csr_matrix(counts), compressed=False))
    text = "".join(f"{w}\n" for w in words).encode("utf-8")
    atomic_write(directory / COUNTS_VOCAB, lambda h: h.write(text))
    atomic_write_json(directory / COUNTS_INFO, {
        "key": key, "version": COUNTS_VERSION, "shape": list(counts.shape), "nnz": int(counts.nnz),
        "sha256": sha256_file(directory / COUNTS_FILE), "words_sha256": words_sha256(words)})


def read_counts(directory: str | os.PathLike, key: str | None = None,
                words: Sequence[str] | None = None) -> sp.csr_matrix | None:
    """Load counts written by `write_counts`; None when absent, for another key or vocabulary,
    or damaged (checksum, shape, index or value checks fail). Never unpickles."""
    directory = Path(directory)
    try:
        info = json.loads((directory / COUNTS_INFO).read_text(encoding="utf-8"))
        if key is not None and info.get("key") != key:
            return None
        if words is not None and info.get("words_sha256") != words_sha256(words):
            return None
        if sha256_file(directory / COUNTS_FILE) != info.get("sha256"):
            return None
        return load_counts_npz(directory / COUNTS_FILE, tuple(info["shape"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_counts_npz(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
    """Read a CSR matrix saved by `scipy.sparse.save_npz` with `allow_pickle=False`, validated."""
    with np.load(path, allow_pickle=False) as npz:
        fmt = npz["format"].item()
        fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else str(fmt)
        if fmt != "csr":
            raise ValueError(f"{path}: expected a CSR matrix, got format {fmt!r}")
        got = tuple(int(x) for x in npz["shape"])
        data, indices, indptr = npz["data"], npz["indices"], npz["indptr"]
    if shape is not None and got != tuple(shape):
        raise ValueError(f"{path}: shape {got}, expected {tuple(shape)}")
    n_rows, n_cols = got
    if (len(indptr) != n_rows + 1 or indptr[0] != 0 or indptr[-1] != len(data) or len(indices) != len(data)
            or np.any(np.diff(indptr) < 0) or (len(indices) and (indices.min() < 0 or indices.max() >= n_cols))
            or not np.all(np.isfinite(data))):
        raise ValueError(f"{path}: inconsistent CSR arrays")
    return sp.csr_matrix((data, indices, indptr), shape=got)
