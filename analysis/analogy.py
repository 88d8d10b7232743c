"""Batch analogy evaluation ("a is to b as c is to ?") with 3CosAdd and 3CosMul.

`evaluate_analogies(emb, questions, ...)` follows gensim's
`KeyedVectors.evaluate_word_analogies` rule by rule, so on the same vectors and
settings its accuracy and per-section counts are gensim's:

* Candidates are the first `restrict_vocab` rows (gensim's default 300,000).
* Case rule (`case_insensitive=True`, the default): every word of the restricted
  vocabulary and of the questions is mapped with Python's `str.upper()`; a
  question word stands for the *first* (most frequent) row whose upper-cased
  form matches it. `str.upper` does not depend on the process locale, but it
  applies Unicode special casing, so different words can collide or change
  length ('ß'.upper() == 'SS', so "straße" and "STRASSE" are one word; gensim
  #2999). With `case_insensitive=False` words match exactly.
* A question with a word outside the restricted vocabulary is skipped and
  counted: coverage = seen / total is always reported.
* The input rows a, b, c are never predicted, nor any other row whose
  upper-cased form equals an input (gensim checks its top 5 for that; the rare
  question where a case variant of an input word exists is decided by the exact
  one-question path below, top-5 limit included). `include_inputs=True` lets
  them compete, for study.
* 3CosAdd: argmax cos(x, b - a + c) over unit vectors. 3CosMul (Levy & Goldberg
  2014): argmax cos'(x,b)·cos'(x,c) / (cos'(x,a) + eps), cos' = (cos + 1) / 2;
  eps = 1e-3 by default, gensim's `most_similar_cosmul` uses 1e-6.

Speed: all questions are scored at once in blocked matrix products: the vocabulary
is cut into tiles (a tile of rows stays in cache), each tile is scored against a
block of questions, input words are masked in the tile, and only the best and
second-best score per question survive a tile. Nothing of size questions x vocab
is ever materialized, and the `Embeddings` is never modified.

Ties: float32 sums in a matrix product are not rounded like gensim's one query at
a time, so a question whose best two scores are closer than the rounding bound
(and every exact tie) is re-decided by `_reference_question`, which repeats
gensim's computation operation for operation (its mean vector, its
`dot(vectors, mean) / norms`, its partial argsort). The blocked result therefore
equals the one-question-at-a-time reference, ties included.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.linalg.blas import dnrm2, dscal

from embeddings.query import ANALOGY_METHODS, COSMUL_EPS
from embeddings.training import cpu_count
from embeddings.vectors import Embeddings

from .datasets import Analogy, AnalogyDataset, coverage_warning, read_analogies, section_kind

METHODS = ANALOGY_METHODS
DEFAULT_RESTRICT = 300_000
DEFAULT_EPS = COSMUL_EPS
GENSIM_COSMUL_EPS = 1e-6
#: gensim looks at this many candidates for one that is not a case variant of an input.
GENSIM_TOPN = 5
#: Rows of the vocabulary scored per tile (x 4 bytes x dim stays in L2).
VOCAB_TILE = 4096
#: Questions scored per block against one tile.
QUESTION_BLOCK = 256
#: float32 unit roundoff.
_UNIT_ROUNDOFF = 2.0**-24


# -- report -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuestionResult:
    """The outcome of one question. `rank` is the position of the expected word
    among the candidates (1 when the prediction is right; None when not computed,
    the question was not seen, or the expected word is one of the inputs)."""

    section: str
    a: str
    b: str
    c: str
    expected: str
    line: int
    seen: bool
    predicted: str | None = None
    correct: bool = False
    rank: int | None = None


@dataclass(frozen=True)
class SectionScore:
    """Counts for one section (or a total): correct of seen, seen of total."""

    name: str
    kind: str
    correct: int
    seen: int
    total: int

    @property
    def accuracy(self) -> float | None:
        """correct / seen, or None when no question of the section was seen."""
        return self.correct / self.seen if self.seen else None

    @property
    def coverage(self) -> float:
        """seen / total: the share of questions whose four words are all in the vocabulary."""
        return self.seen / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "correct": self.correct, "seen": self.seen,
                "total": self.total, "accuracy": self.accuracy, "coverage": self.coverage}


def _total(name: str, kind: str, parts: Iterable[SectionScore]) -> SectionScore:
    parts = list(parts)
    return SectionScore(name, kind, sum(p.correct for p in parts), sum(p.seen for p in parts),
                        sum(p.total for p in parts))


@dataclass(frozen=True)
class AnalogyReport:
    """Accuracy overall, per section and semantic vs syntactic, with the settings used."""

    dataset: str
    method: str
    restrict_vocab: int
    candidates: int
    case_insensitive: bool
    include_inputs: bool
    eps: float | None
    sections: tuple[SectionScore, ...]
    details: tuple[QuestionResult, ...] = field(repr=False)
    seconds: float = 0.0
    exact_path_questions: int = 0

    @property
    def total(self) -> SectionScore:
        return _total("total", "all", self.sections)

    @property
    def semantic(self) -> SectionScore:
        return _total("semantic", "semantic", (s for s in self.sections if s.kind == "semantic"))

    @property
    def syntactic(self) -> SectionScore:
        return _total("syntactic", "syntactic", (s for s in self.sections if s.kind == "syntactic"))

    @property
    def accuracy(self) -> float | None:
        """Correct / seen over all sections (gensim's "Total accuracy")."""
        return self.total.accuracy

    @property
    def coverage(self) -> float:
        return self.total.coverage

    @property
    def warnings(self) -> tuple[str, ...]:
        """What makes the accuracy hard to compare (coverage under LOW_COVERAGE)."""
        warning = coverage_warning("questions", self.total.seen, self.total.total)
        return () if warning is None else (warning,)

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        """A JSON-ready summary (and every question when `details`)."""
        total = self.total
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "method": self.method,
            "settings": {"restrict_vocab": self.restrict_vocab, "candidates": self.candidates,
                         "case_insensitive": self.case_insensitive,
                         "include_inputs": self.include_inputs, "eps": self.eps},
            "accuracy": total.accuracy,
            "correct": total.correct,
            "seen": total.seen,
            "total": total.total,
            "coverage": total.coverage,
            "semantic": self.semantic.to_dict(),
            "syntactic": self.syntactic.to_dict(),
            "sections": [s.to_dict() for s in self.sections],
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 4),
        }
        if details:
            out["details"] = [
                {"section": q.section, "line": q.line, "a": q.a, "b": q.b, "c": q.c,
                 "expected": q.expected, "seen": q.seen, "predicted": q.predicted,
                 "correct": q.correct, "rank": q.rank}
                for q in self.details
            ]
        return out

    def table(self) -> str:
        """A plain-text table for the terminal: one row per section, then the totals."""
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        rows = [("section", "kind", "accuracy", "correct/seen", "seen/total")]
        for s in (*self.sections, self.semantic, self.syntactic, self.total):
            rows.append((s.name, s.kind, pct(s.accuracy), f"{s.correct}/{s.seen}", f"{s.seen}/{s.total}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [f"{self.method} on {self.dataset}: accuracy {pct(self.accuracy)}, coverage "
                 f"{self.total.seen}/{self.total.total} ({pct(self.coverage)}), restrict_vocab "
                 f"{self.restrict_vocab}, case_insensitive={self.case_insensitive}, "
                 f"include_inputs={self.include_inputs}" + (f", eps={self.eps:g}" if self.eps is not None else "")]
        for i, row in enumerate(rows):
            if i == len(rows) - 3:
                lines.append("  ".join("-" * w for w in widths))
            lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        return "\n".join(lines)


# -- vocabulary matching (gensim's case rule) ---------------------------------------
@dataclass(frozen=True)
class Lexicon:
    """How the dataset's words map to rows of the first `n` words.

    `first[key]` is the first row whose key (the word, or its `str.upper()`) is
    `key`; `variants[key]` lists every row with that key when there are several.
    Only the keys asked for are present (a key that is absent is out of vocabulary).
    """

    n: int
    case_insensitive: bool
    first: dict[str, int]
    variants: dict[str, tuple[int, ...]]

    def key(self, word: str) -> str:
        return word.upper() if self.case_insensitive else word


def lexicon(emb: Embeddings, n: int, case_insensitive: bool, words: Iterable[str]) -> Lexicon:
    """Map the keys of `words` to rows of the first `n` words of `emb`, gensim's way.

    One pass of `str.upper` over the vocabulary and a set lookup per row: cheaper
    than gensim's dict of every upper-cased word, and nothing is cached on `emb`.
    """
    if not case_insensitive:
        first = {}
        for word in words:
            row = emb.get_index(word)
            if row is not None and row < n:
                first[word] = row
        return Lexicon(n, False, first, {})
    needed = {word.upper() for word in words}
    keys = list(map(str.upper, emb.words[:n]))
    rows: dict[str, list[int]] = {}
    for i in [i for i, k in enumerate(keys) if k in needed]:
        rows.setdefault(keys[i], []).append(i)
    first = {k: r[0] for k, r in rows.items()}
    variants = {k: tuple(r) for k, r in rows.items() if len(r) > 1}
    return Lexicon(n, True, first, variants)


# -- the exact one-question path (gensim's arithmetic) --------------------------------
def _gensim_argsort_desc(x: np.ndarray, topn: int) -> np.ndarray:
    """gensim.matutils.argsort(x, topn, reverse=True), same operations, same tie order."""
    x = -x
    if topn >= x.size:
        return np.argsort(x)[:topn]
    most_extreme = np.argpartition(x, topn)[:topn]
    return most_extreme.take(np.argsort(x.take(most_extreme)))


def _gensim_scores(emb: Embeddings, n: int, ia: int, ib: int, ic: int, method: str, eps: float) -> np.ndarray:
    """Scores of rows [0, n) as gensim computes them (float32, its order of operations)."""
    vectors, norms = emb.vectors, emb.norms
    with np.errstate(all="ignore"):  # zero vectors give NaN exactly as in gensim
        if method == "3cosadd":
            # KeyedVectors.get_mean_vector(pre_normalize=True, post_normalize=True), weights [1, 1, -1]
            mean = np.zeros(emb.dim, dtype=np.float32)
            for weight, row in ((1.0, ib), (1.0, ic), (-1.0, ia)):
                mean += np.float64(weight) * (vectors[row] / norms[row])
            mean = mean / np.float64(3.0)
            length = dnrm2(mean)
            if length > 0.0:
                mean = dscal(1.0 / length, mean).astype(mean.dtype)
            mean = mean.astype(np.float32)
            return np.dot(vectors[:n], mean) / norms[:n]
        # KeyedVectors.most_similar_cosmul(positive=[b, c], negative=[a])
        top = vectors[:n]
        pos = [(1 + np.dot(top, vectors[r] / norms[r]) / norms[:n]) / 2 for r in (ib, ic)]
        neg = [(1 + np.dot(top, vectors[ia] / norms[ia]) / norms[:n]) / 2]
        return np.prod(pos, axis=0) / (np.prod(neg, axis=0) + np.float32(eps))


def _reference_question(emb: Embeddings, lex: Lexicon, rows: tuple[int, int, int, int],
                        keys: tuple[str, str, str, str], method: str, include_inputs: bool,
                        eps: float, want_rank: bool) -> tuple[int | None, bool, int | None]:
    """One question exactly as gensim's evaluate_word_analogies decides it.

    Returns (predicted row or None, correct, rank or None).
    """
    ia, ib, ic, ie = rows
    A, B, C, D = keys
    dists = _gensim_scores(emb, lex.n, ia, ib, ic, method, eps)
    if include_inputs:
        excluded: Sequence[int] = ()
        ignore: set[str] = set()
    else:
        # most_similar keeps a list of the 3 input rows, most_similar_cosmul a set.
        excluded = [ib, ic, ia] if method == "3cosadd" else list({ia, ib, ic})
        ignore = {A, B, C}
    best = _gensim_argsort_desc(dists, GENSIM_TOPN + len(excluded))
    sims = [int(r) for r in best if int(r) not in excluded][:GENSIM_TOPN]
    predicted = None
    predicted_key = None
    for r in sims:
        predicted, predicted_key = r, lex.key(emb.words[r])
        if predicted_key not in ignore:
            break
    correct = predicted_key == D
    rank = None
    if want_rank:
        if correct:
            rank = 1
        elif D not in ignore:
            allowed = np.ones(lex.n, dtype=bool)
            allowed[list(excluded)] = False
            for k in ignore:
                allowed[list(lex.variants.get(k, (lex.first[k],)))] = False
            allowed[ie] = False
            with np.errstate(invalid="ignore"):
                rank = 1 + int(np.count_nonzero(dists[allowed] > dists[ie]))
    return predicted, correct, rank


# -- the blocked path -------------------------------------------------------------
def _pairs_by_tile(qidx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(question, row) pairs sorted by row, then by question, for slicing per tile and block."""
    order = np.lexsort((qidx, rows))
    return qidx[order], rows[order]


def _tile_pairs(pairs: tuple[np.ndarray, np.ndarray], t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose row lies in [t0, t1), sorted by question, rows made tile-relative."""
    q, r = pairs
    lo, hi = np.searchsorted(r, [t0, t1])
    q, r = q[lo:hi], r[lo:hi] - t0
    order = np.argsort(q, kind="stable")
    return q[order], r[order]


class _Scorer:
    """Scores blocks of questions against a tile of candidate rows (float32).

    Analogy sets reuse their words: the Google set's 19,544 questions use 905
    distinct words and 550 distinct (a, b) pairs. So each tile is multiplied once
    by the distinct input words (G = words x tile, one matrix product), each
    pair's part is formed once (3CosAdd: G[b] - G[a]; 3CosMul: cos'b / (cos'a + eps)),
    and a question's scores are its pair's row combined with its c row. Scores are
    3CosAdd's cos(x, b - a + c) times |b - a + c| (the same argmax) and 3CosMul's
    objective.
    """

    def __init__(self, unit: np.ndarray, inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
                 method: str, eps: float) -> None:
        ia, ib, ic = inputs
        m = len(ia)
        self.method = method
        self.eps = np.float32(eps)
        self.size = m
        uniq, inverse = np.unique(np.concatenate([ia, ib, ic]), return_inverse=True)
        self.words = np.ascontiguousarray(unit[uniq])
        wa, wb, self.wc = inverse[:m], inverse[m:2 * m], inverse[2 * m:]
        pairs, self.pair = np.unique(wa * len(uniq) + wb, return_inverse=True)
        self.pair_a, self.pair_b = pairs // len(uniq), pairs % len(uniq)
        self.word_part = self.pair_part = np.empty((0, 0), dtype=np.float32)

    def start_tile(self, tile: np.ndarray) -> None:
        """Score the distinct words and pairs against `tile` (rows of unit vectors)."""
        g = self.words @ tile.T  # (distinct words, tile): cosines
        if self.method == "3cosadd":
            self.pair_part = g[self.pair_b] - g[self.pair_a]
        else:
            g += 1
            g *= 0.5  # cos' = (cos + 1) / 2
            self.pair_part = g[self.pair_b] / (g[self.pair_a] + self.eps)
        self.word_part = g

    def score(self, q0: int, q1: int, out: np.ndarray, scratch: np.ndarray) -> None:
        """Scores of questions [q0, q1) against the current tile, into `out` (block, tile)."""
        # mode="clip" (the indices are valid) lets NumPy gather straight into `out`; the
        # default mode="raise" gathers into a temporary first, three times slower.
        np.take(self.pair_part, self.pair[q0:q1], axis=0, out=out, mode="clip")
        np.take(self.word_part, self.wc[q0:q1], axis=0, out=scratch, mode="clip")
        if self.method == "3cosadd":
            out += scratch
        else:
            out *= scratch

    def direct(self, unit: np.ndarray, inputs: tuple[np.ndarray, ...], rows: np.ndarray) -> np.ndarray:
        """The same score for one given row per question, computed directly (float32)."""
        target = unit[np.maximum(rows, 0)]
        ca, cb, cc = (np.einsum("ij,ij->i", unit[r], target).astype(np.float32) for r in inputs)
        if self.method == "3cosadd":
            return (cb - ca) + cc
        pa, pb, pc = ((c + 1) * np.float32(0.5) for c in (ca, cb, cc))
        return pb / (pa + self.eps) * pc


def _score_error(unit: np.ndarray, method: str, eps: float, inputs: tuple[np.ndarray, ...],
                 rows: np.ndarray, value: np.ndarray) -> np.ndarray:
    """A bound on how far float32 rounding can move `value`, the score of row `rows[i]`,
    here and in gensim's one-query arithmetic together.

    A float32 dot product of unit vectors in d dimensions is off by at most
    d ulps (|sum x_i y_i| <= 1); normalizing adds a few. 3CosAdd adds three such
    cosines (gensim: one cosine to a vector of length |b - a + c| <= 3); 3CosMul
    multiplies and divides, so its relative error grows with 1 / cos'.
    """
    delta = (unit.shape[1] + 4) * _UNIT_ROUNDOFF
    if method == "3cosadd":
        return np.full(len(rows), 8 * delta)
    target = unit[np.maximum(rows, 0)]
    pa, pb, pc = ((1 + np.einsum("ij,ij->i", unit[r], target).astype(np.float64)) / 2 for r in inputs)
    with np.errstate(all="ignore"):
        relative = delta * (1 / pb + 1 / pc + 1 / (pa + eps)) + 8 * _UNIT_ROUNDOFF
        return np.abs(value.astype(np.float64)) * relative


def _solve(unit: np.ndarray, rows: np.ndarray, method: str, eps: float, include_inputs: bool,
           never: np.ndarray, ranks: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-1 row of each question (rows: m x 4 array of a, b, c, expected) by blocked products.

    Returns (best row, clear, above): `clear` is False where the best and the
    second-best scores are within rounding of each other (or there is no
    candidate); `above` counts candidates scoring above the expected row (ranks).
    """
    ia, ib, ic, ie = (np.ascontiguousarray(col) for col in rows.T)
    inputs = (ia, ib, ic)
    m = len(ia)
    scorer = _Scorer(unit, inputs, method, eps)
    qn = np.arange(m, dtype=np.int64)
    if include_inputs:
        masks = (np.empty(0, np.int64), np.empty(0, np.int64))
    else:
        masks = _pairs_by_tile(np.concatenate([qn, qn, qn]), np.concatenate([ia, ib, ic]))
    expected = _pairs_by_tile(qn, ie)
    thresholds = scorer.direct(unit, inputs, ie) if ranks else None

    n = unit.shape[0]
    best = np.full(m, -np.inf, dtype=np.float32)
    second = np.full(m, -np.inf, dtype=np.float32)
    arg = np.full(m, -1, dtype=np.int64)
    arg2 = np.full(m, -1, dtype=np.int64)
    above = np.zeros(m, dtype=np.int64)
    # Flat buffers, reshaped per block so every view is C-contiguous.
    out_buf = np.empty(QUESTION_BLOCK * VOCAB_TILE, dtype=np.float32)
    scratch_buf = np.empty_like(out_buf)
    for t0 in range(0, n, VOCAB_TILE):
        t1 = min(t0 + VOCAB_TILE, n)
        width = t1 - t0
        scorer.start_tile(unit[t0:t1])
        tq, tr = _tile_pairs(masks, t0, t1)
        eq, er = _tile_pairs(expected, t0, t1)
        zero_cols = never[(never >= t0) & (never < t1)] - t0
        for q0 in range(0, m, QUESTION_BLOCK):
            q1 = min(q0 + QUESTION_BLOCK, m)
            nq = q1 - q0
            scores = out_buf[: nq * width].reshape(nq, width)
            scorer.score(q0, q1, scores, scratch_buf[: nq * width].reshape(nq, width))
            a, b = np.searchsorted(tq, [q0, q1])
            if b > a:  # the input words of each question
                scores[tq[a:b] - q0, tr[a:b]] = -np.inf
            if len(zero_cols):
                scores[:, zero_cols] = -np.inf
            ar = np.arange(nq)
            idx = scores.argmax(axis=1)
            val = scores[ar, idx]
            if thresholds is not None:
                thr = thresholds[q0:q1]
                counts = above[q0:q1]
                counts += np.count_nonzero(scores > thr[:, None], axis=1)
                a, b = np.searchsorted(eq, [q0, q1])
                qq, rr = eq[a:b] - q0, er[a:b]
                counts[qq] -= scores[qq, rr] > thr[qq]  # the expected row is not above itself
            scores[ar, idx] = -np.inf
            idx2 = scores.argmax(axis=1)
            val2 = scores[ar, idx2]
            b1, b2 = best[q0:q1], second[q0:q1]
            a1, a2 = arg[q0:q1], arg2[q0:q1]
            new = val > b1
            # The new runner-up: the old best if this tile's best beat it (and its
            # runner-up did not), else this tile's runner-up; or this tile's best
            # when it beats only the old runner-up. Equal scores keep the earlier row.
            old_best = new & (b1 >= val2)
            tile_second = new & ~old_best
            tile_best = ~new & (val > b2)
            a2[old_best], b2[old_best] = a1[old_best], b1[old_best]
            a2[tile_second], b2[tile_second] = idx2[tile_second] + t0, val2[tile_second]
            a2[tile_best], b2[tile_best] = idx[tile_best] + t0, val[tile_best]
            a1[new], b1[new] = idx[new] + t0, val[new]

    tol = (_score_error(unit, method, eps, inputs, arg, best)
           + _score_error(unit, method, eps, inputs, arg2, second))
    with np.errstate(invalid="ignore"):
        gap = best.astype(np.float64) - second.astype(np.float64)
        clear = np.isfinite(best) & (arg >= 0) & (gap > tol)
    return arg, clear, above


def _solve_parallel(unit: np.ndarray, rows: np.ndarray, method: str, eps: float, include_inputs: bool,
                    never: np.ndarray, ranks: bool, workers: int) -> tuple[np.ndarray, ...]:
    """`_solve` on `workers` slices of the questions in threads, BLAS at one thread each.

    NumPy releases the GIL in the products and reductions; one BLAS thread per
    worker avoids OpenBLAS's spin-waiting when the cores are shared.
    """
    from threadpoolctl import threadpool_limits

    m = len(rows)
    workers = max(1, min(workers, -(-m // QUESTION_BLOCK)))
    bounds = np.linspace(0, m, workers + 1).astype(int)
    parts = [rows[bounds[i]:bounds[i + 1]] for i in range(workers)]
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            results = [_solve(unit, parts[0], method, eps, include_inputs, never, ranks)]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(
                    lambda part: _solve(unit, part, method, eps, include_inputs, never, ranks), parts))
    return tuple(np.concatenate(arrays) for arrays in zip(*results))


# -- the public entry point --------------------------------------------------------
def _as_questions(questions: AnalogyDataset | Iterable[Analogy] | str | os.PathLike) -> AnalogyDataset:
    if isinstance(questions, AnalogyDataset):
        return questions
    if isinstance(questions, (str, os.PathLike)):
        return read_analogies(questions)
    items = tuple(questions)
    for item in items:
        if not isinstance(item, Analogy):
            raise TypeError(f"questions must be Analogy items, got {type(item).__name__}")
    sections = tuple(dict.fromkeys(q.section for q in items))
    return AnalogyDataset("questions", sections, items)


def check_settings(method: str, restrict_vocab: int, eps: float) -> None:
    """Raise `ValueError` naming the bad value among the evaluation settings."""
    if method not in METHODS:
        raise ValueError(f"unknown analogy method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, (int, np.integer)) or restrict_vocab <= 0:
        raise ValueError(f"restrict_vocab must be a positive integer, got {restrict_vocab!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")


def evaluate_analogies(
    emb: Embeddings,
    questions: AnalogyDataset | Iterable[Analogy] | str | os.PathLike,
    method: str = "3cosadd",
    restrict_vocab: int = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
    include_inputs: bool = False,
    eps: float = DEFAULT_EPS,
    ranks: bool = False,
    blocked: bool = True,
    workers: int | None = None,
) -> AnalogyReport:
    """Answer every question with `method` and count the right ones per section.

    `ranks=True` also finds the rank of the expected word for every question
    (one more pass over every score: about 3x the time). `blocked=False` answers one question at a time with
    gensim's arithmetic (the reference the tests compare against). `eps` is used
    by 3CosMul only; `workers` threads share the blocked products (default: the
    usable cores). The `Embeddings` is only read.
    """
    started = time.perf_counter()
    check_settings(method, restrict_vocab, eps)
    dataset = _as_questions(questions)
    if len(emb) == 0:
        raise ValueError("the model has no vectors")
    n = min(int(restrict_vocab), len(emb))
    lex = lexicon(emb, n, case_insensitive,
                  (w for q in dataset.questions for w in (q.a, q.b, q.c, q.expected)))
    key, first, variants = lex.key, lex.first, lex.variants
    norms = emb.norms[:n]

    # Per question: None (unseen) or (rows, keys); seen ones go to the blocked or the exact path.
    keyed: list[tuple[tuple[str, ...], tuple[int | None, ...]]] = []
    fast: list[int] = []
    exact: list[int] = []
    for i, q in enumerate(dataset.questions):
        keys = (key(q.a), key(q.b), key(q.c), key(q.expected))
        rows = (first.get(keys[0]), first.get(keys[1]), first.get(keys[2]), first.get(keys[3]))
        keyed.append((keys, rows))
        if None in rows:
            continue
        if (not blocked or norms[rows[0]] == 0 or norms[rows[1]] == 0 or norms[rows[2]] == 0
                or (not include_inputs and variants and any(k in variants for k in keys[:3]))):
            exact.append(i)
        else:
            fast.append(i)

    outcome: dict[int, tuple[int | None, bool, int | None]] = {}
    if fast:
        unit = emb.normalized[:n]
        rows_arr = np.asarray([keyed[i][1] for i in fast], dtype=np.int64)
        never = np.flatnonzero(norms == 0)
        arg, clear, above = _solve_parallel(
            unit, rows_arr, method, eps, include_inputs, never, ranks, workers or cpu_count())
        words = emb.words
        for k, i in enumerate(fast):
            keys = keyed[i][0]
            row = int(arg[k])
            correct = bool(clear[k]) and key(words[row]) == keys[3]
            rank = None
            if ranks and not correct and (include_inputs or keys[3] not in keys[:3]):
                rank = 1 + int(above[k])
            if not clear[k]:
                exact.append(i)
                continue
            outcome[i] = (row, correct, 1 if ranks and correct else rank)

    from threadpoolctl import threadpool_limits

    # One BLAS thread: no spin-waiting on shared cores, and a matrix-vector product's
    # rows are summed the same way whatever the thread count (so still gensim's numbers).
    with threadpool_limits(limits=1, user_api="blas"):
        for i in exact:
            keys, rows = keyed[i]
            outcome[i] = _reference_question(emb, lex, rows, keys, method, include_inputs, eps, ranks)  # type: ignore[arg-type]

    details: list[QuestionResult] = []
    counts = {name: [0, 0, 0] for name in dataset.sections}
    for i, q in enumerate(dataset.questions):
        tally = counts.setdefault(q.section, [0, 0, 0])
        tally[2] += 1
        result = outcome.get(i)
        if result is None:
            details.append(QuestionResult(q.section, q.a, q.b, q.c, q.expected, q.line, False))
            continue
        row, correct, rank = result
        tally[1] += 1
        tally[0] += correct
        details.append(QuestionResult(q.section, q.a, q.b, q.c, q.expected, q.line, True,
                                      None if row is None else emb.words[row], correct, rank))
    sections = tuple(SectionScore(name, section_kind(name), *counts[name]) for name in counts)
    return AnalogyReport(
        dataset=dataset.name, method=method, restrict_vocab=int(restrict_vocab), candidates=n,
        case_insensitive=case_insensitive, include_inputs=include_inputs,
        eps=float(eps) if method == "3cosmul" else None, sections=sections, details=tuple(details),
        seconds=time.perf_counter() - started, exact_path_questions=len(exact),
    )
