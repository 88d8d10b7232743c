"""The pure steps of static pooling: cut a corpus into windows, choose them within the
budget, batch them by length, encode a batch and sum its word vectors per vocabulary row.

Apart from `embeddings.pooling` (which chains these steps into models and the
trainer) so that the cluster side (`embeddings.distributed_pooling`) can run the
very same batching and encoding on workers without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .encoders import Encoder
from .training import Progress, ProgressCallback, notify

DEFAULT_BATCH_TOKENS = 4096


@dataclass
class Window:
    """Consecutive corpus words encoded together; `targets[i]` is the vocabulary row
    that word i contributes to, or -1."""

    words: list[str]
    targets: list[int]
    pieces: int


def make_windows(
    sentences: Iterable[Sequence[str]], encoder: Encoder, window: int | None = None
) -> Iterator[tuple[list[str], int]]:
    """Cut sentences into runs of words of at most `window` pieces (and what fits in one
    sequence of the encoder); yields (words, pieces). A word longer than that is skipped."""
    capacity = encoder.capacity if window is None else min(window, encoder.capacity)
    for sentence in sentences:
        counts = encoder.piece_counts(sentence)
        start, used = 0, 0
        for i, n in enumerate(counts):
            if n > capacity:
                if i > start:
                    yield list(sentence[start:i]), used
                start, used = i + 1, 0
                continue
            if used + n > capacity:
                yield list(sentence[start:i]), used
                start, used = i, 0
            used += n
        if len(sentence) > start:
            yield list(sentence[start:]), used


def select_windows(
    windows: Sequence[tuple[list[str], int]], vocab_index: dict[str, int], max_contexts: int,
    max_tokens: int | None, seed: int,
) -> list[Window]:
    """Visit windows in a seeded order; keep those holding a word with < max_contexts contexts."""
    taken = np.zeros(len(vocab_index), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(windows))
    chosen: list[Window] = []
    used = 0
    for w in order.tolist():
        words, pieces = windows[w]
        targets = []
        for word in words:
            row = vocab_index.get(word, -1)
            if row >= 0 and taken[row] < max_contexts:
                taken[row] += 1
                targets.append(row)
            else:
                targets.append(-1)
        if any(t >= 0 for t in targets):
            chosen.append(Window(words, targets, pieces))
            used += len(words)
            if max_tokens is not None and used >= max_tokens:
                break
    return chosen


def length_batches(windows: Sequence[Window], batch_tokens: int, n_special: int) -> list[list[Window]]:
    """Sort by length and group so each padded batch holds about `batch_tokens` positions."""
    ordered = sorted(windows, key=lambda w: w.pieces)
    batches: list[list[Window]] = []
    current: list[Window] = []
    for window in ordered:
        width = window.pieces + n_special  # the longest so far (sorted)
        if current and (len(current) + 1) * width > batch_tokens:
            batches.append(current)
            current = []
        current.append(window)
    if current:
        batches.append(current)
    return batches


def encode_batch(encoder: Encoder, batch: Sequence[Window], layers: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(vocabulary rows, float64 vectors) of the targeted words of one batch; a word the
    encoder gave no vector (NaN: no word piece) is dropped."""
    vectors = encoder.encode_words([w.words for w in batch], layers)  # (sum words, d)
    targets = torch.tensor([t for w in batch for t in w.targets], dtype=torch.long)
    keep = (targets >= 0) & ~torch.isnan(vectors).any(dim=1)
    return targets[keep], vectors[keep].double()


def encode_and_sum(
    encoder: Encoder, windows: Sequence[Window], n_words: int, *, layers: str = "last",
    batch_tokens: int = DEFAULT_BATCH_TOKENS, progress: ProgressCallback | None = None,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Encode `windows` in length-sorted batches; per vocabulary row, the sum of its
    contextual vectors (float64, n_words x d) and how many were added (int64).
    `progress` gets a "pool" event (corpus words encoded) per batch."""
    sums = torch.zeros(n_words, encoder.dim, dtype=torch.float64)
    contexts = torch.zeros(n_words, dtype=torch.int64)
    total, done = sum(len(w.words) for w in windows), 0
    for batch in length_batches(windows, batch_tokens, encoder.n_special):
        targets, vectors = encode_batch(encoder, batch, layers)
        sums.index_add_(0, targets, vectors)
        contexts += torch.bincount(targets, minlength=n_words)
        done += sum(len(w.words) for w in batch)
        notify(progress, Progress("pool", done=done, total=total, unit="tok"))
    return sums, contexts
