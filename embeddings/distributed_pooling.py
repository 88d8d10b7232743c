"""Static pooling on a Dask cluster: the encoding spread over workers, the sums reduced here.

The driver makes and selects the windows exactly as the serial `pool_static`
does (so the per-word context budget holds across shards by construction) and
cuts them into the same length-sorted batches. Consecutive batches form a shard
(one task). Each worker loads the encoder once per process (`cached_encoder`,
keyed by where the encoder is stored), encodes its batches with one torch thread
and returns per-word sums and counts for the rows it touched only (`ShardSums`);
the driver adds them, in shard order, into the V x d float64 sums and divides as
the serial path does. The batches are those of the serial run, so the vectors
differ from it only by the order of the float64 additions.

The encoder travels by path (`EncoderRef`): a pretrained Hugging Face directory
(or "minilm", which every worker resolves to its own installed copy), or a
trained Transformer first saved into a directory every worker reaches
(`shared_encoder`).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .cluster import map_tasks, worker_count
from .encoders import MINILM, Encoder, HFEncoder, load_encoder
from .pool_windows import Window, encode_batch, length_batches
from .training import Progress, ProgressCallback, notify

#: About this many corpus words per shard (one task: ~6 s of MiniLM on one core). Bounds
#: what a task carries through the scheduler, whatever the budget.
SHARD_WORDS = 20_000
#: At least this many shards per worker, so a slow or lost worker delays little.
MIN_SHARDS_PER_WORKER = 4
#: Shards in flight at once per worker: bounds the per-shard sums the driver holds.
SHARDS_PER_ROUND = 8
#: Encoders a worker process keeps loaded (the most recently used ones).
CACHE_SIZE = 2
#: glibc's mallopt settings for a pooling worker: blocks below 32 MiB from the heap, and
#: up to 64 MiB of free heap kept (`M_MMAP_THRESHOLD`, `M_TRIM_THRESHOLD`).
_MALLOPT = ((-3, 32 << 20), (-1, 64 << 20))
_ENCODERS: "OrderedDict[EncoderRef, Encoder]" = OrderedDict()


@dataclass(frozen=True)
class EncoderRef:
    """How a worker loads the encoder: its kind ("hf" or "transformer"), its directory
    on storage every worker sees (or "minilm"), and the precision to run it at."""

    kind: str
    location: str
    precision: str = "fp32"


@dataclass
class PoolShard:
    """One task: consecutive length-sorted batches of windows, packed as arrays.

    It travels through the scheduler (the windows are not a file on shared
    storage), which stays cheap because a shard holds about `SHARD_WORDS` corpus
    words: int32 word ids into `lexicon` (the distinct words of the shard) and
    int64 vocabulary rows, and all shards together hold only the selected windows,
    at most `max_tokens` words plus one window (or, without a budget, at most
    `max_contexts` windows per vocabulary word)."""

    encoder: EncoderRef
    layers: str
    lexicon: list[str]
    words: np.ndarray        # (n,) int32: index into lexicon, windows concatenated
    targets: np.ndarray      # (n,) int64: vocabulary row, or -1
    lengths: np.ndarray      # (n_windows,) int32: words per window
    batch_sizes: np.ndarray  # (n_batches,) int32: windows per batch

    @property
    def n_words(self) -> int:
        return int(len(self.words))

    def batches(self) -> Iterator[list[Window]]:
        """The batches of windows, as `encode_batch` takes them."""
        ends = np.cumsum(self.lengths).tolist()
        starts = [0] + ends[:-1]
        w = 0
        for size in self.batch_sizes.tolist():
            batch = []
            for start, end in zip(starts[w : w + size], ends[w : w + size]):
                batch.append(Window([self.lexicon[i] for i in self.words[start:end].tolist()],
                                    self.targets[start:end].tolist(), 0))
            w += size
            yield batch


@dataclass
class ShardSums:
    """What a task returns: the vocabulary rows it touched, their float64 vector sums
    (rows x d) and their context counts; never a full V x d matrix."""

    rows: np.ndarray
    sums: np.ndarray
    counts: np.ndarray


def encoder_ref(encoder: Encoder) -> EncoderRef:
    """The `EncoderRef` of a Hugging Face encoder (its absolute directory, or "minilm");
    other encoders have no directory yet: save them with `shared_encoder`."""
    if not isinstance(encoder, HFEncoder):
        raise ValueError(f"a {encoder.kind} encoder must be saved where the workers can read it "
                         "before pooling on a cluster (see shared_encoder)")
    location = MINILM if encoder.source == MINILM else str(Path(encoder.path).resolve())
    return EncoderRef("hf", location, encoder.precision)


@contextlib.contextmanager
def shared_encoder(encoder: Encoder, under: str | Path | None = None) -> Iterator[EncoderRef]:
    """An `EncoderRef` workers can load: a Hugging Face encoder's own directory, or any
    other encoder saved into a new hidden directory of `under` (shared storage, e.g.
    the run's checkpoint directory; the system temp dir, fit for a local cluster only,
    when None), removed at exit. The new directory name makes the workers' cache key
    unique to this run."""
    if isinstance(encoder, HFEncoder):
        yield encoder_ref(encoder)
        return
    if under is not None:
        Path(under).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".pool-encoder.tmp-", dir=under))
    try:
        encoder.save(scratch / "encoder")
        yield EncoderRef(encoder.kind, str((scratch / "encoder").resolve()), "fp32")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def tune_malloc() -> bool:
    """Undo, in this worker process, the Dask nanny's `MALLOC_TRIM_THRESHOLD_=65536`: set
    explicitly, it turns off glibc's adaptive mmap threshold, so every activation tensor
    is a fresh mmap and its page faults; MiniLM then encodes ~25% slower (measured
    here). Returns whether glibc took the settings (False elsewhere: nothing changes)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return all(libc.mallopt(option, value) == 1 for option, value in _MALLOPT)
    except (OSError, AttributeError, TypeError):
        return False


