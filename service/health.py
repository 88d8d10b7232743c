"""GET /livez (the process is up) and GET /readyz (every configured model and index loaded)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .app import registry

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez():
    """200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when every configured model and its index is loaded; 503 (with reasons) otherwise."""
    snap = registry().snapshot
    models = {}
    for name in snap.configured:
        if name in snap.models:
            models[name] = {"status": "ready"}
        elif name in snap.failed:
            models[name] = {"status": "failed", "error": snap.failed[name]}
        else:
            models[name] = {"status": "loading"}
    status = "ready" if snap.ready else ("loading" if snap.loading else "failed")
    response = jsonify({"status": status, "models": models})
    response.status_code = 200 if snap.ready else 503
    return response
