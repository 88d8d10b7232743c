"""GET /livez (the process is up) and GET /readyz (every configured model and index loaded,
in every pre-forked worker)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .errors import error_response
from .registry import registry
from .workers import worker_report

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez():
    """200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when every configured model and its index is loaded; otherwise 503 in the error
    envelope, whose `models` names each model's state and a failed one's reason. Under
    `wordspace serve --workers N`, `workers` lists each worker, and every one must be
    ready at the latest reload (SIGHUP) too."""
    snap = registry().snapshot
    models = {}
    for name in snap.configured:
        if name in snap.models:
            models[name] = {"status": "ready"}
        elif name in snap.failed:
            models[name] = {"status": "failed", "error": snap.failed[name]}
        else:
            models[name] = {"status": "loading"}
    workers = worker_report(current_app, snap)
    extra = {} if workers is None else {"workers": workers}
    waiting = [f"worker {w['slot']} (pid {w['pid']}) {w['status']}" for w in workers or () if w["status"] != "ready"]
    if snap.ready and not waiting:
        return jsonify({"status": "ready", "models": models, **extra})
    problems = [f"{name} {state['status']}" + (f" ({state['error']})" if "error" in state else "")
                for name, state in models.items() if state["status"] != "ready"]
    message = ("not every model is loaded: " + "; ".join(problems) if problems
               else "not every worker is ready: " + "; ".join(waiting))
    return error_response(503, "not_ready", message, models=models, **extra)
