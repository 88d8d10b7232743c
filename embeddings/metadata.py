"""The model metadata record every trainer writes into meta.json.

`ModelMeta` has stable key names for what every model has (method, params,
corpus, train_seconds, epochs, evaluation, created); a trainer's own facts
(epoch losses, timings, the contextual encoder...) go into `extra` and are
written as further top-level keys next to them. `ModelMeta.from_dict` reads any
meta.json, including those of models trained before this record existed, so
readers (the report, GET /models/NAME) ask the record instead of searching
several key names. The store adds its own keys (format_version, vocab_size,
dim, files...) when it saves.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Mapping

from .corpus import INFO_FILE, PreparedCorpus

#: The keys `ModelMeta` owns in meta.json (everything else is `extra`).
KEYS = ("method", "params", "corpus", "train_seconds", "epochs", "evaluation", "created")
#: Older spellings read by `from_dict` and not written again.
_LEGACY = ("hyperparameters", "corpus_sha256", "corpus_tokens", "training_seconds")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def now() -> str:
    """The current UTC time as meta.json writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class CorpusInfo:
    """The training corpus: where it came from, its sha256 (of the prepared corpus.txt) and size."""

    source: str | None = None
    sha256: str | None = None
    n_tokens: int | None = None
    n_sentences: int | None = None
    n_types: int | None = None

    @classmethod
    def of(cls, corpus: PreparedCorpus) -> "CorpusInfo":
        """The record of a prepared corpus (its source as given to `prepare_corpus`)."""
        try:
            source = json.loads((corpus.directory / INFO_FILE).read_text(encoding="utf-8")).get("source")
        except (OSError, ValueError, AttributeError):
            source = None
        return cls(source if isinstance(source, str) else str(corpus.directory), corpus.sha256,
                   corpus.n_tokens, corpus.n_sentences, corpus.n_types)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CorpusInfo":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ModelMeta:
    """What a trained (or imported) model records about itself."""

    method: str | None
    params: dict[str, Any] = field(default_factory=dict)
    corpus: CorpusInfo | None = None
    train_seconds: float | None = None
    epochs: int | None = None          # epochs trained; None for methods without epochs
    evaluation: dict[str, Any] = field(default_factory=dict)
    created: str | None = field(default_factory=now)
    extra: dict[str, Any] = field(default_factory=dict)  # trainer-specific, written as top-level keys

    def to_dict(self) -> dict[str, Any]:
        """The meta.json mapping: the stable keys, then the trainer's extra keys."""
        clash = set(self.extra) & set(KEYS)
        if clash:
            raise ValueError(f"extra meta keys {sorted(clash)} would replace ModelMeta fields")
        return {"method": self.method, "params": dict(self.params),
                "corpus": None if self.corpus is None else asdict(self.corpus),
                "train_seconds": self.train_seconds, "epochs": self.epochs,
                "evaluation": dict(self.evaluation), "created": self.created, **self.extra}

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> "ModelMeta":
        """Read any model's meta.json mapping; older models' key names are understood."""
        params = meta.get("params")
        if not isinstance(params, dict):
            params = meta.get("hyperparameters") if isinstance(meta.get("hyperparameters"), dict) else {}
        corpus = None
        if isinstance(meta.get("corpus"), dict):
            corpus = CorpusInfo.from_dict(meta["corpus"])
        elif isinstance(meta.get("corpus_sha256"), str):
            tokens = meta.get("corpus_tokens")
            corpus = CorpusInfo(sha256=meta["corpus_sha256"], n_tokens=tokens if isinstance(tokens, int) else None)
        evaluation = meta.get("evaluation") if isinstance(meta.get("evaluation"), dict) else {}
        epochs = meta.get("epochs")
        created = meta.get("created")
        extra = {k: v for k, v in meta.items() if k not in KEYS and k not in _LEGACY}
        return cls(method=meta.get("method") if isinstance(meta.get("method"), str) else None,
                   params=dict(params), corpus=corpus, train_seconds=_train_seconds(meta),
                   epochs=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
                   evaluation=dict(evaluation), created=created if isinstance(created, str) else None,
                   extra=extra)


def _train_seconds(meta: Mapping[str, Any]) -> float | None:
    """train_seconds, or where models before `ModelMeta` kept their training time."""
    for value in (meta.get("train_seconds"), meta.get("training_seconds"),
                  (meta.get("timings") or {}).get("total_s") if isinstance(meta.get("timings"), dict) else None,
                  (meta.get("pooling") or {}).get("seconds") if isinstance(meta.get("pooling"), dict) else None):
        if _number(value) is not None:
            return _number(value)
    contextual = meta.get("contextual")
    if isinstance(contextual, dict) and isinstance(contextual.get("stats"), dict):
        return _number(contextual["stats"].get("seconds"))
    return None
