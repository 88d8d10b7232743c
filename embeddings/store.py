"""Models on disk: one directory per model, written atomically, verified on load.

Layout of a model directory::

    vectors.npy   float32 (n x d), loadable memory-mapped, never pickled
    vocab.txt     "word<TAB>count" per line, row order
    meta.json     method, hyper-parameters, shapes, and a sha256 per file
    ...           optional extra files (index.faiss, cooccurrence.npz, encoder/)

The models directory holds, for a model called NAME, a symlink NAME pointing at
a hidden version directory `.NAME@<id>`. A save writes a new version directory
next to it, fsyncs it, and swaps the symlink with one atomic rename, so a
`kill -9` at any moment leaves a loader seeing the old model or the new one.
Unreferenced version and temp directories are removed by `clean_stale`.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .atomic import atomic_write, atomic_write_json, fsync_dir, fsync_tree, sha256_file
from .vectors import Embeddings

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.txt"
META_FILE = "meta.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODELS_ENV = "WORDSPACE_MODELS"


class ModelNotFound(KeyError):
    """No model of that name in the models directory."""

    def __str__(self) -> str:  # KeyError's str() would add quotes around the message
        return str(self.args[0]) if self.args else "model not found"


class ModelExists(ValueError):
    """Saving would replace an existing model and the caller did not ask to overwrite it."""


class ModelError(ValueError):
    """A model on disk is missing, corrupt or inconsistent; the message names the file."""


def default_models_dir() -> Path:
    """`$WORDSPACE_MODELS`, or ./models."""
    return Path(os.environ.get(MODELS_ENV) or "models")


def validate_name(name: object) -> str:
    """Return `name` if it is a safe model name, else raise `ValueError`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (no path separators, no '..')"
        )
    return name


def model_path(models_dir: str | os.PathLike, name: str) -> Path:
    """The path loaders use for model `name` (a symlink to its current version)."""
    return Path(models_dir) / validate_name(name)


