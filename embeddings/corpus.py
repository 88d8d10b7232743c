"""Corpus pipeline: read raw text, tokenize, count a vocabulary, write gensim's
`corpus_file` format (one sentence per line, tokens separated by one space).

Tokenizer rules (documented in the README, tested in tests/test_corpus.py):

* Text is NFC-normalized, then lowercased (`lowercase=False` keeps case).
* A word is a run of Unicode letters and digits; accented Latin letters stay
  inside words (``café``, ``naïve``).
* Hyphens and apostrophes *between* letters/digits stay inside the word
  (``state-of-the-art``, ``don't``; the typographic apostrophe ’ becomes ').
  Leading/trailing ones, and every other punctuation mark, separate tokens and
  are dropped.
* Digits: a number is one token; ``.`` or ``,`` between digits stays inside it
  (``3.14``, ``1,000``), so ``1990s`` and ``mp3`` are single tokens.
* Chinese, Japanese kana and Korean Hangul characters are one token each
  (``cjk_chars=True``), so unsegmented CJK text never becomes one giant token.
* Lines longer than `max_sentence_tokens` (10,000) are cut into chunks of that
  size, because gensim silently truncates longer sentences (gensim #2880).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from .atomic import atomic_write, atomic_write_json, sha256_file

MAX_SENTENCE_TOKENS = 10_000
CORPUS_FILE = "corpus.txt"
VOCAB_FILE = "vocab.txt"
INFO_FILE = "corpus.json"
PIPELINE_VERSION = 1

_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u3131-\u318e\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_LETTER = rf"[^\W_{_CJK}]"
_WORD = rf"\d+(?:[.,]\d+)+(?!\w)|{_LETTER}+(?:['\-]{_LETTER}+)*"
_TOKEN_RE = re.compile(rf"([{_CJK}])|({_WORD})")


@dataclass(frozen=True)
class TokenizerConfig:
    """Settings that change what tokens a text yields (part of the corpus key)."""

    lowercase: bool = True
    cjk_chars: bool = True
    max_sentence_tokens: int = MAX_SENTENCE_TOKENS


def tokenize(text: str, lowercase: bool = True, cjk_chars: bool = True) -> list[str]:
    """Split `text` into tokens by the rules in this module's docstring."""
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'")
    if lowercase:
        text = text.lower()
    if cjk_chars:
        return [m.group(0) for m in _TOKEN_RE.finditer(text)]
    # Without CJK splitting, a CJK run is a word like any other.
    return re.findall(r"\d+(?:[.,]\d+)+(?!\w)|[^\W_]+(?:['\-][^\W_]+)*", text)


def sentences_from_line(
    line: str, config: TokenizerConfig = TokenizerConfig()
) -> Iterator[list[str]]:
    """Tokens of one document line, cut into chunks of at most `max_sentence_tokens`."""
    tokens = tokenize(line, config.lowercase, config.cjk_chars)
    step = config.max_sentence_tokens
    for start in range(0, len(tokens), step):
        yield tokens[start : start + step]


def encoded_sentences(
    line: str, config: TokenizerConfig = TokenizerConfig()
) -> Iterator[tuple[list[str], bytes]]:
    """The non-empty sentences of a line with their `corpus.txt` bytes (tokens, space, newline)."""
    for sentence in sentences_from_line(line, config):
        if sentence:
            yield sentence, (" ".join(sentence) + "\n").encode("utf-8")


def input_files(path: str | os.PathLike) -> list[Path]:
    """The files of a corpus: `path` itself, or every non-hidden file below a directory, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise ValueError(f"corpus directory {path} contains no files")
        return files
    raise FileNotFoundError(f"corpus not found: {path}")


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a UTF-8 text file, decompressing `.gz` / `.bz2` by extension.

    Undecodable bytes become U+FFFD rather than aborting a long job."""
    path = Path(path)
    if path.suffix == ".gz":
        raw: IO[bytes] = gzip.open(path, "rb")
    elif path.suffix == ".bz2":
        raw = bz2.open(path, "rb")
    else:
        raw = open(path, "rb")
    return text_stream(raw)


def text_stream(raw: IO[bytes]) -> IO[str]:
    """Decode a byte stream as UTF-8 text (bad bytes -> U+FFFD, universal newlines)."""
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)


