"""The trainer base: what every trainer shares.

* `Trainer`: the scikit-learn-style base class. `__init__` stores keyword
  hyper-parameters; `fit(corpus, *, checkpoint_dir=None, resume=False,
  progress=None) -> self` validates, trains and sets `embeddings_`;
  `save(models_dir, name, *, overwrite=False) -> Path` writes the model with its
  extra files through `store.save_model`.
* Parameter validators (`check_int`, `check_real`, `check_bool`, `check_choice`)
  raising `ValueError` naming the bad value.
* `Progress`: the one event type passed to `fit(..., progress=callback)`;
  nothing here prints, the CLI turns events into bars and lines.
* `Checkpoints`: the one checkpoint directory scheme, shared by word2vec and
  the Transformer (SVD keeps its count snapshots in the same directory)::

      MODELS/.checkpoints/NAME/      checkpoint_dir(models_dir, name)
          .lock                      flock held while a process trains NAME
          epoch-0007/                newest complete checkpoint (older ones pruned)
              state.json             written last: format, trainer, epochs_done, the
                                     trainer's resume state, sha256 + size of each file
              ...                    the trainer's files (word2vec: input.npy output.npy
                                     rng_keys.npy; Transformer: state.pt)
          .epoch-0008.tmp-<pid>/     a checkpoint being written (removed at the next start)
          counts/ partial/           SVD: finished and in-progress co-occurrence counts

  A checkpoint appears by one atomic rename after its files are fsynced, so a
  `kill -9` leaves only complete checkpoints visible; a corrupt one is skipped
  (with a note) in favour of an older one.
* `as_prepared`, `checkpoint_dir`, `words_sha256`, `cpu_count`, `peak_memory_mib`.
"""
from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import math
import numbers
import os
import re
import resource
import shutil
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence, TypeVar

from .atomic import fsync_dir, fsync_tree, sha256_file
from .corpus import PreparedCorpus, TokenizerConfig, input_key, prepare_corpus
from .distributed_corpus import prepare_corpus_on_cluster
from .datasets import SAMPLE_NAME, default_data_dir, sample_corpus_path
from .store import save_model
from .vectors import Embeddings, first_non_finite_row

CHECKPOINTS_DIR = ".checkpoints"
CHECKPOINT_FORMAT = 1
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
_EPOCH_DIR = re.compile(r"epoch-(\d{4,})")
T = TypeVar("T")


# -- corpus, locations, machine ------------------------------------------------------
def as_prepared(
    corpus: "PreparedCorpus | str | os.PathLike",
    data_dir: str | os.PathLike | None = None,
    progress: "bool | ProgressCallback" = False,
    cluster: Any = None,
) -> PreparedCorpus:
    """Accept a `PreparedCorpus`, a prepared directory, "sample", or a raw file/directory.

    Raw input is prepared once into `<data_dir>/prepared/<key>` and re-used after;
    `progress` is True for a progress bar, or a callback getting "prepare" events.
    With `cluster` (a `distributed.Client` or a spec) the tokenizing of raw input
    runs on that Dask cluster, with the same result; re-used input never touches it.
    """
    if isinstance(corpus, PreparedCorpus):
        return corpus
    data_dir = Path(data_dir or default_data_dir())
    if str(corpus) == SAMPLE_NAME:
        source = sample_corpus_path(data_dir)
    else:
        source = Path(corpus)
        if source.is_dir() and (source / "corpus.json").is_file():
            return PreparedCorpus.open(source)
        if not source.exists():
            raise FileNotFoundError(f"corpus not found: {source} (give a file, a directory, or 'sample')")
    key = input_key(source, TokenizerConfig())
    on_bytes: "bool | Callable[[int, int], None]" = bool(progress)
    if callable(progress):
        callback = progress

        def report(done: int, total: int) -> None:
            callback(Progress("prepare", done=done, total=total, unit="B"))

        on_bytes = report
    out_dir = data_dir / "prepared" / key[:16]
    if cluster is not None:
        return prepare_corpus_on_cluster(source, out_dir, TokenizerConfig(), cluster, progress=on_bytes)
    return prepare_corpus(source, out_dir, progress=on_bytes)


def checkpoint_dir(models_dir: str | os.PathLike, name: str) -> Path:
    """Where training checkpoints of model `name` live (outside any model version)."""
    return Path(models_dir) / CHECKPOINTS_DIR / name


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def words_sha256(words: Sequence[str]) -> str:
    """sha256 of a word list (one word per line): identifies a vocabulary and its order."""
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


