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
Adding a file to a model (`add_model_file`, e.g. `index.faiss`) is a save too: a
new version made of hard links to the old files plus the new one.

The models directory is the boundary: a model link must resolve to a directory
directly inside it (a link elsewhere is refused, never followed), and
`clean_stale` removes only what a save of this program leaves behind (its own
version, temp-directory, temp-link and temp-file names, owned by this user, a
temp directory only once the process named in it is gone), never following a link.

Everything read is validated before use: meta.json against `META_SCHEMA`
(bounded integers, a checksum table of relative paths), vocab counts as bounded
integers, the vectors as a non-empty float32 matrix of finite values. A bad
model raises `ModelError` naming the file.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping

import jsonschema_rs
import numpy as np

from .atomic import atomic_write_json, fsync_dir, fsync_tree, sha256_file
from .vectors import Embeddings, first_non_finite_row

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.txt"
META_FILE = "meta.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODELS_ENV = "WORDSPACE_MODELS"

#: Bounds of what a model may declare: beyond them a meta.json is refused, not trusted.
MAX_DIM = 100_000
MAX_VOCAB = 2**31 - 1
MAX_FILE_BYTES = 2**53
MAX_META_BYTES = 16 << 20
MAX_META_DEPTH = 64  # JSON nesting in meta.json (ours is 4 deep); deeper ones are refused

# The names a save of this program gives its leftovers (`clean_stale` removes nothing else).
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
VERSION_PATTERN = re.compile(rf"\.{_NAME}@(?:\d{{8}}T\d{{6}}|legacy)-[0-9a-f]{{8}}")
_TEMP_DIR_PATTERN = re.compile(rf"(?P<version>{VERSION_PATTERN.pattern})\.(?P<pid>\d{{1,10}})\.tmp")
_TEMP_LINK_PATTERN = re.compile(rf"\.{_NAME}\.link-[0-9a-f]{{8}}")
_TEMP_FILE_PATTERN = re.compile(r"\.[^/]+\.[a-z0-9_]{8}\.tmp")  # atomic_write's mkstemp names

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: What the store relies on in meta.json; the trainers' own keys are free-form.
META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["files", "vocab_size", "dim"],
    "properties": {
        "format_version": {"type": "integer", "minimum": 1, "maximum": FORMAT_VERSION},
        "vocab_size": {"type": "integer", "minimum": 1, "maximum": MAX_VOCAB},
        "dim": {"type": "integer", "minimum": 1, "maximum": MAX_DIM},
        "has_counts": {"type": "boolean"},
        "method": {"type": ["string", "null"]},
        "created": {"type": ["string", "null"]},
        "files": {
            "type": "object",
            "maxProperties": 100_000,
            "propertyNames": {"type": "string", "minLength": 1, "maxLength": 1024},
            "additionalProperties": {
                "type": "object",
                "required": ["sha256", "bytes"],
                "properties": {"sha256": _SHA256,
                               "bytes": {"type": "integer", "minimum": 0, "maximum": MAX_FILE_BYTES},
                               # index.faiss: the sha256 of the vectors.npy it was built from
                               "vectors_sha256": _SHA256},
            },
        },
    },
}
_META_VALIDATOR = jsonschema_rs.validator_for(META_SCHEMA)


class ModelNotFound(KeyError):
    """No model of that name in the models directory."""

    def __str__(self) -> str:  # KeyError's str() would add quotes around the message
        return str(self.args[0]) if self.args else "model not found"


class ModelExists(ValueError):
    """Saving would replace an existing model and the caller did not ask to overwrite it."""


class ModelError(ValueError):
    """A model on disk is missing, corrupt or inconsistent; the message names the file."""


class ModelReplaced(ModelError):
    """The model was saved again while a file for its previous version was being made:
    the file is dropped (it belongs to vectors that are no longer the model's)."""


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


