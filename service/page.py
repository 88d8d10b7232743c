"""The web explorer: GET / (one HTML page), its script and its style sheet, read from
`service/static/`. No build step and nothing from a CDN, so the page works offline;
the Content-Security-Policy lets it load only from this server."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("page", __name__)

STATIC = Path(__file__).resolve().with_name("static")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _asset(filename: str, mimetype: str) -> Response:
    response = Response((STATIC / filename).read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
    return response


@bp.get("/")
def explorer():
    """The explorer page; its state (model, word, view...) lives in the query string."""
    return _asset("explorer.html", "text/html")


@bp.get("/explorer.js")
def script():
    """The explorer's script (vanilla JavaScript, no dependencies)."""
    return _asset("explorer.js", "text/javascript")


@bp.get("/explorer.css")
def stylesheet():
    """The explorer's style sheet."""
    return _asset("explorer.css", "text/css")