# -- parameter checks ---------------------------------------------------------------
def _bounds(minimum: Any, maximum: Any, low_open: bool = False, high_open: bool = False) -> str:
    if maximum is None:
        return f"{'>' if low_open else '>='} {minimum}"
    if minimum is None:
        return f"{'<' if high_open else '<='} {maximum}"
    return f"in {'(' if low_open else '['}{minimum}, {maximum}{')' if high_open else ']'}"


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int, or `ValueError` "NAME must be ..., got VALUE" (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_bounds(minimum, maximum)}, got {value!r}")
    return int(value)


def check_real(name: str, value: object, minimum: float | None = None, maximum: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a finite float within the bounds (open with `low_open`/`high_open`), or `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (minimum is not None and (value <= minimum if low_open else value < minimum)) \
            or (maximum is not None and (value >= maximum if high_open else value > maximum)):
        raise ValueError(f"{name} must be {_bounds(minimum, maximum, low_open, high_open)}, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """`value` if it is True or False, else `ValueError`."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[Any]) -> Any:
    """`value` if it is one of `choices`, else `ValueError` listing them."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


# -- progress -------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """One progress event, passed to the `progress` callback of `fit`.

    `stage` is "start" (training begins; `epoch` = epochs already done), "note"
    (a `message` for the user: resumed, skipped a broken checkpoint, re-used
    counts...), "epoch" (an epoch ended: `loss`, `rate`, `seconds`, `metrics`),
    or the name of a long step ("count", "train", "pool") with `done` of
    `total` `unit`s so far.
    """

    stage: str
    message: str = ""
    epoch: int | None = None
    epochs: int | None = None
    done: int | None = None
    total: int | None = None
    unit: str = ""
    loss: float | None = None
    rate: float | None = None     # units per second
    seconds: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


def notify(progress: ProgressCallback | None, event: Progress) -> None:
    """Send `event` to `progress` if there is a callback."""
    if progress is not None:
        progress(event)


def resumed_message(method: str, path: Path, epochs_done: int, epochs: int) -> str:
    """The note every trainer sends when it continues from a checkpoint."""
    return f"resuming {method} from {path} (epoch {epochs_done}/{epochs} done)"


# -- checkpoints ----------------------------------------------------------------------
class UnfinishedRun(ValueError):
    """A checkpoint of an interrupted run is in the way of a fresh start."""


@dataclass
class Checkpoint:
    """A verified epoch checkpoint: its directory and state.json (files checked by sha256)."""

    path: Path
    state: dict[str, Any]

    @property
    def epochs_done(self) -> int:
        return int(self.state["epochs_done"])

    def file(self, rel: str) -> Path:
        return self.path / rel


class Checkpoints:
    """The checkpoint directory of one model name (layout in the module docstring)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    @contextmanager
    def lock(self) -> Iterator["Checkpoints"]:
        """Hold an exclusive flock while training (released even by kill -9); refuse a second trainer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_FILE, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"another process is training into {self.directory} "
                                 f"(its {LOCK_FILE} is held)") from None
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def epochs(self) -> list[tuple[int, Path]]:
        """Complete-looking epoch checkpoints, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _EPOCH_DIR.fullmatch(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry))
        return sorted(found, reverse=True)

    def leftovers(self) -> list[str]:
        """What an interrupted run left: epoch checkpoints and other entries (SVD counts), by name."""
        if not self.directory.is_dir():
            return []
        return sorted(e.name for e in self.directory.iterdir() if not e.name.startswith("."))

    def refuse_leftovers(self) -> None:
        """`UnfinishedRun` if an interrupted run left a checkpoint here (it is never deleted silently)."""
        left = self.leftovers()
        if left:
            raise UnfinishedRun(
                f"{self.directory} holds the checkpoint of an unfinished run ({', '.join(left)}); "
                "pass --resume to continue it (resume=True), or --restart to delete it and start over")

    def clear(self, keep: Path | None = None) -> None:
        """Remove epoch checkpoints and temp directories, except `keep` (other entries stay)."""
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            if entry == keep or not (_EPOCH_DIR.fullmatch(entry.name) or ".tmp-" in entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def discard(self) -> None:
        """Delete every checkpoint of this name (refused while another process trains it)."""
        if self.directory.exists():
            with self.lock():
                for entry in self.directory.iterdir():
                    if entry.name == LOCK_FILE:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the whole directory: the run finished and its model is saved."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def write(self, epochs_done: int, files: Mapping[str, bytes], state: Mapping[str, Any]) -> Path:
        """Write checkpoint `epoch-NNNN` atomically (temp dir, fsync, rename) and prune older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{epochs_done:04d}"
        tmp = self.directory / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            # The whole directory is renamed into place at the end, so its files need no atomic
            # writes of their own: write them plainly, hash the bytes in memory, fsync the tree once.
            sums = {}
            for rel, data in files.items():
                (tmp / rel).write_bytes(data)
                sums[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            doc = {"format": CHECKPOINT_FORMAT, **state, "epochs_done": int(epochs_done), "files": sums}
            if not isinstance(doc.get("trainer"), str):
                raise ValueError("a checkpoint state needs a 'trainer' name")
            (tmp / STATE_FILE).write_text(json.dumps(doc, indent=2), encoding="utf-8")
            fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
            fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for _epoch, path in self.epochs():
            if path != final:
                shutil.rmtree(path, ignore_errors=True)
        return final

    @staticmethod
    def read(path: Path, kind: str | None = None) -> Checkpoint:
        """Verify one epoch checkpoint (state.json, every file's size and sha256); `ValueError` if bad.

        `kind` is the trainer that must have written it (state["trainer"]): another
        trainer's checkpoint raises `UnfinishedRun`, so that it is never skipped and
        deleted as if it were broken."""
        try:
            state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path / STATE_FILE}: unreadable ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT \
                or not isinstance(state.get("files"), dict) or not isinstance(state.get("epochs_done"), int) \
                or not isinstance(state.get("trainer"), str):
            raise ValueError(f"{path / STATE_FILE}: not a checkpoint of format {CHECKPOINT_FORMAT}")
        if kind is not None and state["trainer"] != kind:
            raise UnfinishedRun(f"{path} is a checkpoint of the {state['trainer']} trainer, not {kind}; "
                                "pass --restart to delete it and start over")
        for rel, entry in state["files"].items():
            target = path / rel
            if not isinstance(entry, dict) or Path(rel).name != rel or not target.is_file() \
                    or target.stat().st_size != entry.get("bytes") \
                    or sha256_file(target) != entry.get("sha256"):
                raise ValueError(f"{target}: missing, truncated or corrupt (checksum mismatch)")
        return Checkpoint(path, state)

    def latest(self, load: Callable[[Checkpoint], T], notes: list[str],
               kind: str | None = None) -> tuple[Checkpoint, T] | None:
        """The newest checkpoint that verifies and `load(checkpoint)` result; broken ones
        (a `ValueError` from `read` or `load`) are noted in `notes` and skipped."""
        for _epoch, path in self.epochs():
            try:
                checkpoint = self.read(path, kind)
                return checkpoint, load(checkpoint)
            except UnfinishedRun:
                raise
            except ValueError as exc:
                notes.append(f"skipped broken checkpoint: {exc}")
        return None

    def start(self, resume: bool, load: Callable[[Checkpoint], T], notes: list[str],
              kind: str | None = None) -> tuple[Checkpoint, T] | None:
        """Begin a run (hold `lock()`): the checkpoint to continue from and what `load` made of it, or None.

        Without `resume`, an unfinished run's checkpoint raises `UnfinishedRun` (it
        is kept); with it, the newest valid checkpoint is loaded and every other
        epoch checkpoint removed (none valid: a note, and a start from scratch)."""
        if not resume:
            self.refuse_leftovers()
            self.clear()
            return None
        found = self.latest(load, notes, kind)
        if found is None:
            notes.append("no usable checkpoint: training from scratch")
        self.clear(keep=None if found is None else found[0].path)
        return found


def check_resumable(checkpoint: Checkpoint, corpus_sha256: str, params: Mapping[str, Any],
                    label: Callable[[str], str] = str) -> None:
    """Refuse (`ValueError`) to resume a checkpoint made on another corpus or with other parameters."""
    state = checkpoint.state
    if state.get("corpus_sha256") != corpus_sha256:
        raise ValueError(f"checkpoint {checkpoint.path} was trained on another corpus "
                         f"(sha256 {str(state.get('corpus_sha256'))[:12]}, this one {corpus_sha256[:12]}); "
                         "pass --restart instead of --resume to start over")
    theirs = state.get("params") if isinstance(state.get("params"), dict) else {}
    diffs = [f"{label(k)}={theirs.get(k)!r} in the checkpoint, {v!r} now" for k, v in params.items()
             if theirs.get(k) != v]
    if diffs:
        raise ValueError(f"cannot resume {checkpoint.path}: " + "; ".join(diffs))


class BackgroundWriter:
    """Writes epoch checkpoints in a thread, one at a time, so the fsyncs overlap the next epoch.

    `submit(epochs_done, make_files, state)` returns at once (`make_files()` runs in
    the thread: give it copies); a new submit first waits for the previous write, and
    `close` waits for the last one and re-raises any write error.
    """

    def __init__(self, checkpoints: Checkpoints) -> None:
        self.checkpoints = checkpoints
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, epochs_done: int, make_files: Callable[[], Mapping[str, bytes]],
               state: Mapping[str, Any]) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(epochs_done, make_files, dict(state)),
                                        name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _write(self, epochs_done: int, make_files: Callable[[], Mapping[str, bytes]],
               state: dict[str, Any]) -> None:
        try:
            self.checkpoints.write(epochs_done, make_files(), state)
        except BaseException as exc:  # re-raised in the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise OSError(f"writing a checkpoint into {self.checkpoints.directory} failed: {error}") from error

    def close(self) -> None:
        self.wait()


@contextmanager
def training_run(checkpoint_dir: str | os.PathLike | None) -> Iterator[Checkpoints | None]:
    """`Checkpoints` of `checkpoint_dir`, locked for the run (None without a directory)."""
    if checkpoint_dir is None:
        yield None
        return
    with Checkpoints(checkpoint_dir).lock() as checkpoints:
        yield checkpoints


# -- the base class -------------------------------------------------------------------
class Trainer:
    """Base of every trainer, scikit-learn style.

    Subclasses store their keyword hyper-parameters in `__init__` (nothing else),
    implement `check_params` and `fit`, set `embeddings_`, and may add extra
    model files through `_write_extra`.
    """

    #: The model family written as meta["method"].
    method: ClassVar[str] = ""
    #: CLI spelling of a hyper-parameter where it differs from `--name-with-dashes`.
    cli_flags: ClassVar[dict[str, str]] = {}
    #: Constructor arguments a subclass fixes (e.g. CBOW's sg=0): not accepted by `make_trainer`.
    fixed_params: ClassVar[tuple[str, ...]] = ()
    #: Whether `fit` takes `cluster=` (a spec or a `distributed.Client`) and spreads its work over it.
    distributed: ClassVar[bool] = False

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The keyword hyper-parameters `__init__` accepts."""
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in parameters):
                continue  # a thin subclass passing **params on: its parent lists them
            names = [p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_POSITIONAL]
            return tuple(n for n in names if n not in cls.fixed_params)
        return ()

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters (as stored in meta.json)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def label(self, name: str) -> str:
        """A parameter as error messages name it: `vector_size (--dim)`."""
        flag = self.cli_flags.get(name)
        return f"{name} ({flag})" if flag else name

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad hyper-parameter (cheap: no corpus read)."""

    def fit(self, corpus: Any, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            progress: ProgressCallback | None = None) -> "Trainer":
        """Train on `corpus`; checkpoint into `checkpoint_dir`; continue from it with `resume`."""
        raise NotImplementedError

    def _write_extra(self, directory: Path) -> None:
        """Write this trainer's extra model files (context vectors, counts, encoder) into `directory`."""

    def save(self, models_dir: str | os.PathLike, name: str, *, overwrite: bool = False) -> Path:
        """Save the fitted model as `name` (atomic, with its extra files); returns its path.

        An existing model `name` raises `store.ModelExists` unless `overwrite`."""
        emb: Embeddings | None = getattr(self, "embeddings_", None)
        if emb is None:
            raise ValueError(f"this {type(self).__name__} is not fitted (or pooled nothing): call fit first")
        # Every trainer's result is checked here (store.save_model checks again, for any caller).
        row = first_non_finite_row(emb.vectors)
        if row is not None:
            raise ValueError(f"{self.method} training produced vectors holding NaN or infinity (first: "
                             f"{emb.words[row]!r}, row {row}): it diverged or a hyper-parameter overflowed "
                             f"({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())}); nothing was saved")
        return save_model(models_dir, name, emb, self._write_extra, overwrite=overwrite)
