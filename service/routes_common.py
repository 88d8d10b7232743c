"""Helpers shared by the route modules: the model lookup and result shaping."""
from __future__ import annotations

from typing import Any, Sequence

from .app import registry
from .errors import ApiError
from .index import MissingWords, Neighbor
from .registry import LoadedModel, ModelUnavailable


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


def words_not_found(exc: MissingWords) -> ApiError:
    """404 naming every missing word, each with up to 5 close spellings."""
    parts = []
    for word in exc.words:
        hint = exc.suggestions.get(word) or []
        parts.append(f"{word!r}" + (f" (did you mean {', '.join(hint)}?)" if hint else ""))
    return ApiError(404, "word_not_found", f"not in the vocabulary: {'; '.join(parts)}",
                    missing=[{"word": w, "suggestions": exc.suggestions.get(w) or []} for w in exc.words])


def scored(rows: Sequence[Neighbor]) -> list[dict[str, Any]]:
    """`[{"word", "score"}]` for JSON."""
    return [{"word": row.word, "score": row.score} for row in rows]