def cached_encoder(ref: EncoderRef) -> Encoder:
    """Worker side: the encoder of `ref`, loaded once per worker process (a small LRU cache)."""
    encoder = _ENCODERS.get(ref)
    if encoder is None:
        if not _ENCODERS:
            tune_malloc()
        if ref.kind == "hf":
            encoder = HFEncoder(ref.location, source=ref.location, precision=ref.precision)
        else:
            encoder = load_encoder(ref.location, ref.kind)
        _ENCODERS[ref] = encoder
        while len(_ENCODERS) > CACHE_SIZE:
            _ENCODERS.popitem(last=False)
    _ENCODERS.move_to_end(ref)
    return encoder


def pool_shard(shard: PoolShard) -> ShardSums:
    """Worker task: encode the shard's batches with one torch thread (one core per worker)
    and sum the word vectors per vocabulary row it touched, in the serial order."""
    torch.set_num_threads(1)
    encoder = cached_encoder(shard.encoder)
    rows = np.unique(shard.targets[shard.targets >= 0])
    sums = torch.zeros(len(rows), encoder.dim, dtype=torch.float64)
    counts = torch.zeros(len(rows), dtype=torch.int64)
    for batch in shard.batches():
        targets, vectors = encode_batch(encoder, batch, shard.layers)
        local = torch.from_numpy(np.searchsorted(rows, targets.numpy()))
        sums.index_add_(0, local, vectors)
        counts += torch.bincount(local, minlength=len(rows))
    touched = (counts > 0).numpy()
    return ShardSums(rows[touched], sums.numpy()[touched], counts.numpy()[touched])


def pack_shard(batches: Sequence[Sequence[Window]], encoder: EncoderRef, layers: str) -> PoolShard:
    """The batches of one shard as a compact `PoolShard`."""
    lexicon: dict[str, int] = {}
    windows = [w for batch in batches for w in batch]
    ids = [lexicon.setdefault(word, len(lexicon)) for w in windows for word in w.words]
    return PoolShard(encoder, layers, list(lexicon), np.asarray(ids, dtype=np.int32),
                     np.asarray([t for w in windows for t in w.targets], dtype=np.int64),
                     np.asarray([len(w.words) for w in windows], dtype=np.int32),
                     np.asarray([len(b) for b in batches], dtype=np.int32))


def plan_shards(batches: list[list[Window]], workers: int, n_special: int) -> list[list[list[Window]]]:
    """Consecutive batches grouped into shards of about equal cost (padded positions):
    about `SHARD_WORDS` words each, and `MIN_SHARDS_PER_WORKER` per worker when there
    are enough batches."""
    if not batches:
        return []
    words = sum(len(w.words) for batch in batches for w in batch)
    n = min(len(batches), max(MIN_SHARDS_PER_WORKER * workers, math.ceil(words / SHARD_WORDS)))
    cost = np.cumsum([len(batch) * (batch[-1].pieces + n_special) for batch in batches])  # sorted: last is widest
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, n) / n) + 1
    parts = np.split(np.arange(len(batches)), sorted(set(cuts.tolist()) - {len(batches)}))
    return [[batches[i] for i in part] for part in parts if len(part)]


def pool_on_cluster(
    client: Any, encoder: Encoder, ref: EncoderRef, windows: Sequence[Window], n_words: int, *,
    layers: str, batch_tokens: int, progress: ProgressCallback | None = None,
) -> tuple["torch.Tensor", "torch.Tensor", dict[str, int]]:
    """`encode_and_sum(encoder, windows, n_words, ...)` with the encoding on the cluster;
    returns (sums, contexts, {"workers", "shards"}). `encoder` (the driver's copy) only
    gives the batching and the dimension; the workers load `ref`. Shards run in rounds of
    `SHARDS_PER_ROUND` per worker, each reduced in shard order (deterministic) before the
    next; `progress` gets "pool" events (corpus words encoded) as shards finish."""
    workers = worker_count(client)
    batches = length_batches(windows, batch_tokens, encoder.n_special)
    shards = [pack_shard(part, ref, layers) for part in plan_shards(batches, workers, encoder.n_special)]
    sums = torch.zeros(n_words, encoder.dim, dtype=torch.float64)
    contexts = torch.zeros(n_words, dtype=torch.int64)
    total = sum(shard.n_words for shard in shards)
    per_round = SHARDS_PER_ROUND * workers
    offset = 0
    for first in range(0, len(shards), per_round):
        chunk = shards[first : first + per_round]

        def on_done(done: int, _total: int, offset: int = offset) -> None:
            notify(progress, Progress("pool", done=offset + done, total=total, unit="tok"))

        for result in map_tasks(client, pool_shard, chunk, on_done=on_done,
                                weights=[shard.n_words for shard in chunk]):
            rows = torch.from_numpy(result.rows)
            sums.index_add_(0, rows, torch.from_numpy(result.sums))
            contexts.index_add_(0, rows, torch.from_numpy(result.counts))
        offset += sum(shard.n_words for shard in chunk)
    return sums, contexts, {"workers": workers, "shards": len(shards)}
