"""Word-similarity evaluation: model cosines against human judgements (WordSim353, SimLex-999).

`evaluate_word_pairs(emb, pairs)` follows gensim's `KeyedVectors.evaluate_word_pairs`
rule by rule (same restrict_vocab and case rule as the analogy evaluation, see
`analysis.analogy`): a pair with a word outside the first `restrict_vocab`
words is skipped and counted, each cosine is computed with gensim's own
float32 arithmetic, and the correlations come from the same SciPy functions,
so Spearman and Pearson equal gensim's to the last bit. Nothing is modified.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from scipy.linalg.blas import dnrm2, dscal

from embeddings.vectors import Embeddings

from .analogy import DEFAULT_RESTRICT, lexicon
from .datasets import MIN_PAIRS, WordPair, WordPairDataset, coverage_warning, read_word_pairs


@dataclass(frozen=True)
class SimilarityReport:
    """Correlations with human scores over the pairs whose two words are known."""

    dataset: str
    spearman: float | None
    spearman_pvalue: float | None
    pearson: float | None
    pearson_pvalue: float | None
    seen: int
    total: int
    restrict_vocab: int
    case_insensitive: bool
    oov_pairs: tuple[tuple[str, str], ...] = field(repr=False, default=())
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # how the dataset file was read (a skipped header, commas)

    @property
    def oov(self) -> int:
        """Pairs skipped because a word is outside the restricted vocabulary."""
        return self.total - self.seen

    @property
    def coverage(self) -> float:
        return self.seen / self.total if self.total else 0.0

    @property
    def warnings(self) -> tuple[str, ...]:
        """What makes the correlation hard to trust or compare: low coverage, too few pairs."""
        out = [w for w in (coverage_warning("pairs", self.seen, self.total),) if w]
        if self.seen < MIN_PAIRS:
            out.append(f"only {self.seen} usable pair{'s' * (self.seen != 1)} (fewer than {MIN_PAIRS}): "
                       "a Spearman correlation on so few pairs is meaningless")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "spearman": self.spearman, "spearman_pvalue": self.spearman_pvalue,
            "pearson": self.pearson, "pearson_pvalue": self.pearson_pvalue,
            "seen": self.seen, "total": self.total, "oov": self.oov, "coverage": self.coverage,
            "settings": {"restrict_vocab": self.restrict_vocab, "case_insensitive": self.case_insensitive},
            "oov_pairs": [list(p) for p in self.oov_pairs],
            "warnings": list(self.warnings), "notes": list(self.notes),
            "seconds": round(self.seconds, 4),
        }

    def table(self) -> str:
        """Two lines for the terminal."""
        def num(x: float | None) -> str:
            return "-" if x is None else f"{x:.4f}"

        return (f"{self.dataset}: Spearman {num(self.spearman)} (p={num(self.spearman_pvalue)}), "
                f"Pearson {num(self.pearson)} (p={num(self.pearson_pvalue)})\n"
                f"coverage {self.seen}/{self.total} pairs ({100 * self.coverage:.1f}%), "
                f"{self.oov} skipped (out of vocabulary), restrict_vocab {self.restrict_vocab}, "
                f"case_insensitive={self.case_insensitive}"
                + "".join(f"\nWARNING: {w}" for w in self.warnings))


def _gensim_unitvec(vector: np.ndarray) -> np.ndarray:
    """gensim.matutils.unitvec for a float32 vector (float64 BLAS nrm2/scal, back to float32)."""
    length = dnrm2(vector)
    if length > 0.0:
        return dscal(1.0 / length, vector).astype(vector.dtype)
    return vector


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _as_pairs(pairs: WordPairDataset | Iterable[WordPair] | str | os.PathLike) -> WordPairDataset:
    if isinstance(pairs, WordPairDataset):
        return pairs
    if isinstance(pairs, (str, os.PathLike)):
        return read_word_pairs(pairs)
    items = tuple(pairs)
    for item in items:
        if not isinstance(item, WordPair):
            raise TypeError(f"pairs must be WordPair items, got {type(item).__name__}")
    return WordPairDataset("pairs", items)


def evaluate_word_pairs(
    emb: Embeddings,
    pairs: WordPairDataset | Iterable[WordPair] | str | os.PathLike,
    restrict_vocab: int = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
) -> SimilarityReport:
    """Spearman and Pearson correlation of model cosines with the pairs' human scores.

    Raises `ValueError` when the model has no vectors, `restrict_vocab` <= 0, or
    no pair has both words in the vocabulary. Correlations that are undefined
    (fewer than 2 pairs, constant scores) are None.
    """
    started = time.perf_counter()
    if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, (int, np.integer)) or restrict_vocab <= 0:
        raise ValueError(f"restrict_vocab must be a positive integer, got {restrict_vocab!r}")
    dataset = _as_pairs(pairs)
    if len(emb) == 0:
        raise ValueError("the model has no vectors")
    n = min(int(restrict_vocab), len(emb))
    lex = lexicon(emb, n, case_insensitive, (w for p in dataset.pairs for w in (p.word1, p.word2)))
    vectors = emb.vectors
    units: dict[int, np.ndarray] = {}
    gold: list[float] = []
    model: list[np.float32] = []
    oov: list[tuple[str, str]] = []
    for pair in dataset.pairs:
        ra, rb = lex.first.get(lex.key(pair.word1)), lex.first.get(lex.key(pair.word2))
        if ra is None or rb is None:
            oov.append((pair.word1, pair.word2))
            continue
        for row in (ra, rb):
            if row not in units:
                units[row] = _gensim_unitvec(vectors[row])
        gold.append(pair.score)
        model.append(np.dot(units[ra], units[rb]))  # float32, like KeyedVectors.similarity
    if not gold:
        raise ValueError(f"no pair of {dataset.name} has both words in the vocabulary "
                         f"(first {n} words, case_insensitive={case_insensitive})")
    from scipy import stats  # imported here: scipy.stats takes a while to import

    spearman = pearson = (float("nan"), float("nan"))
    if len(gold) >= 2:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # constant input: the correlation is undefined (NaN)
            spearman = tuple(stats.spearmanr(gold, model))
            pearson = tuple(stats.pearsonr(gold, model))
    return SimilarityReport(
        dataset=dataset.name,
        spearman=_finite(spearman[0]), spearman_pvalue=_finite(spearman[1]),
        pearson=_finite(pearson[0]), pearson_pvalue=_finite(pearson[1]),
        seen=len(gold), total=len(dataset.pairs), restrict_vocab=int(restrict_vocab),
        case_insensitive=case_insensitive, oov_pairs=tuple(oov),
        seconds=time.perf_counter() - started, notes=dataset.notes,
    )
