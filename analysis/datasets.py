"""Readers for the evaluation files: Google analogies and word-pair similarity lists.

Readers only parse; the evaluators in `analysis.analogy` and
`analysis.similarity` take what they return. A malformed line is an error that
names the file and line number (gensim skips such lines silently; on the files
it ships, which have none, both read the same questions).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from embeddings.datasets import BENCHMARKS, benchmark_path

#: Sections whose name starts with this are syntactic (word2vec's questions-words.txt convention).
SYNTACTIC_PREFIX = "gram"
#: A score measured on less than this share of a dataset is flagged: it is the score of another
#: (usually easier, more frequent) subset, not comparable with a model that covers more.
LOW_COVERAGE = 0.5
#: With fewer usable word pairs than this a rank correlation means nothing.
MIN_PAIRS = 10


def coverage_warning(items: str, seen: int, total: int) -> str | None:
    """The low-coverage warning for `seen` of `total` items (questions, pairs), or None."""
    if total and seen / total < LOW_COVERAGE:
        return (f"low coverage: only {seen}/{total} {items} ({100 * seen / total:.1f}%) have all their words "
                f"in the vocabulary, under {100 * LOW_COVERAGE:.0f}%: the score is not comparable with models "
                f"that cover more (compare them on their common {items} instead)")
    return None


def section_kind(section: str) -> str:
    """'syntactic' for the gram* sections of the Google set, 'semantic' for the others."""
    return "syntactic" if section.startswith(SYNTACTIC_PREFIX) else "semantic"


@dataclass(frozen=True, slots=True)
class Analogy:
    """One question "a is to b as c is to expected", from `line` of its file."""

    section: str
    a: str
    b: str
    c: str
    expected: str
    line: int


@dataclass(frozen=True)
class AnalogyDataset:
    """The questions of an analogy file, with its section names in file order."""

    name: str
    sections: tuple[str, ...]
    questions: tuple[Analogy, ...]

    def __len__(self) -> int:
        return len(self.questions)


@dataclass(frozen=True, slots=True)
class WordPair:
    """A human similarity judgement `score` for (word1, word2), from `line` of its file."""

    word1: str
    word2: str
    score: float
    line: int


@dataclass(frozen=True)
class WordPairDataset:
    """The pairs of a word-similarity file, and `notes` on how it was read (a skipped header...)."""

    name: str
    pairs: tuple[WordPair, ...]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.pairs)


def _dataset_name(spec: str | os.PathLike, path: Path) -> str:
    """The short name (google, ws353, ...) when one was given, else the file path."""
    return str(spec).lower() if str(spec).lower() in BENCHMARKS else str(path)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def read_analogies(path: str | os.PathLike) -> AnalogyDataset:
    """Parse a file in the Google analogy format (`: section` headers, 4 words a line).

    `path` may be a short name (google) or a file. Blank lines are ignored; a
    question before any header, a line without exactly 4 words, or an empty
    section name raise `ValueError` naming the line.
    """
    resolved = benchmark_path(path)
    sections: list[str] = []
    questions: list[Analogy] = []
    section: str | None = None
    for lineno, line in enumerate(_read_lines(resolved), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(":"):
            section = stripped[1:].strip()
            if not section:
                raise ValueError(f"{resolved}:{lineno}: empty section name")
            if section not in sections:
                sections.append(section)
            continue
        if section is None:
            raise ValueError(f"{resolved}:{lineno}: question before the first ': section' header")
        words = stripped.split()
        if len(words) != 4:
            raise ValueError(
                f"{resolved}:{lineno}: expected 4 words 'a b c expected', got {len(words)}: {stripped[:80]!r}"
            )
        questions.append(Analogy(section, *words, line=lineno))
    if not questions:
        raise ValueError(f"{resolved}: no analogy questions found")
    return AnalogyDataset(_dataset_name(path, resolved), tuple(sections), tuple(questions))


def _pair_fields(line: str) -> tuple[list[str], str]:
    """The fields of a word-pair line and the separator used: tab, else comma, else spaces."""
    if "\t" in line:
        return [f.strip() for f in line.split("\t")], "tab"
    if "," in line:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            return fields, "comma"
    return line.split(), "space"


def read_word_pairs(path: str | os.PathLike) -> WordPairDataset:
    """Parse a word-similarity file: `word1<TAB>word2<TAB>score` lines, `#` comments.

    `path` may be a short name (ws353, simlex999) or a file. Lines without a tab
    may separate the three fields by commas (the original WordSim353 CSV) or
    spaces. A first line whose score is not a number is taken for a header
    (`Word 1,Word 2,Human (mean)`) and skipped; both are said in `notes`. Any
    other line that is not two words and a finite number raises `ValueError`
    naming the line.
    """
    resolved = benchmark_path(path)
    pairs: list[WordPair] = []
    notes: list[str] = []
    separators: set[str] = set()
    first = True
    for lineno, line in enumerate(_read_lines(resolved), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields, separator = _pair_fields(line)
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise ValueError(
                f"{resolved}:{lineno}: expected 'word1<TAB>word2<TAB>score', got {line[:80]!r}"
            )
        try:
            score = float(fields[2])
        except ValueError:
            if first:
                notes.append(f"{resolved}:{lineno}: read as a header line and skipped: {line.strip()[:80]!r}")
                first = False
                continue
            raise ValueError(f"{resolved}:{lineno}: score {fields[2][:40]!r} is not a number") from None
        first = False
        if not math.isfinite(score):
            raise ValueError(f"{resolved}:{lineno}: score {fields[2][:40]!r} is not finite")
        separators.add(separator)
        pairs.append(WordPair(fields[0], fields[1], score, lineno))
    if not pairs:
        raise ValueError(f"{resolved}: no word pairs found")
    if "comma" in separators:
        notes.append(f"{resolved}: fields separated by commas (read as 'word1,word2,score')")
    return WordPairDataset(_dataset_name(path, resolved), tuple(pairs), tuple(notes))
