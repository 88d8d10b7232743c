"""The served side of contextual models: a loaded encoder and the in-context lookup
the REST API exposes (``POST /models/<name>/context``).

`load_contextual` loads the encoder stored in a model's ``encoder/`` directory
(checksums verified) as a `ContextualModel`; `embed_in_context` gives the
contextual vectors of the words of one text and, for one of its words, its
nearest static neighbours (through the project's one top-k, `embeddings.topk`).
Kept apart from `embeddings.pooling` so serving needs nothing of the build side.

Long texts in `embed_in_context` are *truncated*: only the first words that fit
in ``max_len`` positions are encoded, and the response says ``"truncated": true``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .corpus import tokenize
from .encoders import ENCODER_DIR, Encoder, check_layers, load_encoder
from .query import MissingWords
from .store import ModelError, read_meta, verify_file
from .topk import top_k
from .vectors import Embeddings

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


class WordNotInText(MissingWords):
    """The `word` of a lookup is not one token of the encoded text (a `KeyError`, like an
    unknown word: the REST API answers 404 `word_not_found`)."""

    def __init__(self, word: str, reason: str) -> None:
        super().__init__([word], {})
        self.message = f"{word!r} is not a word of the text: {reason}"
        self.args = (self.message,)


def is_contextual(meta: dict) -> bool:
    """True when a model's meta.json says it has a contextual encoder."""
    return isinstance(meta, dict) and "contextual" in meta


def load_contextual(model_path: str | os.PathLike) -> ContextualModel:
    """Load the encoder stored in `<model_path>/encoder/` (checksums verified).

    The result is safe to share between threads (inference only, tokenizer behind a lock)."""
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
    return ContextualModel(encoder, check_layers(info.get("layers", "last")),
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
    than the encoder's `max_len` is truncated to the words that fit ("truncated": true); a
    text without words (only punctuation or spaces) has no tokens. Raises ValueError for a
    text or word that is not a non-empty string, a bad `k`, or static vectors of another
    dimension; `WordNotInText` (a KeyError) for a `word` that is not one token of the
    encoded part of the text.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text is empty")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if static.dim != model.dim:
        raise ValueError(f"static vectors have {static.dim} dims but the encoder gives {model.dim}")
    if word is not None and (not isinstance(word, str) or not word):
        raise ValueError("word is empty")
    tokens = tokenize(text, lowercase=model.lowercase)
    kept = model.fit_tokens(tokens) if tokens else 0
    encoded = tokens[:kept]
    target = None
    if word is not None:
        parts = tokenize(word, lowercase=model.lowercase)
        if len(parts) != 1:
            raise WordNotInText(word, f"a lookup takes a single token, {word!r} tokenizes to {parts}")
        target = parts[0]
        if target not in tokens:
            raise WordNotInText(target, "it does not occur in the text")
        if target not in encoded:
            raise WordNotInText(target, f"it occurs only after the first {kept} words, beyond the encoder's "
                                        f"{model.max_len} positions (the text is truncated)")
    vectors = model.encode(encoded) if encoded else np.zeros((0, model.dim), np.float32)  # (kept, d)
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
    top_scores, top_ids = top_k(scores[None, :], min(k, len(static) - (self_row is not None)))
    result.update(
        word=target,
        vector=vector.astype(float).tolist(),
        occurrences=occurrences,
        neighbors=[{"word": static.words[i], "score": float(score)}
                   for score, i in zip(top_scores[0].tolist(), top_ids[0].tolist())],
        static_similarity=None if self_row is None else float(static.normalized[self_row] @ unit),
    )
    return result


