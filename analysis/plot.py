"""Two-dimensional pictures of word vectors: TruncatedSVD to 2-D, labelled points,
coloured groups, analogy arrows, a word's neighbourhood. PNG or SVG (by the
output file's extension); SVG keeps labels as text.

The 2-D map is `embeddings.projection.project_2d`, as in the web explorer:
scikit-learn's `TruncatedSVD` (randomized, fixed `random_state`, so the same
words give the same picture) of the unit-length vectors, so the
picture shows the cosine geometry the rest of wordspace uses. The vectors are
centred on the mean of the fitted words first: uncentred, the first axis is
mostly the shared mean direction (about 4% of the variance on GloVe), centred
the two axes are the two directions of largest spread (PCA). It is fit either
on the words being drawn (`fit_on="selected"`, as in CS224n's assignment 1: the
two directions that spread *these* words most) or on the most frequent
`fit_top` words (`fit_on="vocab"`: a fixed map of the whole space onto which
the words are projected; comparable across plots, usually less spread out).
Uses matplotlib's object API with
the Agg canvas: no pyplot state, safe in threads and servers.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from embeddings.atomic import atomic_write
from embeddings.projection import RANDOM_STATE, project_2d
from embeddings.query import WordIndex
from embeddings.vectors import Embeddings

FIT_ON = ("selected", "vocab")
FORMATS = {".png": "png", ".svg": "svg"}
DEFAULT_FIT_TOP = 10_000
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True)
class PlotResult:
    """What was drawn: the file, the words placed (by group), the words left out, the variance."""

    path: Path
    groups: dict[str, list[str]]
    missing: list[str]
    explained_variance: tuple[float, float]
    title: str
    coordinates: dict[str, tuple[float, float]] = field(repr=False, default_factory=dict)


def read_groups(path: str | os.PathLike) -> dict[str, list[str]]:
    """Parse a group file: one `name: word word, word ...` line per group; `#` comments.

    A line without a colon is a group named after its line number. Raises
    `ValueError` naming the line for a group without words.
    """
    path = Path(path)
    groups: dict[str, list[str]] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            name, rest = f"group {lineno}", line
        words = [w for w in re.split(r"[\s,]+", rest) if w]
        if not words:
            raise ValueError(f"{path}:{lineno}: group {name.strip()!r} has no words")
        groups.setdefault(name.strip() or f"group {lineno}", []).extend(words)
    if not groups:
        raise ValueError(f"{path}: no groups found (expected lines like 'countries: italy germany france')")
    return groups


def neighbours(emb: Embeddings, word: str, k: int) -> list[str]:
    """The `k` nearest words to `word` by cosine, without the word itself (the query layer's
    exact search, as the REST API's neighbours)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [row.word for row in WordIndex.brute_force(emb).neighbors(word, k)]


def _layout_labels(ax, fig, points: np.ndarray, labels: list[str], colors: list[str]) -> None:
    """Label every point, trying 8 offsets and keeping the first that overlaps no placed label."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # The markers are obstacles too (a 7-pixel square around each point).
    pixels = ax.transData.transform(points)
    placed: list[Bbox] = [Bbox.from_extents(px - 3.5, py - 3.5, px + 3.5, py + 3.5) for px, py in pixels]
    offsets = [(5, 4), (5, -11), (-5, 4), (-5, -11), (0, 9), (0, -15), (9, -3), (-9, -3)]
    for (x, y), label, color in zip(points, labels, colors):
        best = None
        for dx, dy in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9,
                               color=color, ha="left" if dx >= 0 else "right", va="bottom")
            box = text.get_window_extent(renderer)
            overlap = sum(max(0.0, min(box.x1, b.x1) - max(box.x0, b.x0))
                          * max(0.0, min(box.y1, b.y1) - max(box.y0, b.y0)) for b in placed)
            inside = (max(0.0, min(box.x1, frame.x1) - max(box.x0, frame.x0))
                      * max(0.0, min(box.y1, frame.y1) - max(box.y0, frame.y0)))
            overlap += box.width * box.height - inside  # the part cut off by the frame
            if best is None or overlap < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlap, text, box)
            else:
                text.remove()
            if overlap == 0:
                break
        assert best is not None
        placed.append(best[2])


def plot_words(
    emb: Embeddings,
    out: str | os.PathLike,
    *,
    words: Sequence[str] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
    analogies: Sequence[Sequence[str]] = (),
    neighbors: str | None = None,
    k: int = 10,
    fit_on: str = "selected",
    fit_top: int = DEFAULT_FIT_TOP,
    model_name: str | None = None,
    random_state: int = RANDOM_STATE,
) -> PlotResult:
    """Draw the given words in 2-D and write `out` (.png or .svg); see the module docstring.

    Words not in the vocabulary are skipped and listed in `missing`; if nothing
    is left to draw, `ValueError`. `analogies` are (a, b, c, d) tuples drawn as
    arrows a -> b and c -> d (the parallelogram of "a is to b as c is to d").
    """
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"output {out} must end in .png or .svg")
    if fit_on not in FIT_ON:
        raise ValueError(f"fit_on must be one of {', '.join(FIT_ON)}, got {fit_on!r}")
    if len(emb) == 0:
        raise ValueError("the model has no vectors")
    if emb.dim < 2:
        raise ValueError("a 2-D map needs vectors with at least 2 dimensions")

    wanted: dict[str, list[str]] = {}
    if words:
        wanted["words"] = list(words)
    for name, members in (groups or {}).items():
        wanted.setdefault(str(name), []).extend(members)
    for quad in analogies:
        if len(quad) != 4:
            raise ValueError(f"an analogy needs 4 words a,b,c,d; got {','.join(quad)!r}")
        wanted.setdefault(f"{quad[0]}:{quad[1]} :: {quad[2]}:{quad[3]}", []).extend(quad)
    if neighbors is not None:
        wanted[neighbors] = [neighbors]
        if neighbors in emb:
            wanted[f"{k} nearest"] = neighbours(emb, neighbors, k)
    if not wanted:
        raise ValueError("nothing to plot: give words, groups, analogies or a word for neighbours")

    missing: list[str] = []
    kept: dict[str, list[str]] = {}
    placed: set[str] = set()
    for name, members in wanted.items():
        for word in members:
            if word not in emb:
                if word not in missing:
                    missing.append(word)
            elif word not in placed:
                placed.add(word)
                kept.setdefault(name, []).append(word)
    if not placed:
        raise ValueError(f"none of the words to plot is in the vocabulary (missing: {', '.join(missing[:20])})")

    order = [w for members in kept.values() for w in members]
    unit = emb.normalized
    selected = unit[[emb.index_of(w) for w in order]]
    if fit_on == "selected":
        if len(order) < 2:
            raise ValueError("fitting the 2-D map on the selected words needs at least 2 words in the "
                             "vocabulary (or use fit_on='vocab')")
        fit_data = selected
    else:
        if fit_top < 2:
            raise ValueError(f"fit_top must be >= 2, got {fit_top}")
        fit_data = unit[: min(fit_top, len(emb))]
    projection = project_2d(selected, fit_data, random_state)  # the web explorer's map too
    points, variance = projection.points, projection.explained_variance
    coords = {w: (float(x), float(y)) for w, (x, y) in zip(order, points)}

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "wordspace"}):
        fig = Figure(figsize=(8, 7), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        colors: list[str] = []
        for gi, (name, members) in enumerate(kept.items()):
            color = _COLORS[gi % len(_COLORS)]
            xy = np.asarray([coords[w] for w in members])
            marker = "*" if neighbors is not None and name == neighbors else "o"
            ax.scatter(xy[:, 0], xy[:, 1], s=90 if marker == "*" else 28, color=color, marker=marker,
                       label=name, zorder=3)
        for w in order:
            group = next(i for i, members in enumerate(kept.values()) if w in members)
            colors.append(_COLORS[group % len(_COLORS)])
        for quad in analogies:
            for start, end in ((quad[0], quad[1]), (quad[2], quad[3])):
                if start in coords and end in coords:
                    ax.annotate("", xy=coords[end], xytext=coords[start], zorder=2,
                                arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1.3})
        ax.set_aspect("equal", adjustable="datalim")
        ax.margins(0.12)
        ax.grid(True, alpha=0.25)
        if len(kept) > 1:
            ax.legend(loc="best", fontsize=8, framealpha=0.8)
        fit_text = (f"fit on the {len(order)} words shown" if fit_on == "selected"
                    else f"fit on the top {len(fit_data)} words")
        title = (f"{model_name or emb.meta.get('method', 'model')}: TruncatedSVD to 2-D ({fit_text}); "
                 f"explained variance {100 * variance[0]:.1f}% + {100 * variance[1]:.1f}%")
        ax.set_title(title, fontsize=10, wrap=True)
        ax.set_xlabel("SVD component 1")
        ax.set_ylabel("SVD component 2")
        fig.tight_layout()
        fig.canvas.draw()  # fixes the equal-aspect limits before labels are measured
        _layout_labels(ax, fig, points, order, colors)
        out.parent.mkdir(parents=True, exist_ok=True)
        # No date in the file: the same words give the same bytes.
        metadata = {"Date": None} if fmt == "svg" else {}
        atomic_write(out, lambda handle: fig.savefig(handle, format=fmt, metadata=metadata))
    return PlotResult(out, kept, missing, variance, title, coords)  # type: ignore[arg-type]
