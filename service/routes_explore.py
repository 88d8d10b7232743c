"""JSON endpoints of the web explorer: word completion over the whole vocabulary, 2-D
coordinates of a word list, and the map of the N most frequent words. The work is
done in the core (`WordIndex.complete`, `WordIndex.project`, `embeddings.projection`)."""
from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, request

from embeddings.projection import project_2d

from .errors import bad_request
from .routes_common import get_model
from .validation import (FIT_TOP_DEFAULT, FIT_TOP_MAX, FIT_TOP_MIN, K_DEFAULT, K_MAX, K_MIN, MAP_DEFAULT, MAP_MAX,
                         MAP_MIN, MAX_PROJECTION_WORDS, check_fields, get_choice, get_int, get_words, json_body,
                         query_int, query_word)

bp = Blueprint("explore", __name__)

FIT_ON = ("selected", "vocab")
#: Decimals kept in map coordinates (they lie within [-2, 2]): a smaller download, the same picture.
MAP_DECIMALS = 5


@bp.get("/models/<name>/vocabulary")
def vocabulary(name: str):
    """Words starting with `prefix`, most frequent first, and how many there are."""
    model = get_model(name)
    prefix = query_word(request.args, "prefix")
    limit = query_int(request.args, "limit", K_DEFAULT, K_MIN, K_MAX)
    found = model.index.complete(prefix, limit)
    return jsonify({"prefix": prefix, "total": found.total, "words": found.words})


@bp.post("/models/<name>/projection")
def projection(name: str):
    """2-D coordinates of the given words (each once, in first-seen order)."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("words", "fit_on", "fit_top"), ("words",))
    given = get_words(body, "words", 1, MAX_PROJECTION_WORDS)
    words = list(dict.fromkeys(given))
    fit_on = get_choice(body, "fit_on", FIT_ON, "selected")
    fit_top = get_int(body, "fit_top", FIT_TOP_DEFAULT, FIT_TOP_MIN, FIT_TOP_MAX)
    if fit_on == "selected":
        if "fit_top" in body:
            raise bad_request("'fit_top' applies only with \"fit_on\": \"vocab\"", "invalid_parameter")
        if len(given) < 2:  # as the OpenAPI schema says; copies of one word map to the origin
            raise bad_request("fitting the map on the selected words needs at least 2 words "
                              "(or use \"fit_on\": \"vocab\")", "invalid_parameter")
    result = model.index.project(words, fit_top=fit_top if fit_on == "vocab" else None)
    fitted = len(words) if fit_on == "selected" else min(fit_top, len(model.emb))
    points = [{"word": w, "x": x, "y": y} for w, (x, y) in zip(words, result.points.tolist())]
    return jsonify({"fit_on": fit_on, "fit_words": fitted,
                    "explained_variance": list(result.explained_variance), "points": points})


@bp.get("/models/<name>/map")
def frequency_map(name: str):
    """The `n` most frequent words (the first rows) on the map fit on them, with their counts."""
    model = get_model(name)
    n = min(query_int(request.args, "n", MAP_DEFAULT, MAP_MIN, MAP_MAX), len(model.emb))
    result = project_2d(model.index.unit[:n])  # a one-word model: one point, the origin
    points = np.round(result.points, MAP_DECIMALS)
    counts = model.emb.counts
    return jsonify({"n": n, "words": list(model.emb.words[:n]),
                    "x": points[:, 0].tolist(), "y": points[:, 1].tolist(),
                    "counts": None if counts is None else counts[:n].tolist(),
                    "explained_variance": list(result.explained_variance)})