def iter_lines(path: str | os.PathLike) -> Iterator[str]:
    """Stream the document lines of a file or directory of files."""
    for file in input_files(path):
        with open_text(file) as handle:
            for line in handle:
                yield line


def iter_sentences(
    path: str | os.PathLike, config: TokenizerConfig = TokenizerConfig()
) -> Iterator[list[str]]:
    """Stream tokenized, chunked sentences of a raw corpus (empty lines skipped)."""
    for line in iter_lines(path):
        for sentence in sentences_from_line(line, config):
            if sentence:
                yield sentence


# -- vocabulary ---------------------------------------------------------------
@dataclass
class Vocabulary:
    """Words sorted by descending count, ties broken by the word itself (deterministic)."""

    words: list[str]
    counts: list[int]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def from_counter(
        cls, counter: Counter, min_count: int = 1, max_vocab: int | None = None
    ) -> "Vocabulary":
        """Apply `min_count` and `max_vocab` to raw counts; raise if nothing survives."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_vocab is not None and max_vocab < 1:
            raise ValueError(f"max_vocab must be >= 1, got {max_vocab}")
        if not counter:
            raise ValueError("the corpus is empty: it contains no tokens")
        items = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
        if not items:
            top = max(counter.values())
            raise ValueError(
                f"min_count={min_count} removes every word (the most frequent word occurs {top} times)"
            )
        if max_vocab is not None:
            items = items[:max_vocab]
        return cls([w for w, _ in items], [c for _, c in items])

    def trimmed(self, min_count: int = 1, max_vocab: int | None = None) -> "Vocabulary":
        """A smaller vocabulary with a higher `min_count` / a `max_vocab` cap."""
        return Vocabulary.from_counter(Counter(dict(zip(self.words, self.counts))), min_count, max_vocab)

    def save(self, path: str | os.PathLike) -> None:
        """Write "word<TAB>count" lines atomically."""
        text = "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts))
        atomic_write(path, lambda h: h.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocab.txt written by `save`."""
        words, counts = [], []
        with open(path, encoding="utf-8", newline="\n") as handle:
            for lineno, line in enumerate(handle, 1):
                word, sep, count = line.rstrip("\n").rpartition("\t")
                if not sep or not count.isdigit():
                    raise ValueError(f"{path}:{lineno}: expected 'word<TAB>count'")
                words.append(word)
                counts.append(int(count))
        return cls(words, counts)


def build_vocabulary(
    sentences: Iterable[list[str]], min_count: int = 1, max_vocab: int | None = None
) -> Vocabulary:
    """Count tokens over `sentences` and build a `Vocabulary`."""
    counter: Counter = Counter()
    for sentence in sentences:
        counter.update(sentence)
    return Vocabulary.from_counter(counter, min_count, max_vocab)


# -- prepared corpora -----------------------------------------------------------
@dataclass(frozen=True)
class PreparedCorpus:
    """A normalized corpus on disk: `corpus.txt` (gensim corpus_file format) + `vocab.txt`."""

    directory: Path
    sha256: str          # hash of corpus.txt: identifies the training data in model meta
    input_key: str       # hash of the raw input + tokenizer settings: decides re-use
    n_sentences: int
    n_tokens: int
    n_types: int

    @property
    def path(self) -> Path:
        return self.directory / CORPUS_FILE

    @property
    def vocab_path(self) -> Path:
        return self.directory / VOCAB_FILE

    def vocabulary(self, min_count: int = 1, max_vocab: int | None = None) -> Vocabulary:
        """The corpus vocabulary with `min_count` / `max_vocab` applied."""
        vocab = Vocabulary.load(self.vocab_path)
        if min_count == 1 and max_vocab is None:
            return vocab
        return vocab.trimmed(min_count, max_vocab)

    def sentences(self) -> Iterator[list[str]]:
        """Stream the normalized sentences (already tokenized)."""
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield line.split()

    @classmethod
    def open(cls, directory: str | os.PathLike) -> "PreparedCorpus":
        """Open a directory written by `prepare_corpus`."""
        directory = Path(directory)
        try:
            info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
            return cls(directory, info["sha256"], info["input_key"], info["n_sentences"],
                       info["n_tokens"], info["n_types"])
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise ValueError(f"{directory} is not a prepared corpus ({exc})") from None


