"""POST query routes: similar, analogy, similarity, vectors, odd-one-out, contextual."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from embeddings.in_context import embed_in_context
from embeddings.query import ANALOGY_METHODS, Term

from .errors import ApiError, bad_request
from .routes_common import get_model, scored
from .validation import (MAX_LIST_ITEMS, MAX_TERMS, MAX_TEXT_CHARS, check_fields, check_vector, check_weight,
                         check_word, get_bool, get_choice, get_k, get_list, get_restrict_vocab, get_word,
                         get_words, json_body)

bp = Blueprint("queries", __name__)


def _terms(body: dict[str, Any], name: str) -> list[Term]:
    """`positive`/`negative`: words or {"word": w, "weight": x} objects."""
    terms: list[Term] = []
    for i, item in enumerate(get_list(body, name, 0, MAX_TERMS, required=False)):
        where = f"'{name}[{i}]'"
        if isinstance(item, dict):
            check_fields(item, ("word", "weight"), ("word",))
            word = check_word(item["word"], f"{where}.word")
            terms.append((word, check_weight(item.get("weight", 1.0), f"{where}.weight")))
        else:
            terms.append(check_word(item, where))
    return terms


@bp.post("/models/<name>/similar")
def similar(name: str):
    """gensim most_similar(positive, negative): words, weighted words and/or a raw vector."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("positive", "negative", "vector", "k", "restrict_vocab", "exact"))
    positive, negative = _terms(body, "positive"), _terms(body, "negative")
    if "vector" in body:
        positive.append(check_vector(body["vector"], model.emb.dim))
    if not positive and not negative:
        raise bad_request("give at least one term in 'positive' or 'negative', or a 'vector'")
    if len(positive) + len(negative) > MAX_TERMS:
        raise bad_request(f"at most {MAX_TERMS} terms in one query (positive + negative + vector)")
    k, restrict = get_k(body), get_restrict_vocab(body)
    exact = get_bool(body, "exact", False)
    rows = model.index.most_similar(positive, negative, k=k, restrict_vocab=restrict, exact=exact)
    return jsonify({"results": scored(rows)})


@bp.post("/models/<name>/analogy")
def analogy(name: str):
    """a is to b as c is to ?  (? = b - a + c): 3CosAdd or 3CosMul; a, b, c never returned."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("a", "b", "c", "k", "method", "restrict_vocab", "exact"), ("a", "b", "c"))
    a, b, c = (get_word(body, key) for key in ("a", "b", "c"))
    k, restrict = get_k(body), get_restrict_vocab(body)
    method = get_choice(body, "method", ANALOGY_METHODS, "3cosadd")
    exact = get_bool(body, "exact", True)
    rows = model.index.analogy(a, b, c, k=k, method=method, restrict_vocab=restrict, exact=exact)
    return jsonify({"a": a, "b": b, "c": c, "method": method, "answers": scored(rows)})


@bp.post("/models/<name>/similarity")
def similarity(name: str):
    """Cosine per pair; null plus the missing words for a pair with an unknown word."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("pairs",), ("pairs",))
    results = []
    for i, pair in enumerate(get_list(body, "pairs", 1, MAX_LIST_ITEMS)):
        if not isinstance(pair, list) or len(pair) != 2:
            raise bad_request(f"'pairs[{i}]' must be an array of two words", "invalid_parameter")
        w1, w2 = (check_word(w, f"'pairs[{i}][{j}]'") for j, w in enumerate(pair))
        missing = model.emb.missing([w1, w2])
        value = None if missing else model.index.similarity(w1, w2)
        results.append({"pair": [w1, w2], "similarity": value, "missing": missing})
    return jsonify({"results": results})


@bp.post("/models/<name>/vectors")
def vectors(name: str):
    """The stored vectors of the given words (404 naming every unknown word)."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("words", "normalized"), ("words",))
    words = get_words(body, "words", 1, MAX_LIST_ITEMS)
    normalized = get_bool(body, "normalized", False)
    model.index.require(words)
    matrix = model.index.unit if normalized else model.emb.vectors
    rows = [{"word": w, "vector": [float(x) for x in matrix[model.emb.index_of(w)].tolist()]} for w in words]
    return jsonify({"dim": model.emb.dim, "normalized": normalized, "vectors": rows})


@bp.post("/models/<name>/odd-one-out")
def odd_one_out(name: str):
    """gensim doesnt_match: the word least similar to the mean of all of them."""
    model = get_model(name)
    body = json_body(request)
    check_fields(body, ("words",), ("words",))
    words = get_words(body, "words", 2, MAX_LIST_ITEMS)
    odd, rows = model.index.odd_one_out(words)
    return jsonify({"odd_one_out": odd, "scores": scored(rows)})


@bp.post("/models/<name>/contextual")
def contextual(name: str):
    """A word's vector in its sentence and its static neighbours (contextual models only)."""
    model = get_model(name)
    if model.contextual is None:
        raise ApiError(404, "not_contextual",
                       f"model {name!r} has no contextual encoder; contextual queries need a model "
                       "trained with 'wordspace train contextual'")
    body = json_body(request)
    check_fields(body, ("text", "word", "k"), ("text",))
    text = body["text"]
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT_CHARS:
        raise bad_request(f"'text' must be a non-empty string of at most {MAX_TEXT_CHARS} characters",
                          "invalid_parameter")
    word = get_word(body, "word") if "word" in body else None
    k = get_k(body)
    result = embed_in_context(model.contextual, model.emb, text, word=word, k=k)
    return jsonify(result)
