"""word2vec: CBOW and skip-gram with negative sampling (Mikolov et al. 2013).

The engine is gensim's compiled `corpus_file` path (no Python iterator, scales
with cores); this module only validates, drives it one epoch at a time, and
checkpoints at every epoch end.

Why shards (the quality loss of gensim's corpus_file mode, issue 15):

1. gensim's own corpus_file epoch starts worker k at byte `size * k / workers`,
   in the middle of a line, and lets each worker run until it has read
   `words / workers` words, checked only after each batch. So with several
   workers some text is trained twice and some not at all (the sample corpus:
   538,495 words per epoch for 535,705 tokens; gensim #2693, #2757), and each
   worker decays the learning rate over its share measured against the whole
   corpus, so no epoch ends at the next epoch's rate.
2. Worse, with any number of workers: gensim's reader makes batches of just
   over 10,000 words, but trains at most 10,000 words of a batch that survive
   min_count and subsampling, and silently drops the rest (see `BATCH_WORDS`).
   On the sample corpus (long lines) that was 4.8% of the words kept by
   subsampling, the same text every epoch: 352,445 trained per epoch where
   370,069 survive (gensim's iterable mode trains 369,894).

Here the prepared file is cut at line ends into one shard per worker (equal
bytes), each line that would overflow a gensim batch cut where the batch is full
(see `write_shards`), and each worker runs gensim's compiled epoch (`train_epoch_sg`/`train_epoch_cbow`)
over its whole shard with the shard's line count as the decay basis: every
token is trained exactly once per epoch, and every worker's rate falls from
this epoch's to the next's, as in word2vec.c. Where no batch can overflow
(short lines, enough rare words) a single worker's shard equals the file and
training equals gensim's own `Word2Vec(corpus_file=...)` bit for bit, given the
same initial vectors: ours start in word2vec.c's range, half gensim 4's (`_new_model`).

Why epoch by epoch: gensim's `train()` can only start at epoch 0, and passing
`start_alpha`/`end_alpha` for the remaining epochs reproduces the learning-rate
schedule only up to float32 rounding. Calling gensim's compiled per-epoch
routine with `cur_epoch=e` and the original `alpha`, `min_alpha` and `epochs`
keeps the schedule bit for bit, so with `workers=1`:

* a fit equals `gensim.models.Word2Vec` trained on the same `corpus_file` from
  the same (halved) initial vectors where no batch overflows (above), and
* a run resumed from an epoch-end checkpoint equals an uninterrupted run,

because an epoch is a pure function of (input vectors W, output vectors W',
the `model.random` MT19937 state that seeds the epoch's C-level RNG, epoch
number); all four are in the checkpoint. With `workers > 1` the threads race
on the shared matrices (Hogwild), so no two runs are bit-identical anyway.

Seeding: gensim 4 initialises W with `np.random.default_rng(seed)` and never
calls `hashfxn` for Word2Vec, so `PYTHONHASHSEED` does not matter; we still
pass a deterministic `hashfxn` so that no gensim version can make it matter.

Checkpoints use the shared scheme of `embeddings.training.Checkpoints`
(`MODELS/.checkpoints/NAME/epoch-NNNN/`, atomic, newest kept). A word2vec
checkpoint holds::

    input.npy      W  = syn0 (wv.vectors), float32 (vocab x dim)
    output.npy     W' = syn1neg, float32 (vocab x dim)
    rng_keys.npy   uint32[624], MT19937 key of model.random
    state.json     params, corpus sha256, vocab sha256, per-epoch losses/seconds/words,
                   RNG position, sha256 + size of each .npy

The last epoch is not checkpointed: it goes straight into the (atomic) model save.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import io
import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Container, Iterator

import numpy as np

from .corpus import PreparedCorpus
from .metadata import CorpusInfo, ModelMeta
from .store import ModelError, load_model, model_path, read_meta, verify_file
from .training import (BackgroundWriter, Checkpoint, Progress, ProgressCallback, Trainer, as_prepared,
                       check_bool, check_int, check_real, check_resumable, cpu_count, notify, resumed_message,
                       training_run, words_sha256)
from .vectors import Embeddings

METHODS = {0: "cbow", 1: "skipgram"}
#: Default initial learning rate by `sg`: word2vec.c's (0.05 for CBOW, 0.025 for skip-gram).
DEFAULT_ALPHA = {0: 0.05, 1: 0.025}
CONTEXT_FILE = "context.npy"
#: `state["trainer"]` of a word2vec checkpoint.
CHECKPOINT_KIND = "word2vec"
_ARRAYS = ("input.npy", "output.npy", "rng_keys.npy")
#: Hyper-parameters that must match for a checkpoint to be resumed (workers may change).
RESUME_KEYS = ("sg", "vector_size", "window", "negative", "ns_exponent", "sample", "min_count",
               "epochs", "alpha", "min_alpha", "seed")


#: gensim 4's initial input vectors times this = word2vec.c's initial range (see _new_model).
WORD2VEC_C_INIT_SCALE = 0.5


def stable_hash(text: str) -> int:
    """A hash of `text` that is the same in every process (unlike `hash`, see PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_arrays(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """The three arrays of a verified checkpoint (never unpickled); `ValueError` if unreadable."""
    arrays = {}
    for rel in _ARRAYS:
        if rel not in checkpoint.state["files"]:
            raise ValueError(f"{checkpoint.file(rel)}: missing from {checkpoint.path}")
        try:
            arrays[rel] = np.load(checkpoint.file(rel), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{checkpoint.file(rel)}: unreadable ({exc})") from None
    return arrays


# -- line-aligned, batch-safe shards ------------------------------------------------------
#: gensim's compiled reader (`CythonLineSentence.next_batch`) adds sentences to a batch while it holds
#: at most this many words, so a batch ends up with more; its trimming step keeps them all (it tests
#: the batch without the last sentence). The trainer then stops taking words once this many of a batch
#: survive min_count and subsampling (MAX_SENTENCE_LEN): the rest of the batch is silently never trained.
BATCH_WORDS = 10_000
#: Tokens that the tokenizer never produces (no letter or digit), used as out-of-vocabulary filler.
FILLER_TOKENS = ("#", "|", "~")


@dataclass(frozen=True)
class Shard:
    """One worker's file: whole corpus lines, plus filler lines that end gensim's batches in time.

    `sentences` counts every line (filler too; gensim decays the learning rate by it), `words` the
    corpus tokens and `filler` the filler tokens."""

    path: Path
    sentences: int
    words: int
    filler: int


def line_boundaries(path: str | os.PathLike, parts: int) -> list[int]:
    """Byte offsets `[0, ..., size]` cutting `path` into `parts` runs of whole lines of about equal size.

    Each cut is moved forward to the next line start; runs may be empty when
    there are fewer lines than parts."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as handle:
        for k in range(1, parts):
            target = max(size * k // parts, cuts[-1])
            if target == 0:
                cuts.append(0)
                continue
            handle.seek(target - 1)
            handle.readline()  # to the end of the line holding byte target-1
            cuts.append(min(handle.tell(), size))
    cuts.append(size)
    return cuts


def filler_token(vocabulary: Container[str]) -> str:
    """A token that is not in `vocabulary` (so gensim skips it), for filler lines."""
    for token in FILLER_TOKENS:
        if token not in vocabulary:
            return token
    raise ValueError(f"the vocabulary contains every filler token {FILLER_TOKENS}")


def write_shards(path: str | os.PathLike, parts: int, directory: str | os.PathLike,
                 vocabulary: Container[str]) -> list[Shard]:
    """Copy `path` into up to `parts` line-aligned shard files in `directory` (empty runs dropped),
    laid out so that gensim's reader never drops a word.

    The shard replays gensim's batching (a batch takes lines until it holds more than BATCH_WORDS
    words). A line that would bring a batch to BATCH_WORDS words in `vocabulary` is cut where the
    batch still holds fewer; the batch then ends there (it already holds more than BATCH_WORDS words
    in all, counting the out-of-vocabulary ones) or, if not, after a short filler line, and the rest
    of the line starts the next batch. Lines over BATCH_WORDS tokens are cut into lines of
    BATCH_WORDS, as gensim cuts them. A cut ends a sentence where word2vec.c would run on (it cuts
    every 1,000 words), a few times per BATCH_WORDS words. When nothing needed changing a shard's
    bytes equal its run of `path` (so one worker trains exactly what gensim's own corpus_file epoch
    trains)."""
    filler = filler_token(vocabulary).encode("utf-8")
    known = {word.encode("utf-8") for word in vocabulary}
    cuts = line_boundaries(path, parts)
    shards = []
    with open(path, "rb") as source:
        for k, (start, end) in enumerate(zip(cuts, cuts[1:])):
            if end <= start:
                continue
            target = Path(directory) / f"shard-{k:03d}.txt"
            source.seek(start)
            with open(target, "wb", buffering=1 << 20) as out:
                writer = _BatchSafeWriter(out, known, filler)
                position = start
                for line in iter(source.readline, b""):
                    if position >= end:
                        break
                    position += len(line)
                    writer.write_line(line)
            shards.append(Shard(target, writer.sentences, writer.words, writer.filler))
    return shards


class _BatchSafeWriter:
    """Writes lines to a shard, replaying gensim's batching and cutting a line where a batch would
    reach BATCH_WORDS words in the vocabulary (see `write_shards`); counts what it wrote."""

    def __init__(self, out: io.BufferedWriter, known: set[bytes], filler: bytes) -> None:
        self.out, self.known, self.filler_token = out, known, filler
        self.sentences = self.words = self.filler = 0
        self.batch_words = self.batch_known = 0

    def write_line(self, line: bytes) -> None:
        tokens = line.split()
        flags = [token in self.known for token in tokens]
        if len(tokens) <= BATCH_WORDS and self.batch_known + sum(flags) < BATCH_WORDS:
            self._emit(line if line.endswith(b"\n") else line + b"\n", tokens, sum(flags))  # as is
            return
        for begin in range(0, len(tokens), BATCH_WORDS):
            piece, piece_flags = tokens[begin:begin + BATCH_WORDS], flags[begin:begin + BATCH_WORDS]
            while piece:
                room = BATCH_WORDS - 1 - self.batch_known  # known words this batch may still take
                running = list(itertools.accumulate(piece_flags))
                if running[-1] <= room:
                    self._emit(b" ".join(piece) + b"\n", piece, running[-1])
                    break
                cut = bisect.bisect_right(running, room)  # the longest prefix that fits
                if cut:
                    self._emit(b" ".join(piece[:cut]) + b"\n", piece[:cut], running[cut - 1])
                if self.batch_words:  # still open: a filler line just long enough ends it
                    pad = BATCH_WORDS + 1 - self.batch_words
                    self.out.write(b" ".join([self.filler_token] * pad) + b"\n")
                    self.sentences, self.filler = self.sentences + 1, self.filler + pad
                    self.batch_words = self.batch_known = 0
                piece, piece_flags = piece[cut:], piece_flags[cut:]

    def _emit(self, data: bytes, tokens: list[bytes], n_known: int) -> None:
        """Write one line of corpus tokens (`n_known` of them in the vocabulary); advance the batch."""
        self.out.write(data)
        self.sentences, self.words = self.sentences + 1, self.words + len(tokens)
        self.batch_words += len(tokens)
        self.batch_known += n_known
        if self.batch_words > BATCH_WORDS:
            self.batch_words = self.batch_known = 0


def _remove_orphaned_shards(directory: Path) -> None:
    """Delete `.shards-PID-*` directories left by a process that no longer runs (kill -9)."""
    for leftover in directory.glob(".shards-*-*"):
        pid = leftover.name.split("-")[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # alive, or not ours to ask about


@contextlib.contextmanager
def worker_shards(path: Path, parts: int, vocabulary: Container[str]) -> Iterator[list[Shard]]:
    """The shards of `path` for `parts` workers during a fit: temporary files next to it (same disk;
    the system temp dir if that is not writable), removed afterwards; a killed run's are removed
    by the next fit on the same corpus."""
    try:
        _remove_orphaned_shards(path.parent)
        tmp = tempfile.TemporaryDirectory(prefix=f".shards-{os.getpid()}-", dir=path.parent)
    except OSError:
        tmp = tempfile.TemporaryDirectory(prefix=f"wordspace-shards-{os.getpid()}-")
    with tmp as directory:
        yield write_shards(path, parts, directory, vocabulary)


@functools.cache
def _epoch_functions():
    """gensim's compiled one-worker epoch routines (sg, cbow) and its vocabulary table."""
    from gensim.models.word2vec_corpusfile import CythonVocab, train_epoch_cbow, train_epoch_sg

    return train_epoch_sg, train_epoch_cbow, CythonVocab


def train_epoch_on_shards(model, shards: list[Shard], epoch: int, vocab) -> tuple[int, int]:
    """One epoch of gensim's compiled corpus_file training, one thread per shard, each reading its shard
    to the end; returns (effective words, corpus words) summed over the shards (filler not counted).

    gensim's routine stops a worker once it has read more than `expected_words / model.workers`
    words; `expected_words = model.workers * (all shard words + 1)` puts that past any shard's end. The
    learning rate decays by sentences: `expected_examples` = the shard's line count. With one shard
    equal to the file these are, in effect, the arguments of gensim's own epoch."""
    train_sg, train_cbow, _vocab = _epoch_functions()
    train = train_sg if model.sg else train_cbow
    expected_words = model.workers * (sum(shard.words + shard.filler for shard in shards) + 1)
    results: list[Any] = [None] * len(shards)

    def run(k: int) -> None:
        work, neu1 = model._get_thread_working_mem()
        try:
            results[k] = train(model, str(shards[k].path), 0, vocab, epoch, shards[k].sentences,
                               expected_words, work, neu1, model.compute_loss)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            results[k] = exc

    if len(shards) == 1:
        run(0)
    else:
        threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(shards))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return (sum(int(r[1]) for r in results),
            sum(int(r[2]) for r in results) - sum(shard.filler for shard in shards))


# -- the estimator ----------------------------------------------------------------
class Word2VecTrainer(Trainer):
    """word2vec with negative sampling (`hs=0`) on gensim's corpus_file engine.

    `sg=0` is CBOW (context vectors averaged, `cbow_mean=1`), `sg=1` skip-gram.
    Defaults are the original word2vec.c's, including its learning rate:
    `alpha=None` means 0.05 for CBOW and 0.025 for skip-gram (gensim uses 0.025
    for both, which costs CBOW about 0.025 WordSim353 Spearman on the sample
    corpus). `workers=None` uses every core.

    After `fit`, `embeddings_` holds W (input vectors, rows most frequent
    first), `context_vectors_` holds W' (syn1neg) when `keep_context`,
    `resumed_from_epoch_` the epochs a resumed run started with (else None) and
    `notes_` what the start had to say (skipped broken checkpoints...).

    Loss: with `compute_loss=True` the per-epoch loss is the sum of gensim's
    per-thread running losses over that epoch (not gensim's cumulative total;
    see `_loss_summing_word2vec` for why gensim alone reports only one thread's
    share with `workers > 1`). It is off by default, as in gensim and
    word2vec.c: it costs about 5% of skip-gram's time and never changes the
    vectors (the epoch losses are then recorded as None).
    """

    cli_flags = {"vector_size": "--dim", "ns_exponent": "--ns-exponent", "min_count": "--min-count",
                 "window": "--window", "negative": "--negative", "sample": "--sample", "epochs": "--epochs",
                 "alpha": "--alpha", "min_alpha": "--min-alpha", "seed": "--seed", "workers": "--workers"}

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
        alpha: float | None = None,
        min_alpha: float = 1e-4,
        seed: int = 1,
        workers: int | None = None,
        keep_context: bool = False,
        compute_loss: bool = False,
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
        self.compute_loss = compute_loss

    @property
    def method(self) -> str:  # type: ignore[override]
        """"cbow" or "skipgram"."""
        return METHODS[int(self.sg)]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters as stored in meta.json and checkpoints."""
        return {
            "sg": int(self.sg), "hs": 0, "cbow_mean": 1,
            "vector_size": int(self.vector_size), "window": int(self.window),
            "negative": int(self.negative), "ns_exponent": float(self.ns_exponent),
            "sample": float(self.sample), "min_count": int(self.min_count), "epochs": int(self.epochs),
            "alpha": self._alpha(), "min_alpha": float(self.min_alpha), "seed": int(self.seed),
            "workers": self._workers(), "compute_loss": bool(self.compute_loss),
        }

    def _alpha(self) -> float:
        """The initial learning rate: `alpha`, or word2vec.c's default for this architecture."""
        return DEFAULT_ALPHA[int(self.sg)] if self.alpha is None else float(self.alpha)

    def _workers(self) -> int:
        return int(self.workers) if self.workers is not None else cpu_count()

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad hyper-parameter (cheap; no corpus needed)."""
        if isinstance(self.sg, bool) or self.sg not in (0, 1):
            raise ValueError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {self.sg!r}")
        check_int(self.label("vector_size"), self.vector_size, 1)
        check_int(self.label("window"), self.window, 1)
        # hs=0 here, so negative=0 would train nothing at all (gensim refuses it too).
        if check_int(self.label("negative"), self.negative) == 0:
            raise ValueError(f"{self.label('negative')} must be >= 1, got 0: with negative sampling as the "
                             "only objective (hs=0), 0 noise words would train nothing")
        check_int(self.label("negative"), self.negative, 1)
        check_real(self.label("ns_exponent"), self.ns_exponent)
        check_real(self.label("sample"), self.sample, 0.0)
        check_int(self.label("min_count"), self.min_count, 1)
        check_int(self.label("epochs"), self.epochs, 1)
        if self.alpha is not None:
            check_real(self.label("alpha"), self.alpha, 0.0, low_open=True)
        check_real(self.label("min_alpha"), self.min_alpha, 0.0)
        if self.min_alpha > self._alpha():
            raise ValueError(f"{self.label('min_alpha')} must be <= alpha ({self._alpha()}), "
                             f"got {self.min_alpha!r}")
        check_int(self.label("seed"), self.seed, 0, 2**32 - 1)
        if self.workers is not None:
            check_int(self.label("workers"), self.workers, 1, 512)
        check_bool("keep_context", self.keep_context)
        check_bool("compute_loss", self.compute_loss)

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
        progress: ProgressCallback | None = None,
    ) -> "Word2VecTrainer":
        """Train on `corpus` (a PreparedCorpus, a prepared directory, a raw file or "sample").

        With `checkpoint_dir`, a checkpoint is written at every epoch end (but the
        last); with `resume`, training continues from the newest valid checkpoint
        there (from scratch if there is none). Without `resume`, a checkpoint left
        there by an interrupted run raises `training.UnfinishedRun` and is kept.
        `progress(event)` gets notes, then a "train" and an "epoch" event per epoch.
        """
        self.check_params()
        prepared = as_prepared(corpus)
        self.check_corpus(prepared)
        params = self.get_params()
        model = self._new_model(prepared)
        vocab_sha = words_sha256(model.wv.index_to_key)

        self.resumed_from_epoch_: int | None = None
        self.notes_: list[str] = []
        state: dict[str, Any] = {"epoch_losses": [], "epoch_seconds": [], "epoch_words": [],
                                 "epoch_effective_words": []}
        with training_run(checkpoint_dir) as checkpoints:
            if checkpoints is not None:
                found = checkpoints.start(resume, _load_arrays, self.notes_, CHECKPOINT_KIND)
                if found is not None:
                    checkpoint, arrays = found
                    self._restore(model, checkpoint, arrays, params, prepared.sha256, vocab_sha)
                    state = {k: list(checkpoint.state[k]) for k in state}
                    self.resumed_from_epoch_ = checkpoint.epochs_done
                    self.notes_.append(resumed_message(self.method, checkpoint.path, checkpoint.epochs_done,
                                                       int(self.epochs)))
            for note in self.notes_:
                notify(progress, Progress("note", message=note))
            self._train(model, prepared, params, vocab_sha, state, checkpoints, progress)

        self._finish(model, prepared, params, state)
        return self

    def _restore(self, model, checkpoint: Checkpoint, arrays: dict[str, np.ndarray], params: dict[str, Any],
                 corpus_sha: str, vocab_sha: str) -> None:
        """Put a checkpoint's matrices and RNG state into `model`, after checking it fits this run."""
        check_resumable(checkpoint, corpus_sha, {k: params[k] for k in RESUME_KEYS}, self.label)
        shape = (len(model.wv), params["vector_size"])
        syn0, syn1neg, keys = arrays["input.npy"], arrays["output.npy"], arrays["rng_keys.npy"]
        if checkpoint.state.get("vocab_sha256") != vocab_sha or syn0.shape != shape \
                or syn1neg.shape != shape or keys.shape != (624,):
            raise ValueError(f"checkpoint {checkpoint.path} does not match this vocabulary/shape {shape}")
        model.wv.vectors[...] = syn0
        model.syn1neg[...] = syn1neg
        rng = checkpoint.state["rng"]
        model.random.set_state(("MT19937", keys, rng["pos"], rng["has_gauss"], rng["cached_gaussian"]))

    def _new_model(self, prepared: PreparedCorpus):
        """A gensim Word2Vec with our hyper-parameters and the corpus vocabulary built."""
        Word2Vec = _loss_summing_word2vec()
        if not hasattr(Word2Vec, "_get_thread_working_mem"):  # pragma: no cover - gensim API guard
            raise RuntimeError("this gensim version lacks Word2Vec._get_thread_working_mem (needs gensim >= 4, < 5)")
        model = Word2Vec(
            sg=int(self.sg), hs=0, negative=int(self.negative), cbow_mean=1,
            vector_size=int(self.vector_size), window=int(self.window), ns_exponent=float(self.ns_exponent),
            sample=float(self.sample), min_count=int(self.min_count), epochs=int(self.epochs),
            alpha=self._alpha(), min_alpha=float(self.min_alpha), seed=int(self.seed),
            workers=self._workers(), hashfxn=stable_hash,
            compute_loss=bool(self.compute_loss),
        )
        model.build_vocab(corpus_file=str(prepared.path))
        # word2vec.c draws W uniformly from [-0.5/d, 0.5/d); gensim 4 draws from [-1/d, 1/d)
        # (fastText's range, adopted for Word2Vec in gensim PR #2944). Halving (exact in
        # float32) gives word2vec.c's range. On the sample corpus (paired seeds, BENCHMARKS.md):
        # skip-gram SimLex +0.003 (8 seeds), CBOW WS353 -0.008 (4 seeds); both < 2 std. errors.
        model.wv.vectors *= np.float32(WORD2VEC_C_INIT_SCALE)
        return model

    def _train(self, model, prepared: PreparedCorpus, params: dict[str, Any], vocab_sha: str,
               state: dict[str, Any], checkpoints, progress: ProgressCallback | None) -> None:
        """Run the remaining epochs through gensim's compiled per-epoch routine, one thread per shard."""
        start = len(state["epoch_losses"])
        epochs = int(self.epochs)
        words = prepared.n_tokens
        notify(progress, Progress("train", epoch=start, epochs=epochs, done=words * start,
                                  total=words * epochs, unit="word"))
        if start >= epochs:
            return
        # What gensim's train() sets up before its epoch loop (same values as a single train() call).
        model.epochs = epochs
        model.alpha, model.min_alpha = self._alpha(), float(self.min_alpha)
        model.compute_loss = bool(self.compute_loss)
        model._check_training_sanity(epochs=model.epochs, total_examples=model.corpus_count,
                                     total_words=model.corpus_total_words)
        _sg, _cbow, CythonVocab = _epoch_functions()
        vocab = CythonVocab(model.wv, hs=0, fasttext=False)
        writer = BackgroundWriter(checkpoints) if checkpoints is not None else None
        try:
            with worker_shards(prepared.path, model.workers, model.wv.key_to_index) as shards:
                for epoch in range(start, epochs):
                    self._train_one_epoch(model, shards, epoch, vocab, params, prepared, vocab_sha, state,
                                          writer, progress)
        finally:
            if writer is not None:
                writer.close()
        model._clear_post_train()

    def _train_one_epoch(self, model, shards: list[Shard], epoch: int, vocab, params: dict[str, Any],
                         prepared: PreparedCorpus, vocab_sha: str, state: dict[str, Any],
                         writer: BackgroundWriter | None, progress: ProgressCallback | None) -> None:
        """Train epoch `epoch` on the shards, record it, hand its checkpoint to `writer`, report it."""
        epochs, words = int(self.epochs), prepared.n_tokens
        model.epoch_loss = 0.0
        began = time.perf_counter()
        effective, raw = train_epoch_on_shards(model, shards, epoch, vocab)
        seconds = time.perf_counter() - began
        loss = float(model.epoch_loss) if model.compute_loss else None
        previous = state["epoch_losses"][-1] if state["epoch_losses"] else None
        state["epoch_losses"].append(loss)
        state["epoch_seconds"].append(seconds)
        state["epoch_words"].append(int(raw))
        state["epoch_effective_words"].append(int(effective))
        # The last epoch goes straight into the (atomic) model save instead: a kill during that
        # save resumes from epoch N-1 and recomputes the same last epoch.
        if writer is not None and epoch + 1 < epochs:
            self._submit(writer, model, params, prepared.sha256, vocab_sha, state)
        change = None if loss is None or previous in (None, 0) else (loss - previous) / previous
        notify(progress, Progress("train", epoch=epoch + 1, epochs=epochs, done=words * (epoch + 1),
                                  total=words * epochs, unit="word"))
        notify(progress, Progress("epoch", epoch=epoch + 1, epochs=epochs, loss=loss, unit="words",
                                  rate=raw / seconds if seconds > 0 else None, seconds=seconds,
                                  metrics={"loss_change": change}))

    def _submit(self, writer: BackgroundWriter, model, params: dict[str, Any], corpus_sha: str,
                vocab_sha: str, state: dict[str, Any]) -> None:
        """Hand an epoch-end checkpoint to the writer (array copies: milliseconds)."""
        _name, keys, pos, has_gauss, cached = model.random.get_state()
        arrays = {"input.npy": np.array(model.wv.vectors, dtype=np.float32),
                  "output.npy": np.array(model.syn1neg, dtype=np.float32),
                  "rng_keys.npy": np.array(keys, dtype=np.uint32)}
        snapshot = {
            "trainer": CHECKPOINT_KIND, "method": self.method, "params": params,
            "corpus_sha256": corpus_sha, "vocab_sha256": vocab_sha, "vocab_size": len(model.wv),
            "rng": {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            **{k: list(v) for k, v in state.items()},
        }
        writer.submit(len(state["epoch_losses"]), lambda: {rel: _npy_bytes(a) for rel, a in arrays.items()},
                      snapshot)

    def _finish(self, model, prepared: PreparedCorpus, params: dict[str, Any], state: dict[str, Any]) -> None:
        """Turn the gensim model into `embeddings_` (and `context_vectors_`)."""
        words = list(model.wv.index_to_key)
        counts = np.asarray(model.wv.expandos["count"], dtype=np.int64)
        seconds = float(sum(state["epoch_seconds"]))
        words_trained = int(sum(state["epoch_words"]))
        extra: dict[str, Any] = {
            "trainer": "gensim.models.Word2Vec compiled corpus_file epochs on line-aligned shards "
                       "(negative sampling; every corpus word once per epoch)",
            "epoch_losses": state["epoch_losses"],
            "loss_note": "per epoch: sum over worker threads of gensim's running loss (negative "
                         "log-likelihood of the positive and noise pairs, float32 sums); None when "
                         "trained without compute_loss",
            "epoch_seconds": state["epoch_seconds"],
            "epoch_words": state["epoch_words"],
            "epoch_effective_words": state["epoch_effective_words"],
            "words_per_second": words_trained / seconds if seconds > 0 else None,
            "resumed_from_epoch": self.resumed_from_epoch_,
            "keep_context": bool(self.keep_context),
        }
        if self.keep_context:
            extra["context_file"] = CONTEXT_FILE
        meta = ModelMeta(self.method, params, CorpusInfo.of(prepared), train_seconds=seconds,
                         epochs=int(self.epochs), extra=extra)
        self.embeddings_ = Embeddings(words, model.wv.vectors, counts, meta.to_dict())
        self.context_vectors_ = np.array(model.syn1neg, dtype=np.float32) if self.keep_context else None
        self.vocab_size_ = len(words)

    def _write_extra(self, directory: Path) -> None:
        """context.npy (W') when the trainer kept the context vectors."""
        context = getattr(self, "context_vectors_", None)
        if context is not None:
            with open(directory / CONTEXT_FILE, "wb") as handle:
                np.save(handle, np.ascontiguousarray(context, dtype=np.float32), allow_pickle=False)


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

    fixed_params = ("sg",)

    def __init__(self, **params: Any) -> None:
        super().__init__(sg=0, **params)


class SkipGram(Word2VecTrainer):
    """word2vec skip-gram with negative sampling (`sg=1`)."""

    fixed_params = ("sg",)

    def __init__(self, **params: Any) -> None:
        super().__init__(sg=1, **params)


# -- the context vectors -------------------------------------------------------------------
def load_context(path: str | os.PathLike) -> np.ndarray:
    """The context (output) vectors W' stored with a model saved by `--keep-context` (verified)."""
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
    emb = load_model(models_dir, name)
    return with_context(emb, load_context(model_path(models_dir, name)))
