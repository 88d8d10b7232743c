"""GET /livez (the process is up) and GET /readyz (every configured model and index loaded)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .errors import error_response
from .registry import registry

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez():
    """200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when every configured model and its index is loaded; otherwise 503 in the error
    envelope, whose `models` names each model's state and a failed one's reason."""
    snap = registry().snapshot
    models = {}
    for name in snap.configured:
        if name in snap.models:
            models[name] = {"status": "ready"}
        elif name in snap.failed:
            models[name] = {"status": "failed", "error": snap.failed[name]}
        else:
            models[name] = {"status": "loading"}
    if snap.ready:
        return jsonify({"status": "ready", "models": models})
    problems = [f"{name} {state['status']}" + (f" ({state['error']})" if "error" in state else "")
                for name, state in models.items() if state["status"] != "ready"]
    return error_response(503, "not_ready", "not every model is loaded: " + "; ".join(problems),
                          models=models)
