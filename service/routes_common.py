"""Helpers shared by the route modules: the model lookup and result shaping."""
from __future__ import annotations

from typing import Any, Sequence

from embeddings.query import Neighbor

from .errors import ApiError
from .registry import LoadedModel, ModelUnavailable, registry


def get_model(name: str) -> LoadedModel:
    """The loaded model `name`, or 404 `model_not_found` / 503 `model_unavailable`."""
    reg = registry()
    try:
        return reg.get(name)
    except KeyError:
        known = sorted(reg.snapshot.configured)
        raise ApiError(404, "model_not_found", f"no model named {name[:100]!r}; served models: "
                       f"{', '.join(known) if known else '(none)'}") from None
    except ModelUnavailable as exc:
        detail = f": {exc.reason}" if exc.reason else ""
        raise ApiError(503, "model_unavailable", f"model {name!r} is {exc.state}{detail}") from None


def scored(rows: Sequence[Neighbor]) -> list[dict[str, Any]]:
    """`[{"word", "score"}]` for JSON."""
    return [{"word": row.word, "score": row.score} for row in rows]
