"""GET /models, /models/<name> and /models/<name>/neighbors."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from embeddings.metadata import ModelMeta

from .errors import ApiError
from .registry import LoadedModel, registry
from .routes_common import get_model, scored
from .validation import K_DEFAULT, K_MAX, K_MIN, MAX_RESTRICT_VOCAB, check_word, query_int

bp = Blueprint("models", __name__)


def summary(model: LoadedModel) -> dict[str, Any]:
    """The row of GET /models for a loaded model."""
    meta = model.meta
    return {
        "name": model.name,
        "status": "ready",
        "method": meta.get("method"),
        "dim": model.emb.dim,
        "vocab_size": len(model.emb),
        "index": model.index_report.as_dict(),
        "created": meta.get("created"),
        "contextual": model.contextual is not None,
    }


def _unavailable(name: str, status: str, error: str | None) -> dict[str, Any]:
    return {"name": name, "status": status, "method": None, "dim": None, "vocab_size": None,
            "index": None, "created": None, "contextual": False, "error": error}


def _rows() -> list[dict[str, Any]]:
    snap = registry().snapshot
    rows = []
    for name in snap.configured:
        if name in snap.models:
            rows.append(summary(snap.models[name]))
        elif name in snap.failed:
            rows.append(_unavailable(name, "failed", snap.failed[name]))
        else:
            rows.append(_unavailable(name, "loading", None))
    return rows


@bp.get("/models")
def list_models():
    """Every configured model: ready ones with their index, failed ones with the reason."""
    return jsonify(_rows())


@bp.get("/models/<name>")
def show_model(name: str):
    """One model: the summary plus hyper-parameters, stored evaluation and full meta."""
    for row in _rows():
        if row["name"] == name and row["status"] != "ready":
            return jsonify(row)
    model = get_model(name)
    meta = {k: v for k, v in model.meta.items() if k != "files"}
    detail = summary(model)
    record = ModelMeta.from_dict(meta)
    detail["hyperparameters"] = record.params
    if record.evaluation:
        detail["evaluation"] = record.evaluation
    detail["meta"] = meta
    return jsonify(detail)


@bp.get("/models/<name>/neighbors")
def neighbors(name: str):
    """Nearest neighbours of `word` (the word itself excluded)."""
    model = get_model(name)
    args = request.args
    if "word" not in args:
        raise ApiError(400, "invalid_request", "missing required query parameter 'word'")
    word = check_word(args["word"], "query parameter 'word'")
    k = query_int(args, "k", K_DEFAULT, K_MIN, K_MAX)
    restrict = query_int(args, "restrict_vocab", None, 1, MAX_RESTRICT_VOCAB)
    rows = model.index.neighbors(word, k=k, restrict_vocab=restrict)
    return jsonify({"word": word, "neighbors": scored(rows)})
