"""word2vec: CBOW and skip-gram with negative sampling (Mikolov et al. 2013).

The engine is gensim's compiled `corpus_file` path (no Python iterator, scales
with cores); this module only validates, drives it one epoch at a time, and
checkpoints at every epoch end.

Why epoch by epoch: gensim's `train()` can only start at epoch 0, and passing
`start_alpha`/`end_alpha` for the remaining epochs reproduces the learning-rate
schedule only up to float32 rounding. Calling gensim's own per-epoch routine
(`_train_epoch_corpusfile(cur_epoch=e)`) with the original `alpha`,
`min_alpha` and `epochs` keeps gensim's schedule bit for bit, so with
`workers=1`:

* a fit equals `gensim.models.Word2Vec(corpus_file=...)` called directly, and
* a run resumed from an epoch-end checkpoint equals an uninterrupted run,

because an epoch is a pure function of (input vectors W, output vectors W',
the `model.random` MT19937 state that seeds the epoch's C-level RNG, epoch
number); all four are in the checkpoint. With `workers > 1` the threads race
on the shared matrices (Hogwild), so no two runs are bit-identical anyway.

Seeding: gensim 4 initialises W with `np.random.default_rng(seed)` and never
calls `hashfxn` for Word2Vec, so `PYTHONHASHSEED` does not matter; we still
pass a deterministic `hashfxn` so that no gensim version can make it matter.

Checkpoint layout (`embeddings.training.checkpoint_dir(models_dir, name)`)::

    .lock                      flock held while a process trains this name
    epoch-0007/                newest complete checkpoint (older ones pruned); the
                               last epoch is not checkpointed, it goes into the model
        input.npy              W  = syn0 (wv.vectors), float32 (vocab x dim)
        output.npy             W' = syn1neg, float32 (vocab x dim)
        rng_keys.npy           uint32[624], MT19937 key of model.random
        state.json             written last: params, corpus sha256, vocab sha256,
                               epochs_done, per-epoch losses/seconds/words,
                               RNG position, sha256 + size of each .npy
    .epoch-0008.tmp-<pid>/     a checkpoint being written (removed at next start)

A checkpoint directory appears by one atomic rename after its files are
fsynced, so a `kill -9` leaves only complete checkpoints visible.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import json
import math
import numbers
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .atomic import fsync_dir, fsync_tree, sha256_file
from .corpus import PreparedCorpus
from .vectors import Embeddings

METHODS = {0: "cbow", 1: "skipgram"}
CONTEXT_FILE = "context.npy"
CHECKPOINT_FORMAT = 1
_EPOCH_DIR = re.compile(r"epoch-(\d{4,})")
#: Hyper-parameters that must match for a checkpoint to be resumed (workers may change).
RESUME_KEYS = ("sg", "vector_size", "window", "negative", "ns_exponent", "sample", "min_count",
               "epochs", "alpha", "min_alpha", "seed")
#: CLI spelling of each hyper-parameter, used in error messages.
CLI_FLAGS = {"vector_size": "--dim", "ns_exponent": "--ns-exponent", "min_count": "--min-count",
             "window": "--window", "negative": "--negative", "sample": "--sample", "epochs": "--epochs",
             "alpha": "--alpha", "min_alpha": "--min-alpha", "seed": "--seed", "workers": "--workers"}


def stable_hash(text: str) -> int:
    """A hash of `text` that is the same in every process (unlike `hash`, see PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch reports to the progress callback."""

    epoch: int            # 1-based number of the epoch just finished
    epochs: int           # total epochs of the run
    loss: float           # this epoch's share of gensim's running loss (see `Word2VecTrainer`)
    previous_loss: float | None
    raw_words: int        # corpus words read in the epoch
    effective_words: int  # words trained on (after min_count and subsampling)
    seconds: float

    @property
    def words_per_second(self) -> float:
        return self.raw_words / self.seconds if self.seconds > 0 else float("inf")

    @property
    def loss_change(self) -> float | None:
        """Relative change of the epoch loss versus the previous epoch (e.g. -0.03)."""
        if self.previous_loss in (None, 0):
            return None
        return (self.loss - self.previous_loss) / self.previous_loss


@dataclass
class _Checkpoint:
    """A loaded checkpoint: the arrays and state.json of one `epoch-NNNN` directory."""

    path: Path
    state: dict[str, Any]
    syn0: np.ndarray
    syn1neg: np.ndarray
    rng_keys: np.ndarray


@dataclass
class ResumeInfo:
    """How `fit` started: from scratch, or from which checkpoint (and what was skipped)."""

    resumed_from_epoch: int | None = None
    notes: list[str] = field(default_factory=list)


# -- validation -------------------------------------------------------------------
def _flag(name: str) -> str:
    return f"{name} ({CLI_FLAGS[name]})" if name in CLI_FLAGS else name


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{_flag(name)} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{_flag(name)} must be {bound}, got {value!r}")


def _check_real(name: str, value: object, minimum: float | None = None, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{_flag(name)} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{_flag(name)} must be {'>' if strict else '>='} {minimum}, got {value!r}")


# -- the estimator ----------------------------------------------------------------
class Word2VecTrainer:
    """word2vec with negative sampling (`hs=0`) on gensim's corpus_file engine.

    `sg=0` is CBOW (context vectors averaged, `cbow_mean=1`), `sg=1` skip-gram.
    Defaults are the original word2vec's, except `alpha=0.025` for both
    architectures (word2vec.c uses 0.05 for CBOW; gensim uses 0.025 for both,
    and 0.025 meets the quality bar on the sample corpus); pass `alpha=0.05`
    for the C tool's CBOW setting. `workers=None` uses every core.

    After `fit`, `embeddings_` holds W (input vectors, rows most frequent
    first) and `context_vectors_` holds W' (syn1neg) when `keep_context`.

    Loss: the per-epoch loss is the sum of gensim's per-thread running losses
    over that epoch (not gensim's cumulative total; see `_loss_summing_word2vec`
    for why gensim alone reports only one thread's share with `workers > 1`).
    """

    def __init__(
        self,
        sg: int = 1,
        vector_size: int = 100,
        window: int = 5,
        negative: int = 5,
        ns_exponent: float = 0.75,
        sample: float = 1e-3,
        min_count: int = 5,
        epochs: int = 5,
        alpha: float = 0.025,
        min_alpha: float = 1e-4,
        seed: int = 1,
        workers: int | None = None,
        keep_context: bool = False,
    ) -> None:
        self.sg = sg
        self.vector_size = vector_size
        self.window = window
        self.negative = negative
        self.ns_exponent = ns_exponent
        self.sample = sample
        self.min_count = min_count
        self.epochs = epochs
        self.alpha = alpha
        self.min_alpha = min_alpha
        self.seed = seed
        self.workers = workers
        self.keep_context = keep_context

    @property
    def method(self) -> str:
        """"cbow" or "skipgram"."""
        return METHODS[int(self.sg)]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters as stored in meta.json and checkpoints."""
        return {
            "sg": int(self.sg), "hs": 0, "cbow_mean": 1,
            "vector_size": int(self.vector_size), "window": int(self.window),
            "negative": int(self.negative), "ns_exponent": float(self.ns_exponent),
            "sample": float(self.sample), "min_count": int(self.min_count), "epochs": int(self.epochs),
            "alpha": float(self.alpha), "min_alpha": float(self.min_alpha), "seed": int(self.seed),
            "workers": self._workers(),
        }

    def _workers(self) -> int:
        from .training import cpu_count

        return int(self.workers) if self.workers is not None else cpu_count()

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad hyper-parameter (cheap; no corpus needed)."""
        if isinstance(self.sg, bool):
            self.sg = int(self.sg)
        if self.sg not in (0, 1):
            raise ValueError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {self.sg!r}")
        _check_int("vector_size", self.vector_size, 1)
        _check_int("window", self.window, 1)
        # hs=0 here, so negative=0 would train nothing at all (gensim refuses it too).
        if isinstance(self.negative, numbers.Integral) and not isinstance(self.negative, bool) \
                and self.negative == 0:
            raise ValueError("negative (--negative) must be >= 1, got 0: with negative sampling as the "
                             "only objective (hs=0), 0 noise words would train nothing")
        _check_int("negative", self.negative, 1)
        _check_real("ns_exponent", self.ns_exponent)
        _check_real("sample", self.sample, 0.0)
        _check_int("min_count", self.min_count, 1)
        _check_int("epochs", self.epochs, 1)
        _check_real("alpha", self.alpha, 0.0, strict=True)
        _check_real("min_alpha", self.min_alpha, 0.0)
        if self.min_alpha > self.alpha:
            raise ValueError(f"{_flag('min_alpha')} must be <= alpha ({self.alpha}), got {self.min_alpha!r}")
        _check_int("seed", self.seed, 0, 2**32 - 1)
        if self.workers is not None:
            _check_int("workers", self.workers, 1, 512)
        if not isinstance(self.keep_context, bool):
            raise ValueError(f"keep_context must be True or False, got {self.keep_context!r}")

    def check_corpus(self, corpus: PreparedCorpus) -> int:
        """Raise `ValueError` if `corpus` cannot train this model; return the tokens kept by min_count."""
        if corpus.n_tokens <= 0:
            raise ValueError(f"the corpus {corpus.directory} is empty: it contains no tokens")
        counts = corpus.vocabulary().counts
        kept = sum(c for c in counts if c >= self.min_count)
        if kept == 0:
            raise ValueError(f"min_count={self.min_count} removes every word "
                             f"(the most frequent word occurs {max(counts, default=0)} times)")
        if kept <= self.window:
            raise ValueError(
                f"the corpus is shorter than the window: {kept} tokens survive min_count={self.min_count}, "
                f"need more than window={self.window}"
            )
        return kept

    # -- fitting ----------------------------------------------------------------
    def fit(
        self,
        corpus: "PreparedCorpus | str | os.PathLike",
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        on_epoch: Callable[[EpochReport], None] | None = None,
        on_start: Callable[["Word2VecTrainer"], None] | None = None,
    ) -> "Word2VecTrainer":
        """Train on `corpus` (a PreparedCorpus, a prepared directory, a raw file or "sample").

        With `checkpoint_dir`, a checkpoint is written at every epoch end; with
        `resume`, training continues from the newest valid checkpoint there
        (from scratch if there is none). `on_start(self)` runs once the start
        epoch is known (`resume_info_`), `on_epoch(report)` after every epoch.
        """
        from .training import as_prepared

        self.check_params()
        prepared = as_prepared(corpus)
        self.check_corpus(prepared)
        params = self.get_params()
        model = self._new_model(prepared)
        vocab_sha = _vocab_sha256(model.wv.index_to_key)

        self.resume_info_ = info = ResumeInfo()
        state: dict[str, Any] = {"epoch_losses": [], "epoch_seconds": [], "epoch_words": [],
                                 "epoch_effective_words": []}
        with _checkpoint_lock(checkpoint_dir):
            if checkpoint_dir is not None:
                checkpoint = None
                if resume:
                    checkpoint = _latest_checkpoint(Path(checkpoint_dir), info.notes)
                    if checkpoint is None:
                        info.notes.append("no usable checkpoint: training from scratch")
                if checkpoint is not None:
                    _check_resumable(checkpoint, params, prepared.sha256, vocab_sha, len(model.wv))
                    model.wv.vectors[...] = checkpoint.syn0
                    model.syn1neg[...] = checkpoint.syn1neg
                    rng = checkpoint.state["rng"]
                    model.random.set_state(("MT19937", checkpoint.rng_keys, rng["pos"], rng["has_gauss"],
                                            rng["cached_gaussian"]))
                    state = {k: list(checkpoint.state[k]) for k in state}
                    info.resumed_from_epoch = checkpoint.state["epochs_done"]
                    _clear_checkpoints(Path(checkpoint_dir), keep=checkpoint.path.name)
                else:
                    _clear_checkpoints(Path(checkpoint_dir))
            if on_start is not None:
                on_start(self)
            self._train(model, prepared, params, vocab_sha, state, checkpoint_dir, on_epoch)

        self._finish(model, prepared, params, state, info)
        return self

    def _new_model(self, prepared: PreparedCorpus):
        """A gensim Word2Vec with our hyper-parameters and the corpus vocabulary built."""
        Word2Vec = _loss_summing_word2vec()
        if not hasattr(Word2Vec, "_train_epoch_corpusfile"):  # pragma: no cover - gensim API guard
            raise RuntimeError("this gensim version lacks Word2Vec._train_epoch_corpusfile (needs gensim >= 3.6, < 5)")
        model = Word2Vec(
            sg=int(self.sg), hs=0, negative=int(self.negative), cbow_mean=1,
            vector_size=int(self.vector_size), window=int(self.window), ns_exponent=float(self.ns_exponent),
            sample=float(self.sample), min_count=int(self.min_count), epochs=int(self.epochs),
            alpha=float(self.alpha), min_alpha=float(self.min_alpha), seed=int(self.seed),
            workers=self._workers(), hashfxn=stable_hash, compute_loss=True,
        )
        model.build_vocab(corpus_file=str(prepared.path))
        return model

    def _train(self, model, prepared: PreparedCorpus, params: dict[str, Any], vocab_sha: str,
               state: dict[str, Any], checkpoint_dir: str | os.PathLike | None,
               on_epoch: Callable[[EpochReport], None] | None) -> None:
        """Run the remaining epochs through gensim's per-epoch corpus_file routine."""
        start = len(state["epoch_losses"])
        if start >= self.epochs:
            return
        # What gensim's train() sets up before its epoch loop (same values as a single train() call).
        model.epochs = int(self.epochs)
        model.alpha, model.min_alpha = float(self.alpha), float(self.min_alpha)
        model.compute_loss = True
        model._check_training_sanity(epochs=model.epochs, total_examples=model.corpus_count,
                                     total_words=model.corpus_total_words)
        writer = _CheckpointWriter(Path(checkpoint_dir)) if checkpoint_dir is not None else None
        try:
            for epoch in range(start, model.epochs):
                model.epoch_loss = 0.0
                began = time.perf_counter()
                effective, raw, _jobs = model._train_epoch_corpusfile(
                    str(prepared.path), cur_epoch=epoch, total_examples=model.corpus_count,
                    total_words=model.corpus_total_words)
                seconds = time.perf_counter() - began
                loss = float(model.epoch_loss)
                previous = state["epoch_losses"][-1] if state["epoch_losses"] else None
                state["epoch_losses"].append(loss)
                state["epoch_seconds"].append(seconds)
                state["epoch_words"].append(int(raw))
                state["epoch_effective_words"].append(int(effective))
                # The last epoch goes straight into the (atomic) model save instead: a kill during that
                # save resumes from epoch N-1 and recomputes the same last epoch.
                if writer is not None and epoch + 1 < model.epochs:
                    writer.submit(model, params, prepared.sha256, vocab_sha, state)
                if on_epoch is not None:
                    on_epoch(EpochReport(epoch + 1, model.epochs, loss, previous, int(raw), int(effective), seconds))
        finally:
            if writer is not None:
                writer.close()
        model._clear_post_train()

    def _finish(self, model, prepared: PreparedCorpus, params: dict[str, Any], state: dict[str, Any],
                info: ResumeInfo) -> None:
        """Turn the gensim model into `embeddings_` (and `context_vectors_`)."""
        words = list(model.wv.index_to_key)
        counts = np.asarray(model.wv.expandos["count"], dtype=np.int64)
        seconds = float(sum(state["epoch_seconds"]))
        words_trained = int(sum(state["epoch_words"]))
        meta: dict[str, Any] = {
            "method": self.method,
            "trainer": "gensim.models.Word2Vec (corpus_file mode, negative sampling)",
            "params": params,
            "corpus": {"sha256": prepared.sha256, "n_tokens": prepared.n_tokens,
                       "n_sentences": prepared.n_sentences, "n_types": prepared.n_types},
            "corpus_sha256": prepared.sha256,
            "epoch_losses": state["epoch_losses"],
            "loss_note": "per epoch: sum over worker threads of gensim's running loss (negative "
                         "log-likelihood of the positive and noise pairs, float32 sums)",
            "epoch_seconds": state["epoch_seconds"],
            "epoch_words": state["epoch_words"],
            "epoch_effective_words": state["epoch_effective_words"],
            "training_seconds": seconds,
            "words_per_second": words_trained / seconds if seconds > 0 else None,
            "resumed_from_epoch": info.resumed_from_epoch,
            "keep_context": bool(self.keep_context),
        }
        if self.keep_context:
            meta["context_file"] = CONTEXT_FILE
        self.embeddings_ = Embeddings(words, model.wv.vectors, counts, meta)
        self.context_vectors_ = np.array(model.syn1neg, dtype=np.float32) if self.keep_context else None
        self.vocab_size_ = len(words)


_LOSS_LOCK = threading.Lock()


@functools.cache
def _loss_summing_word2vec():
    """gensim's Word2Vec, except that the worker threads' losses add up.

    In corpus_file mode each worker thread starts its float32 loss sum from
    `model.running_training_loss` and assigns its own total back at its end,
    so gensim keeps only the last thread's share (gensim #2920, #3228). Here
    reading the attribute gives 0.0 (each thread starts from zero) and
    assigning adds into `epoch_loss`, so `epoch_loss` is the whole epoch's
    loss for any number of workers. Training itself is untouched.
    """
    from gensim.models import Word2Vec

    class LossSummingWord2Vec(Word2Vec):
        epoch_loss = 0.0

        @property
        def running_training_loss(self) -> float:
            return 0.0

        @running_training_loss.setter
        def running_training_loss(self, value: float) -> None:
            with _LOSS_LOCK:
                self.epoch_loss = self.epoch_loss + float(value)

    return LossSummingWord2Vec


class CBOW(Word2VecTrainer):
    """word2vec CBOW with negative sampling (`sg=0`)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(sg=0, **params)


class SkipGram(Word2VecTrainer):
    """word2vec skip-gram with negative sampling (`sg=1`)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(sg=1, **params)


# -- saving and the context vectors -------------------------------------------------------
def save_trained(trainer: Word2VecTrainer, models_dir: str | os.PathLike, name: str) -> Path:
    """Save a fitted trainer as model `name` (with context.npy when it kept W')."""
    from .store import save_model

    context = getattr(trainer, "context_vectors_", None)

    def write_extra(directory: Path) -> None:
        with open(directory / CONTEXT_FILE, "wb") as handle:
            np.save(handle, np.ascontiguousarray(context, dtype=np.float32), allow_pickle=False)

    return save_model(models_dir, name, trainer.embeddings_, write_extra if context is not None else None)


def load_context(path: str | os.PathLike) -> np.ndarray:
    """The context (output) vectors W' stored with a model saved by `--keep-context` (verified)."""
    from .store import ModelError, read_meta, verify_file

    path = Path(path).resolve()
    meta = read_meta(path)
    if CONTEXT_FILE not in meta["files"]:
        raise ModelError(f"{path}: trained without --keep-context, it has no {CONTEXT_FILE}")
    target = verify_file(path, CONTEXT_FILE, meta)
    context = np.load(target, allow_pickle=False)
    if context.shape != (meta.get("vocab_size"), meta.get("dim")) or context.dtype != np.float32:
        raise ModelError(f"{target}: expected float32 {(meta.get('vocab_size'), meta.get('dim'))}, "
                         f"got {context.dtype} {context.shape}")
    return context


def with_context(emb: Embeddings, context: np.ndarray) -> Embeddings:
    """w + c vectors (Levy, Goldberg & Dagan 2015): input plus output vectors of each word.

    The sum adds first-order (co-occurrence) similarity to the second-order
    similarity of w alone; it often helps similarity benchmarks.
    """
    context = np.asarray(context, dtype=np.float32)
    if context.shape != emb.vectors.shape:
        raise ValueError(f"context vectors have shape {context.shape}, expected {emb.vectors.shape}")
    meta = dict(emb.meta)
    meta["method"] = f"{emb.meta.get('method', 'word2vec')}+context"
    meta["vectors"] = "w + c (input + output vectors)"
    return Embeddings(emb.words, np.asarray(emb.vectors) + context, emb.counts, meta)


def load_with_context(models_dir: str | os.PathLike, name: str) -> Embeddings:
    """Model `name` as w + c vectors (it must have been trained with `--keep-context`)."""
    from .store import load_model, model_path

    emb = load_model(models_dir, name)
    return with_context(emb, load_context(model_path(models_dir, name)))


# -- checkpoints ---------------------------------------------------------------------
def _vocab_sha256(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


@contextmanager
def _checkpoint_lock(directory: str | os.PathLike | None) -> Iterator[None]:
    """Hold an exclusive flock on the checkpoint directory while training (released even by kill -9)."""
    if directory is None:
        yield
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another process is training into {directory} (its .lock is held)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _epoch_dirs(directory: Path) -> list[tuple[int, Path]]:
    """Complete-looking checkpoint directories, newest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _EPOCH_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def _clear_checkpoints(directory: Path, keep: str | None = None) -> None:
    """Remove every checkpoint and temp directory except `keep` (the lock file stays)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name in (keep, ".lock"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def clear_checkpoints(directory: str | os.PathLike) -> None:
    """Delete the checkpoints of a finished run (the directory itself included)."""
    directory = Path(directory)
    if directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)


def _read_checkpoint(path: Path) -> _Checkpoint:
    """Load and verify one checkpoint directory; raise `ValueError` saying what is wrong."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path / 'state.json'}: unreadable ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path / 'state.json'}: not a word2vec checkpoint of format {CHECKPOINT_FORMAT}")
    arrays = {}
    for rel in ("input.npy", "output.npy", "rng_keys.npy"):
        entry = state.get("files", {}).get(rel, {})
        target = path / rel
        if not target.is_file() or target.stat().st_size != entry.get("bytes") \
                or sha256_file(target) != entry.get("sha256"):
            raise ValueError(f"{target}: missing, truncated or corrupt (checksum mismatch)")
        arrays[rel] = np.load(target, allow_pickle=False)
    return _Checkpoint(path, state, arrays["input.npy"], arrays["output.npy"], arrays["rng_keys.npy"])


def _latest_checkpoint(directory: Path, notes: list[str]) -> _Checkpoint | None:
    """The newest checkpoint that verifies; broken ones are reported in `notes` and skipped."""
    for _epoch, path in _epoch_dirs(directory):
        try:
            return _read_checkpoint(path)
        except ValueError as exc:
            notes.append(f"skipped broken checkpoint: {exc}")
    return None


def _check_resumable(checkpoint: _Checkpoint, params: dict[str, Any], corpus_sha: str, vocab_sha: str,
                     vocab_size: int) -> None:
    """Refuse to resume a checkpoint made with other data or hyper-parameters."""
    state = checkpoint.state
    if state.get("corpus_sha256") != corpus_sha:
        raise ValueError(f"checkpoint {checkpoint.path} was trained on another corpus "
                         f"(sha256 {str(state.get('corpus_sha256'))[:12]}, this one {corpus_sha[:12]}); "
                         "train without --resume to start over")
    theirs = state.get("params", {})
    diffs = [f"{_flag(k)}={theirs.get(k)!r} in the checkpoint, {params[k]!r} now"
             for k in RESUME_KEYS if theirs.get(k) != params[k]]
    if diffs:
        raise ValueError(f"cannot resume {checkpoint.path}: " + "; ".join(diffs))
    shape = (vocab_size, params["vector_size"])
    if state.get("vocab_sha256") != vocab_sha or checkpoint.syn0.shape != shape \
            or checkpoint.syn1neg.shape != shape or checkpoint.rng_keys.shape != (624,):
        raise ValueError(f"checkpoint {checkpoint.path} does not match this vocabulary/shape {shape}")


class _CheckpointWriter:
    """Writes epoch-end checkpoints in a background thread, one at a time.

    `submit` copies the arrays (milliseconds) and returns; the write + fsync
    overlaps the next epoch. A new submit first waits for the previous write,
    and `close` waits for the last one and re-raises any write error.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, model, params: dict[str, Any], corpus_sha: str, vocab_sha: str,
               state: dict[str, Any]) -> None:
        self.wait()
        _name, keys, pos, has_gauss, cached = model.random.get_state()
        epochs_done = len(state["epoch_losses"])
        snapshot = {
            "format": CHECKPOINT_FORMAT, "epochs_done": epochs_done, "params": params,
            "corpus_sha256": corpus_sha, "vocab_sha256": vocab_sha, "vocab_size": len(model.wv),
            "rng": {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            **{k: list(v) for k, v in state.items()},
        }
        arrays = {"input.npy": np.array(model.wv.vectors, dtype=np.float32),
                  "output.npy": np.array(model.syn1neg, dtype=np.float32),
                  "rng_keys.npy": np.array(keys, dtype=np.uint32)}
        self._thread = threading.Thread(target=self._write, args=(epochs_done, arrays, snapshot),
                                        name="word2vec-checkpoint", daemon=True)
        self._thread.start()

    def _write(self, epochs_done: int, arrays: dict[str, np.ndarray], snapshot: dict[str, Any]) -> None:
        try:
            write_checkpoint(self.directory, epochs_done, arrays, snapshot)
        except BaseException as exc:  # re-raised in the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise OSError(f"writing a checkpoint into {self.directory} failed: {error}") from error

    def close(self) -> None:
        self.wait()


def write_checkpoint(directory: Path, epochs_done: int, arrays: dict[str, np.ndarray],
                     state: dict[str, Any]) -> Path:
    """Write one checkpoint directory atomically (temp dir, fsync, rename) and prune older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{epochs_done:04d}"
    tmp = directory / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {}
        # The whole directory is a temp one renamed into place at the end, so its files need no
        # atomic writes of their own: write them plainly, hash the bytes in memory, and fsync
        # the tree once (fewer fsyncs: a checkpoint must not outlast a short epoch).
        for rel, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            data = buffer.getbuffer()
            (tmp / rel).write_bytes(data)
            files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (tmp / "state.json").write_text(json.dumps({**state, "files": files}, indent=2), encoding="utf-8")
        fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _epoch, path in _epoch_dirs(directory):
        if path != final:
            shutil.rmtree(path, ignore_errors=True)
    return final