def model_names(models_dir: str | os.PathLike) -> list[str]:
    """The names of the model entries (links or directories) in `models_dir`, sorted,
    found without following any link (a broken entry is reported when it is loaded)."""
    models_dir = Path(models_dir)
    try:
        entries = list(os.scandir(models_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = []
    for entry in entries:
        if entry.name.startswith(".") or not NAME_PATTERN.fullmatch(entry.name) or ".." in entry.name:
            continue
        try:
            if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
        except OSError:
            continue
    return sorted(names)


def resolve_model(models_dir: str | os.PathLike, name: str) -> Path:
    """The directory model `name` is now: its link resolved, or the plain directory.

    `ModelNotFound` when there is no such entry; `ModelError` when it is a link that
    leaves the models directory (refused, never followed further), a dangling link, or
    not a directory."""
    path = model_path(models_dir, name)
    if not os.path.lexists(path):
        raise ModelNotFound(f"no model named {name!r} in {models_dir}")
    root = os.path.realpath(models_dir)
    target = os.readlink(path) if path.is_symlink() else None
    try:
        resolved = os.path.realpath(path)
    except OSError as exc:  # e.g. a link into /proc that may not be read
        raise ModelError(f"{path}: a link to {target} that cannot be followed ({exc.strerror or exc}); "
                         "refused (a model must be a directory inside the models directory)") from None
    if os.path.dirname(resolved) != root:
        raise ModelError(f"{path}: a link to {target or resolved}, outside the models directory {root}; "
                         "refused (a model must be a directory inside the models directory)")
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        raise ModelError(f"{path}: a dangling link to {os.readlink(path)}") from None
    except OSError as exc:
        raise ModelError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(mode):
        raise ModelError(f"{path}: not a model directory")
    return Path(resolved)


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


def check_savable(emb: Embeddings, name: str) -> None:
    """`ValueError` unless `emb` may become a model: at least one word, every value finite,
    a dimension the store accepts."""
    if len(emb) == 0:
        raise ValueError(f"cannot save model {name!r}: it has no words (an empty model); nothing was saved")
    if emb.dim > MAX_DIM:
        raise ValueError(f"cannot save model {name!r}: {emb.dim} dimensions, at most {MAX_DIM}")
    row = first_non_finite_row(emb.vectors)
    if row is not None:
        raise ValueError(f"cannot save model {name!r}: the vector of {emb.words[row]!r} (row {row}) holds NaN "
                         "or infinity; nothing was saved")


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


def _new_version(name: str) -> str:
    return f".{name}@{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


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
    `overwrite=False` an existing model `name` raises `ModelExists` instead. An
    empty model, or one holding NaN or infinity, raises `ValueError` (nothing saved).
    """
    validate_name(name)
    check_savable(emb, name)
    models_dir = Path(models_dir)
    if not overwrite:
        check_new_name(models_dir, name)
    models_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(models_dir)
    version = _new_version(name)
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
    if os.path.lexists(path):
        raise ModelExists(f"a model named {name!r} already exists in {models_dir}; choose another "
                          "--name or pass --overwrite (overwrite=True in Python) to replace it")


def _point_at(models_dir: Path, name: str, version: str) -> None:
    """Make symlink `name` point at `version` with one atomic rename."""
    link = models_dir / name
    if not link.is_symlink() and link.is_dir():
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
    except (OverflowError, ValueError):
        return False
    return True


def _owned(entry: os.DirEntry, uid: int, kind: int) -> bool:
    """`entry` itself (never a link's target) is of `kind` (stat.S_IFDIR / S_IFREG / S_IFLNK)
    and owned by `uid`."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == uid


def _live_versions(models_dir: Path, entries: list[os.DirEntry]) -> set[str]:
    """Names of the directories inside `models_dir` that some model entry resolves to."""
    root = os.path.realpath(models_dir)
    live = set()
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_symlink():
            continue  # temp links (".NAME.link-*") left by a kill are leftovers, not models
        try:
            resolved = os.path.realpath(entry.path)
        except OSError:
            continue
        if os.path.dirname(resolved) == root:
            live.add(os.path.basename(resolved))
    return live


def clean_stale(models_dir: str | os.PathLike) -> list[Path]:
    """Remove leftovers of interrupted saves: temp directories of dead processes,
    versions no model link points at, temp links, and temp files inside live versions.

    Only entries with this program's own names (`VERSION_PATTERN` and its temp forms),
    owned by this user, directly in `models_dir` or in a live version inside it; links
    are removed as links, never followed. Returns what was removed."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    removed: list[Path] = []
    uid = os.geteuid()
    with models_lock(models_dir):
        entries = list(os.scandir(models_dir))
        live = _live_versions(models_dir, entries)
        for entry in entries:
            name = entry.name
            if not name.startswith(".") or name in live:
                continue
            if _TEMP_LINK_PATTERN.fullmatch(name) and _owned(entry, uid, stat.S_IFLNK):
                os.unlink(entry.path)
            elif VERSION_PATTERN.fullmatch(name) and _owned(entry, uid, stat.S_IFDIR):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif (temp := _TEMP_DIR_PATTERN.fullmatch(name)) and _owned(entry, uid, stat.S_IFDIR) \
                    and not _pid_alive(int(temp["pid"])):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                continue
            removed.append(Path(entry.path))
        for entry in entries:  # temp files of an interrupted update_meta (writers hold the lock)
            if entry.name in live and _owned(entry, uid, stat.S_IFDIR):
                try:
                    inner_entries = list(os.scandir(entry.path))
                except OSError:
                    continue
                for inner in inner_entries:
                    if _TEMP_FILE_PATTERN.fullmatch(inner.name) and _owned(inner, uid, stat.S_IFREG):
                        os.unlink(inner.path)
                        removed.append(Path(inner.path))
    return removed


# -- reading ------------------------------------------------------------------
def _null_constant(_name: str) -> None:
    return None  # NaN / Infinity in a meta.json read as null: no response may carry them


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_rel(rel: str) -> str:
    """`rel` if it names a file inside a model directory (relative, no '..', no hidden
    parts, no backslash or NUL), else `ValueError`."""
    parts = PurePosixPath(rel).parts
    if (not parts or rel.startswith("/") or "\\" in rel or "\x00" in rel or rel.endswith("/")
            or any(part in (".", "..") or part.startswith(".") for part in parts)
            or "//" in rel):
        raise ValueError(f"{rel!r} is not a file name inside a model directory")
    return rel


def check_meta(meta: Any, where: str | os.PathLike) -> dict[str, Any]:
    """`meta` if it is a meta.json the store can trust (`META_SCHEMA`, nesting, file
    names), else `ModelError` naming `where` and the first problem."""
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: must be a JSON object, got {type(meta).__name__}")
    if _too_deep(meta, MAX_META_DEPTH):
        raise ModelError(f"{where}: nested more than {MAX_META_DEPTH} levels deep")
    for error in _META_VALIDATOR.iter_errors(meta):
        at = "/".join(str(part) for part in error.instance_path) or "the top level"
        raise ModelError(f"{where}: at {at}: {error.message[:200]}")
    for rel in meta["files"]:
        try:
            check_rel(rel)
        except ValueError as exc:
            raise ModelError(f"{where}: files: {exc}") from None
    return meta


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed and validated meta.json of the model directory `path`."""
    meta_path = Path(path) / META_FILE
    try:
        size = meta_path.stat().st_size
        if size > MAX_META_BYTES:
            raise ModelError(f"{meta_path}: {size} bytes, more than a meta.json may have ({MAX_META_BYTES})")
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: missing") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{meta_path}: not UTF-8 ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{meta_path}: unreadable ({exc.strerror or exc})") from None
    try:
        meta = json.loads(text, parse_constant=_null_constant)
    except RecursionError:
        raise ModelError(f"{meta_path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise ModelError(f"{meta_path}: not valid JSON ({exc})") from None
    return check_meta(meta, meta_path)


def _inside(target: Path, directory: Path) -> bool:
    return os.path.realpath(target).startswith(os.path.realpath(directory) + os.sep)


def verify_file(path: str | os.PathLike, rel: str, meta: dict[str, Any] | None = None) -> Path:
    """Check one file of a model directory against meta.json; return its path."""
    path = Path(path)
    meta = read_meta(path) if meta is None else meta
    entry = meta["files"].get(rel)
    target = path / rel
    if entry is None:
        raise ModelError(f"{target}: not listed in {META_FILE}")
    if not _inside(target, path):
        raise ModelError(f"{target}: a link out of the model directory; refused")
    try:
        if not target.is_file():
            raise ModelError(f"{target}: missing")
        size = target.stat().st_size
        if size != entry["bytes"]:
            raise ModelError(f"{target}: size {size} bytes, {META_FILE} says {entry['bytes']} (truncated?)")
        if sha256_file(target) != entry["sha256"]:
            raise ModelError(f"{target}: checksum mismatch (file corrupted or modified)")
    except OSError as exc:
        raise ModelError(f"{target}: unreadable ({exc.strerror or exc})") from None
    return target


_COUNT = re.compile(r"[0-9]{1,18}")


def read_vocab(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse vocab.txt ("word<TAB>count" lines, counts in [0, 10^18)) into words and counts."""
    words: list[str] = []
    counts: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: unreadable ({exc.strerror or exc})") from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        word, sep, count = line.rpartition("\t")
        if not sep or not _COUNT.fullmatch(count):
            raise ModelError(f"{path}:{lineno}: expected 'word<TAB>count' with a count of 1 to 18 digits, "
                             f"got {line[:60]!r}")
        words.append(word)
        counts.append(int(count))
    return words, np.asarray(counts, dtype=np.int64)


def _load_vectors(vectors_path: Path, mmap: bool) -> np.ndarray:
    """vectors.npy, memory-mapped first: numpy then checks the header's shape against the
    file's size, so a lying header never makes it allocate; copied in when not `mmap`."""
    try:
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
        return vectors if mmap else np.array(vectors)
    except FileNotFoundError:
        raise ModelError(f"{vectors_path}: missing") from None
    except (ValueError, OSError, EOFError) as exc:
        raise ModelError(f"{vectors_path}: unreadable .npy ({exc})") from None


def load_model_dir(
    path: str | os.PathLike, *, verify: bool = True, mmap: bool = True, skip: tuple[str, ...] = ()
) -> Embeddings:
    """Load and validate a model directory; raise `ModelError` naming the bad file.

    `skip` names files not to checksum here (e.g. an index about to be rebuilt)."""
    path = Path(path)
    try:
        if not path.is_dir():
            raise ModelError(f"{path}: no such model directory")
    except OSError as exc:
        raise ModelError(f"{path}: unreadable ({exc.strerror or exc})") from None
    meta = read_meta(path)
    if verify:
        for rel in meta["files"]:
            if rel not in skip:
                verify_file(path, rel, meta)
    vectors_path = path / VECTORS_FILE
    if not _inside(vectors_path, path):
        raise ModelError(f"{vectors_path}: a link out of the model directory; refused")
    vectors = _load_vectors(vectors_path, mmap)
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise ModelError(f"{vectors_path}: expected a float32 matrix, got {vectors.dtype} {vectors.shape}")
    expected = (meta["vocab_size"], meta["dim"])
    if tuple(vectors.shape) != expected:
        raise ModelError(f"{vectors_path}: shape {vectors.shape}, {META_FILE} says {expected}")
    words, counts = read_vocab(path / VOCAB_FILE)
    if len(words) != vectors.shape[0]:
        raise ModelError(
            f"{path / VOCAB_FILE}: vocab/vector count mismatch ({len(words)} words, {vectors.shape[0]} vectors)"
        )
    row = first_non_finite_row(vectors)
    if row is not None:
        raise ModelError(f"{vectors_path}: the vector of {words[row]!r} (row {row}) holds NaN or infinity")
    user_meta = {k: v for k, v in meta.items() if k != "files"}
    try:
        return Embeddings(words, vectors, counts if meta.get("has_counts", True) else None, user_meta)
    except ValueError as exc:
        raise ModelError(f"{path / VOCAB_FILE}: {exc}") from None


def load_model(
    models_dir: str | os.PathLike, name: str, *, verify: bool = True, mmap: bool = True,
    skip: tuple[str, ...] = (),
) -> Embeddings:
    """Load model `name` from a models directory (`KeyError` if it does not exist;
    `ModelError` naming the model and the bad file if it is broken)."""
    # Resolve the link once so every file comes from the same version even if a save swaps it now.
    # A save may swap the link and clean the old version while we read it: retry on the new one.
    for attempt in range(3):
        resolved = resolve_model(models_dir, name)
        try:
            return load_model_dir(resolved, verify=verify, mmap=mmap, skip=skip)
        except ModelError as exc:
            if attempt == 2 or resolve_model(models_dir, name) == resolved:
                raise ModelError(f"model {name!r}: {exc}") from None
    raise AssertionError("unreachable")


def _link_tree(source: Path, target: Path, skip: set[str]) -> None:
    """Hard-link every regular, non-hidden file of `source` into `target` (copies where
    the filesystem has no hard links), except the relative paths in `skip`. Model files
    are never modified in place, so old and new versions can share them."""
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink()]
        (target / rel_dir).mkdir(exist_ok=True)
        for filename in filenames:
            rel = (rel_dir / filename).as_posix()
            src = here / filename
            if filename.startswith(".") or rel in skip or src.is_symlink() or not src.is_file():
                continue
            try:
                os.link(src, target / rel)
            except OSError:
                shutil.copy2(src, target / rel)


def add_model_file(
    models_dir: str | os.PathLike, name: str, rel: str, write: Callable[[Any], None], *,
    version: str | os.PathLike | None = None, record: Mapping[str, Any] | None = None,
) -> Path:
    """Add or replace file `rel` of model `name` atomically, like a save: a new version
    of hard links to the current files, `rel` written by `write(handle)` and meta.json
    recording its checksum (plus `record`, e.g. what it was built from), then one link
    swap. A kill at any moment leaves the old pair or the new pair, never a mix.

    `version`: the resolved directory `rel` was made from; if the model is no longer
    that directory (saved again meanwhile, or changed while `rel` was written),
    `ModelReplaced` is raised and nothing changes. Returns the new file's path."""
    check_rel(rel)
    models_dir = Path(models_dir)
    current = resolve_model(models_dir, name)
    if version is not None and Path(os.path.realpath(version)) != current:
        raise ModelReplaced(f"model {name!r} was replaced after {rel} was made from {version}; not recorded")
    new_version = _new_version(name)
    tmp = models_dir / f"{new_version}.{os.getpid()}.tmp"
    tmp.mkdir()
    try:
        _link_tree(current, tmp, {rel, META_FILE})
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            write(handle)
        entry = {**dict(record or {}), "sha256": sha256_file(target), "bytes": target.stat().st_size}
        with models_lock(models_dir):
            if resolve_model(models_dir, name) != current:
                raise ModelReplaced(f"model {name!r} was saved again while {rel} was written; not recorded")
            meta = read_meta(current)  # under the lock: includes any update_meta since
            meta["files"][rel] = entry
            atomic_write_json(tmp / META_FILE, meta)
            fsync_tree(tmp)
            os.rename(tmp, models_dir / new_version)
            _point_at(models_dir, name, new_version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return models_dir / new_version / rel


def update_meta(models_dir: str | os.PathLike, name: str, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge `updates` into model `name`'s meta.json atomically; return the new meta."""
    models_dir = Path(models_dir)
    with models_lock(models_dir):
        path = resolve_model(models_dir, name)
        meta = read_meta(path)
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(meta.get(key), dict):
                meta[key] = {**meta[key], **value}
            else:
                meta[key] = value
        check_meta(meta, path / META_FILE)
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
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):  # links to directories are not followed
        for filename in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, filename)).st_size
            except OSError:
                pass
    return total


def list_models(models_dir: str | os.PathLike) -> list[ModelInfo]:
    """Every model in `models_dir`, sorted by name; unreadable ones (broken, a link out of
    the models directory, a permission error) carry `error` and never stop the listing."""
    models_dir = Path(models_dir)
    infos = []
    for name in model_names(models_dir):
        entry = models_dir / name
        path = None
        try:
            path = resolve_model(models_dir, name)
            meta = read_meta(path)
            for rel, info in meta["files"].items():  # presence and size only: no hashing here
                target = path / rel
                if not _inside(target, path):
                    raise ModelError(f"{target}: a link out of the model directory; refused")
                if not target.is_file():
                    raise ModelError(f"{target}: missing")
                if target.stat().st_size != info["bytes"]:
                    raise ModelError(f"{target}: size {target.stat().st_size} bytes, {META_FILE} says "
                                     f"{info['bytes']} (truncated?)")
            infos.append(ModelInfo(name, entry, meta.get("method"), meta.get("vocab_size"),
                                   meta.get("dim"), _tree_size(path), meta.get("created")))
        except (ModelError, OSError) as exc:
            message = str(exc) if isinstance(exc, ModelError) else f"{entry}: {exc.strerror or exc}"
            infos.append(ModelInfo(name, entry, None, None, None, _tree_size(path) if path else 0, None, message))
    return infos