def input_key(path: str | os.PathLike, config: TokenizerConfig) -> str:
    """Hash of the raw input bytes (file names and contents) and tokenizer settings."""
    digest = hashlib.sha256(json.dumps([PIPELINE_VERSION, asdict(config)]).encode())
    root = Path(path)
    for file in input_files(root):
        rel = file.name if root.is_file() else file.relative_to(root).as_posix()
        digest.update(rel.encode("utf-8") + b"\0" + sha256_file(file).encode() + b"\0")
    return digest.hexdigest()


def prepare_corpus(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TokenizerConfig = TokenizerConfig(),
    progress: "bool | Callable[[int, int], None]" = False,
) -> PreparedCorpus:
    """Tokenize `source` into `out_dir` (corpus.txt, vocab.txt, corpus.json).

    Streams: memory holds one line and the vocabulary counts. If `out_dir`
    already holds the result for the same input bytes and settings, the work is
    skipped. Raises `ValueError` for an empty corpus. `progress` is True for a
    progress bar, or a callback `progress(bytes_done, bytes_total)`.
    """
    out_dir = Path(out_dir)
    key = input_key(source, config)
    existing = reusable_prepared(out_dir, key)
    if existing is not None:
        return existing
    out_dir.mkdir(parents=True, exist_ok=True)
    files = input_files(source)
    total_bytes = sum(f.stat().st_size for f in files)
    counter: Counter = Counter()
    n_sentences = 0
    digest = hashlib.sha256()

    def write(handle: IO[bytes]) -> None:
        nonlocal n_sentences
        from tqdm import tqdm

        done = 0

        def advance(n: int) -> None:
            nonlocal done
            bar.update(n)
            done += n
            if callable(progress):
                progress(done, total_bytes)

        with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare corpus",
                  disable=progress is not True, leave=False) as bar:
            for file in files:
                with open_text(file) as text:
                    raw = text.buffer
                    last = 0
                    for line in text:
                        for sentence, data in encoded_sentences(line, config):
                            counter.update(sentence)
                            digest.update(data)
                            handle.write(data)
                            n_sentences += 1
                        pos = _raw_position(raw)
                        if pos is not None and pos - last > 1 << 20:
                            advance(pos - last)
                            last = pos
                    pos = _raw_position(raw)
                    advance(max(0, (file.stat().st_size if pos is None else pos) - last))

    atomic_write(out_dir / CORPUS_FILE, write)
    return finish_prepared(source, out_dir, config, key, counter, n_sentences, digest.hexdigest())


def reusable_prepared(out_dir: str | os.PathLike, key: str) -> PreparedCorpus | None:
    """The corpus already prepared in `out_dir` from the same input (`key`) and intact, else None."""
    try:
        existing = PreparedCorpus.open(out_dir)
    except ValueError:
        return None
    if existing.input_key == key and existing.path.is_file() and sha256_file(existing.path) == existing.sha256:
        return existing
    return None


def finish_prepared(
    source: str | os.PathLike, out_dir: Path, config: TokenizerConfig, key: str,
    counter: Counter, n_sentences: int, sha256: str,
) -> PreparedCorpus:
    """Write vocab.txt and corpus.json next to a finished corpus.txt (hash `sha256`).

    Shared by the serial and the cluster preparation, so both write the same bytes."""
    if not counter:
        raise ValueError(f"the corpus {source} is empty: it contains no tokens")
    vocab = Vocabulary.from_counter(counter)
    vocab.save(out_dir / VOCAB_FILE)
    prepared = PreparedCorpus(out_dir, sha256, key, n_sentences, vocab.total, len(vocab))
    info = {k: v for k, v in asdict(prepared).items() if k != "directory"}
    info.update(source=str(source), tokenizer=asdict(config), pipeline_version=PIPELINE_VERSION)
    atomic_write_json(out_dir / INFO_FILE, info)
    return prepared


def _raw_position(raw: IO[bytes]) -> int | None:
    """Bytes consumed from the compressed/plain file so far (for the progress bar)."""
    inner = getattr(raw, "fileobj", None) or getattr(raw, "_fp", None) or raw
    try:
        return inner.tell()
    except (OSError, ValueError, AttributeError):
        return None
