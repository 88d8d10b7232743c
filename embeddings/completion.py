"""Prefix search over a whole vocabulary, for word completion.

The words are sorted once (code-point order, as Python compares strings); a
prefix's matches are one contiguous slice found by two bisections, and the
`limit` most frequent of them (lowest rows: vocabularies are stored most
frequent first) are picked with one partial sort. 400k words: about 0.3 s to
build, microseconds per query.
"""
from __future__ import annotations

import sys
from bisect import bisect_left
from typing import NamedTuple, Sequence

import numpy as np


class Completions(NamedTuple):
    """The `limit` most frequent words starting with a prefix, and how many words do."""

    words: list[str]
    total: int


class PrefixIndex:
    """Sorted words with their rows; `complete(prefix, limit)` in O(log n + matches)."""

    def __init__(self, words: Sequence[str]) -> None:
        order = sorted(range(len(words)), key=words.__getitem__)
        self._sorted = [words[i] for i in order]
        self._rows = np.asarray(order, dtype=np.int64)
        self._words = words

    def __len__(self) -> int:
        return len(self._sorted)

    def _range(self, prefix: str) -> tuple[int, int]:
        lo = bisect_left(self._sorted, prefix)
        last = ord(prefix[-1])
        if last == sys.maxunicode:  # no code point after it: scan to the end of the matches
            hi = lo
            while hi < len(self._sorted) and self._sorted[hi].startswith(prefix):
                hi += 1
            return lo, hi
        # Every word starting with `prefix` sorts before prefix[:-1] + (next code point).
        return lo, bisect_left(self._sorted, prefix[:-1] + chr(last + 1), lo)

    def complete(self, prefix: str, limit: int = 10) -> Completions:
        """Words starting with `prefix` (case-sensitive), most frequent first, at most `limit`."""
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("the prefix must be a non-empty string")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        lo, hi = self._range(prefix)
        rows = self._rows[lo:hi]
        if len(rows) > limit:
            rows = np.partition(rows, limit - 1)[:limit]
        return Completions([self._words[i] for i in np.sort(rows).tolist()], hi - lo)