# -- writing ------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers, for meta.json."""
    import importlib.metadata as md

    versions = {}
    for dist in ("wordspace", "numpy", "gensim", "scikit-learn", "faiss-cpu", "torch"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return versions


def write_model_dir(
    directory: Path, emb: Embeddings, write_extra: Callable[[Path], None] | None = None
) -> dict[str, Any]:
    """Write `emb` (and extra files) into an existing empty directory; return its meta."""
    with open(directory / VECTORS_FILE, "wb") as handle:
        np.save(handle, np.ascontiguousarray(emb.vectors, dtype=np.float32), allow_pickle=False)
    counts = emb.counts if emb.counts is not None else np.zeros(len(emb), dtype=np.int64)
    with open(directory / VOCAB_FILE, "w", encoding="utf-8", newline="\n") as handle:
        for word, count in zip(emb.words, counts.tolist()):
            handle.write(f"{word}\t{count}\n")
    if write_extra is not None:
        write_extra(directory)
    meta = dict(emb.meta)
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("libraries", library_versions())
    meta.update(
        format_version=FORMAT_VERSION,
        vocab_size=len(emb),
        dim=emb.dim,
        has_counts=emb.counts is not None,
        files=_checksums(directory),
    )
    atomic_write_json(directory / META_FILE, meta)
    return meta


def _checksums(directory: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != META_FILE and not path.name.startswith("."):
            rel = path.relative_to(directory).as_posix()
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return files


@contextmanager
def models_lock(models_dir: Path) -> Iterator[None]:
    """Serialize writers of a models directory (link swaps, cleaning, meta updates)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_model(
    models_dir: str | os.PathLike,
    name: str,
    emb: Embeddings,
    write_extra: Callable[[Path], None] | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Atomically save `emb` as model `name`; returns the model's path.

    `write_extra(tmpdir)` may add files (they get checksums too). On any error
    the previous version of the model stays in place, untouched. With
    `overwrite=False` an existing model `name` raises `ModelExists` instead.
    """
    validate_name(name)
    models_dir = Path(models_dir)
    if not overwrite:
        check_new_name(models_dir, name)
    models_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(models_dir)
    version = f".{name}@{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = models_dir / f"{version}.{os.getpid()}.tmp"
    tmp.mkdir()
    try:
        write_model_dir(tmp, emb, write_extra)
        fsync_tree(tmp)
        with models_lock(models_dir):
            if not overwrite:
                check_new_name(models_dir, name)  # again, under the lock: a concurrent save may have won
            os.rename(tmp, models_dir / version)
            _point_at(models_dir, name, version)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = exc.strerror or str(exc)
        hint = "" if exc.errno else " (is the disk full?)"
        raise OSError(exc.errno, f"cannot save model {name!r} in {models_dir}: {detail}{hint}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clean_stale(models_dir)
    return models_dir / name


def check_new_name(models_dir: str | os.PathLike, name: str) -> None:
    """`ModelExists` if model `name` exists in `models_dir` (checked before any long training)."""
    path = model_path(models_dir, name)
    if path.exists() or path.is_symlink():
        raise ModelExists(f"a model named {name!r} already exists in {models_dir}; choose another "
                          "--name or pass --overwrite (overwrite=True in Python) to replace it")


def _point_at(models_dir: Path, name: str, version: str) -> None:
    """Make symlink `name` point at `version` with one atomic rename."""
    link = models_dir / name
    if link.exists() and not link.is_symlink():
        # A plain directory from elsewhere: move it aside into a version slot first.
        legacy = f".{name}@legacy-{uuid.uuid4().hex[:8]}"
        os.rename(link, models_dir / legacy)
    tmp_link = models_dir / f".{name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(version, tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(models_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(models_dir: str | os.PathLike) -> list[Path]:
    """Remove leftovers of interrupted saves: temp directories of dead processes
    and versions no model link points at. Returns what was removed."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    removed = []
    with models_lock(models_dir):
        # Only model links count: a temp link (".NAME.link-*") left by a kill is itself a leftover.
        live = {os.readlink(e) for e in models_dir.iterdir() if e.is_symlink() and not e.name.startswith(".")}
        for version in live:  # temp files of an interrupted add_model_file/update_meta (writers hold the lock)
            directory = models_dir / version
            if directory.is_dir():
                for stray in directory.glob(".*.tmp"):
                    stray.unlink(missing_ok=True)
                    removed.append(stray)
        for entry in models_dir.iterdir():
            if not entry.name.startswith(".") or entry.name in live:
                continue
            if entry.name.endswith(".tmp"):
                pid = entry.name.rsplit(".", 2)[-2]
                if pid.isdigit() and _pid_alive(int(pid)):
                    continue
            elif "@" not in entry.name and ".link-" not in entry.name:
                continue
            if entry.is_symlink() or entry.is_file():
                entry.unlink(missing_ok=True)
            else:
                shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# -- reading ------------------------------------------------------------------
def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed meta.json of the model directory `path`."""
    meta_path = Path(path) / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: missing") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{meta_path}: not UTF-8 ({exc})") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        raise ModelError(f"{meta_path}: no 'files' checksum table")
    return meta


def verify_file(path: str | os.PathLike, rel: str, meta: dict[str, Any] | None = None) -> Path:
    """Check one file of a model directory against meta.json; return its path."""
    path = Path(path)
    meta = read_meta(path) if meta is None else meta
    entry = meta["files"].get(rel)
    target = path / rel
    if entry is None:
        raise ModelError(f"{target}: not listed in {META_FILE}")
    if not target.is_file():
        raise ModelError(f"{target}: missing")
    size = target.stat().st_size
    if size != entry.get("bytes"):
        raise ModelError(f"{target}: size {size} bytes, {META_FILE} says {entry.get('bytes')} (truncated?)")
    if sha256_file(target) != entry.get("sha256"):
        raise ModelError(f"{target}: checksum mismatch (file corrupted or modified)")
    return target


def read_vocab(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse vocab.txt ("word<TAB>count" lines) into words and counts."""
    words: list[str] = []
    counts: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 ({exc})") from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        word, sep, count = line.rpartition("\t")
        if not sep or not count.isdigit():
            raise ModelError(f"{path}:{lineno}: expected 'word<TAB>count', got {line[:60]!r}")
        words.append(word)
        counts.append(int(count))
    return words, np.asarray(counts, dtype=np.int64)


def load_model_dir(
    path: str | os.PathLike, *, verify: bool = True, mmap: bool = True, skip: tuple[str, ...] = ()
) -> Embeddings:
    """Load and validate a model directory; raise `ModelError` naming the bad file.

    `skip` names files not to checksum here (e.g. an index about to be rebuilt)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no such model directory")
    meta = read_meta(path)
    if verify:
        for rel in meta["files"]:
            if rel not in skip:
                verify_file(path, rel, meta)
    vectors_path = path / VECTORS_FILE
    try:
        vectors = np.load(vectors_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise ModelError(f"{vectors_path}: missing") from None
    except (ValueError, OSError, EOFError) as exc:
        raise ModelError(f"{vectors_path}: unreadable .npy ({exc})") from None
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise ModelError(f"{vectors_path}: expected a float32 matrix, got {vectors.dtype} {vectors.shape}")
    expected = (meta.get("vocab_size"), meta.get("dim"))
    if tuple(vectors.shape) != expected:
        raise ModelError(f"{vectors_path}: shape {vectors.shape}, {META_FILE} says {expected}")
    words, counts = read_vocab(path / VOCAB_FILE)
    if len(words) != vectors.shape[0]:
        raise ModelError(
            f"{path / VOCAB_FILE}: vocab/vector count mismatch ({len(words)} words, {vectors.shape[0]} vectors)"
        )
    user_meta = {k: v for k, v in meta.items() if k != "files"}
    try:
        return Embeddings(words, vectors, counts if meta.get("has_counts", True) else None, user_meta)
    except ValueError as exc:
        raise ModelError(f"{path / VOCAB_FILE}: {exc}") from None


def load_model(
    models_dir: str | os.PathLike, name: str, *, verify: bool = True, mmap: bool = True,
    skip: tuple[str, ...] = (),
) -> Embeddings:
    """Load model `name` from a models directory (`KeyError` if it does not exist)."""
    path = model_path(models_dir, name)
    if not path.exists():
        raise ModelNotFound(f"no model named {name!r} in {models_dir}")
    # Resolve the link once so every file comes from the same version even if a save swaps it now.
    # A save may swap the link and clean the old version while we read it: retry on the new one.
    for _attempt in range(3):
        resolved = path.resolve()
        try:
            return load_model_dir(resolved, verify=verify, mmap=mmap, skip=skip)
        except ModelError:
            if path.resolve() == resolved:
                raise
    return load_model_dir(path.resolve(), verify=verify, mmap=mmap, skip=skip)


def add_model_file(
    models_dir: str | os.PathLike, name: str, rel: str, write: Callable[[Any], None]
) -> Path:
    """Atomically add or replace file `rel` in model `name` and record its checksum.

    Used for artefacts built after the model (e.g. `index.faiss`): the file is
    renamed into place first, then meta.json is replaced; a crash in between
    leaves an unlisted file, which loaders ignore.
    """
    models_dir = Path(models_dir)
    path = model_path(models_dir, name).resolve()
    with models_lock(models_dir):
        target = path / rel
        atomic_write(target, write)
        meta = read_meta(path)
        meta["files"][rel] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
        atomic_write_json(path / META_FILE, meta)
    return target


def update_meta(models_dir: str | os.PathLike, name: str, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge `updates` into model `name`'s meta.json atomically; return the new meta."""
    models_dir = Path(models_dir)
    path = model_path(models_dir, name).resolve()
    with models_lock(models_dir):
        meta = read_meta(path)
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(meta.get(key), dict):
                meta[key] = {**meta[key], **value}
            else:
                meta[key] = value
        atomic_write_json(path / META_FILE, meta)
    return meta


@dataclass(frozen=True)
class ModelInfo:
    """One row of `wordspace models`: what a model is, or why it failed to read."""

    name: str
    path: Path
    method: str | None
    vocab_size: int | None
    dim: int | None
    size_bytes: int
    created: str | None
    error: str | None = None


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_models(models_dir: str | os.PathLike) -> list[ModelInfo]:
    """Every model in `models_dir`, sorted by name; unreadable ones carry `error`."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    infos = []
    for entry in sorted(models_dir.iterdir()):
        if entry.name.startswith(".") or not NAME_PATTERN.fullmatch(entry.name) or not entry.is_dir():
            continue
        try:
            meta = read_meta(entry)
            for rel, info in meta["files"].items():  # presence and size only: no hashing here
                target = entry / rel
                if not target.is_file():
                    raise ModelError(f"{target}: missing")
                if isinstance(info, dict) and target.stat().st_size != info.get("bytes"):
                    raise ModelError(f"{target}: size {target.stat().st_size} bytes, {META_FILE} says "
                                     f"{info.get('bytes')} (truncated?)")
            infos.append(ModelInfo(entry.name, entry, meta.get("method"), meta.get("vocab_size"),
                                   meta.get("dim"), _tree_size(entry.resolve()), meta.get("created")))
        except ModelError as exc:
            infos.append(ModelInfo(entry.name, entry, None, None, None, _tree_size(entry.resolve()),
                                   None, str(exc)))
    return infos
