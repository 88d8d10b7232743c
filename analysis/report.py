"""Model comparison: every model on Google analogies (3CosAdd, 3CosMul), WordSim353 and
SimLex-999 under the same settings; `report.md` (a table), `report.json` and a
grouped bar chart `report.png`.

Results are stored in each model's meta.json under "evaluation" (the API shows
them) and re-used when a later run asks for the same dataset and settings; a
retrained model is a new version with a fresh meta.json, so stale scores are
never re-used. A model that fails to load or evaluate is reported, not fatal.

The comparison restricts the analogy and similarity vocabulary to the 30,000
most frequent words by default, as word2vec's compute-accuracy does: it is the
same for every model, keeps GloVe's 400k words to a few seconds, and the
`evaluate` commands use gensim's 300,000 when asked for one model.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from embeddings import store
from embeddings.atomic import atomic_write, atomic_write_json
from embeddings.metadata import ModelMeta
from embeddings.vectors import Embeddings

from .analogy import DEFAULT_EPS, evaluate_analogies
from .datasets import read_analogies, read_word_pairs
from .similarity import evaluate_word_pairs

COMPARE_RESTRICT = 30_000
ANALOGY_METHODS = ("3cosadd", "3cosmul")
SIMILARITY_SETS = ("ws353", "simlex999")
#: (column title, key in ModelScores.scores) of the bar chart and table.
METRICS = (("3CosAdd acc.", "analogy/google/3cosadd"), ("3CosMul acc.", "analogy/google/3cosmul"),
           ("WS353 Spearman", "similarity/ws353"), ("SimLex Spearman", "similarity/simlex999"))


def analogy_key(dataset: str, method: str) -> str:
    """The key of an analogy result in meta.json's "evaluation"."""
    return f"analogy/{dataset}/{method}"


def similarity_key(dataset: str) -> str:
    """The key of a word-similarity result in meta.json's "evaluation"."""
    return f"similarity/{dataset}"


def stamp(summary: dict[str, Any]) -> dict[str, Any]:
    """`summary` plus the time it was computed, ready for meta.json."""
    return {**summary, "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def similarity_summary(report) -> dict[str, Any]:
    """A word-similarity result for meta.json (the OOV pairs are counted, not listed)."""
    summary = report.to_dict()
    summary.pop("oov_pairs", None)
    return summary


@dataclass
class ModelScores:
    """One row of the comparison: the model's facts and a summary per evaluation."""

    name: str
    method: str | None = None
    dim: int | None = None
    vocab: int | None = None
    train_seconds: float | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def value(self, key: str) -> float | None:
        """The headline number of one evaluation: accuracy or Spearman's rho."""
        summary = self.scores.get(key)
        if summary is None:
            return None
        return summary.get("accuracy") if key.startswith("analogy/") else summary.get("spearman")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "dim": self.dim, "vocab": self.vocab,
                "train_seconds": self.train_seconds, "error": self.error, "errors": self.errors,
                "evaluation": self.scores, "seconds": round(self.seconds, 3)}


def _matches(stored: Any, dataset: str, settings: dict[str, Any]) -> bool:
    return (isinstance(stored, dict) and stored.get("dataset") == dataset
            and stored.get("settings", {}) == {**stored.get("settings", {}), **settings})


def evaluate_model(emb: Embeddings, stored: dict[str, Any], restrict_vocab: int = COMPARE_RESTRICT,
                   case_insensitive: bool = True, eps: float = DEFAULT_EPS, reuse: bool = True,
                   log: Callable[[str], None] = lambda _: None) -> tuple[dict[str, dict], dict[str, str], dict[str, dict]]:
    """Run the four evaluations on `emb` (re-using matching `stored` results).

    Returns (summaries by key, errors by key, the new summaries to store).
    """
    # The first `restrict_vocab` rows are all any evaluation looks at: normalise only those.
    view = emb if len(emb) <= restrict_vocab else emb.subset(restrict_vocab)
    scores: dict[str, dict] = {}
    errors: dict[str, str] = {}
    fresh: dict[str, dict] = {}
    questions = None
    for method in ANALOGY_METHODS:
        key = analogy_key("google", method)
        settings = {"restrict_vocab": restrict_vocab, "case_insensitive": case_insensitive,
                    "include_inputs": False, "eps": eps if method == "3cosmul" else None}
        if reuse and _matches(stored.get(key), "google", settings):
            scores[key] = stored[key]
            continue
        try:
            questions = questions or read_analogies("google")
            started = time.perf_counter()
            report = evaluate_analogies(view, questions, method=method, restrict_vocab=restrict_vocab,
                                        case_insensitive=case_insensitive, eps=eps)
            scores[key] = fresh[key] = stamp(report.to_dict())
            log(f"{key}: {report.total.correct}/{report.total.seen} in {time.perf_counter() - started:.1f} s")
        except (ValueError, FileNotFoundError) as exc:
            errors[key] = str(exc)
    for dataset in SIMILARITY_SETS:
        key = similarity_key(dataset)
        settings = {"restrict_vocab": restrict_vocab, "case_insensitive": case_insensitive}
        if reuse and _matches(stored.get(key), dataset, settings):
            scores[key] = stored[key]
            continue
        try:
            report = evaluate_word_pairs(view, read_word_pairs(dataset), restrict_vocab=restrict_vocab,
                                         case_insensitive=case_insensitive)
            scores[key] = fresh[key] = stamp(similarity_summary(report))
            log(f"{key}: Spearman {report.spearman} on {report.seen}/{report.total} pairs")
        except (ValueError, FileNotFoundError) as exc:
            errors[key] = str(exc)
    return scores, errors, fresh


def compare_models(models_dir: str | os.PathLike, names: Sequence[str] | None = None,
                   restrict_vocab: int = COMPARE_RESTRICT, case_insensitive: bool = True,
                   eps: float = DEFAULT_EPS, reuse: bool = True, save: bool = True,
                   log: Callable[[str], None] | None = None) -> list[ModelScores]:
    """Evaluate every model (default: all in `models_dir`); failures become rows with `error`."""
    if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, int) or restrict_vocab <= 0:
        raise ValueError(f"restrict_vocab must be a positive integer, got {restrict_vocab!r}")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if names is None or len(names) == 0:
        infos = store.list_models(models_dir)
        names = [info.name for info in infos]
        if not names:
            raise ValueError(f"no models in {models_dir}")
    rows: list[ModelScores] = []
    for name in names:
        started = time.perf_counter()
        row = ModelScores(name)
        rows.append(row)
        try:
            emb = store.load_model(models_dir, name)
        except (store.ModelError, ValueError, KeyError, OSError) as exc:
            row.error = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            log(f"{name}: skipped, {row.error}")
            continue
        record = ModelMeta.from_dict(emb.meta)
        row.method, row.dim, row.vocab = record.method, emb.dim, len(emb)
        row.train_seconds = record.train_seconds
        if len(emb) == 0:
            row.error = "the model has no vectors"
            continue
        stored = record.evaluation
        row.scores, row.errors, fresh = evaluate_model(
            emb, stored, restrict_vocab, case_insensitive, eps, reuse,
            log=lambda message, name=name: log(f"{name}: {message}"))
        if save and fresh:
            try:
                store.update_meta(models_dir, name, {"evaluation": fresh})
            except (store.ModelError, OSError) as exc:
                log(f"{name}: results not stored in meta.json ({exc})")
        row.seconds = time.perf_counter() - started
    return rows


# -- output -----------------------------------------------------------------------
def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def markdown_table(rows: Sequence[ModelScores], restrict_vocab: int = COMPARE_RESTRICT) -> str:
    """The comparison as a markdown table (one row per model)."""
    head = ("| model | method | dim | vocab | analogy coverage | 3CosAdd | 3CosMul | WS353 ρ (pairs) "
            "| SimLex ρ (pairs) | train time |")
    lines = [head, "|" + "---|" * 10]
    for row in rows:
        if row.error is not None:
            lines.append(f"| {row.name} | {row.method or '-'} | {row.dim or '-'} | {row.vocab or '-'} "
                         f"| failed: {row.error.replace('|', '/')} | | | | | |")
            continue
        google = row.scores.get(analogy_key("google", "3cosadd")) or row.scores.get(analogy_key("google", "3cosmul"))
        coverage = "-" if google is None else f"{google['seen']}/{google['total']} ({_fmt(google['coverage'], True)})"
        cells = [row.name, row.method or "-", str(row.dim), str(row.vocab), coverage,
                 _fmt(row.value(analogy_key("google", "3cosadd")), True),
                 _fmt(row.value(analogy_key("google", "3cosmul")), True)]
        for dataset in SIMILARITY_SETS:
            summary = row.scores.get(similarity_key(dataset))
            cells.append("-" if summary is None else f"{_fmt(summary.get('spearman'))} ({summary['seen']}/{summary['total']})")
        cells.append(_duration(row.train_seconds))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Google analogies (19,544 questions) and word pairs restricted to each model's "
                 f"{restrict_vocab:,} most frequent words, case-insensitive (gensim's rule); 3CosMul eps "
                 f"{DEFAULT_EPS:g}; accuracy over the questions seen (coverage = seen/total).")
    return "\n".join(lines)


def bar_chart(rows: Sequence[ModelScores], out: str | os.PathLike) -> Path:
    """A grouped bar chart (one group per model, one bar per metric) as PNG."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [row for row in rows if row.error is None]
    out = Path(out)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig = Figure(figsize=(max(6.0, 1.6 * len(ok) + 2), 4.8), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / len(METRICS)
        x = np.arange(len(ok))
        colors = ("#1f77b4", "#aec7e8", "#d62728", "#ff9896")
        for i, (label, key) in enumerate(METRICS):
            values = [row.value(key) for row in ok]
            heights = [0.0 if v is None else v for v in values]
            bars = ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=label, color=colors[i])
            for bar, value in zip(bars, values):
                if value is None:
                    ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom",
                                fontsize=7, rotation=90)
        ax.set_xticks(x, [row.name for row in ok], rotation=20 if len(ok) > 4 else 0)
        ax.set_ylabel("accuracy / Spearman ρ")
        ax.set_ylim(min(0.0, *[row.value(k) or 0.0 for row in ok for _, k in METRICS]) - 0.02, 1.0)
        ax.axhline(0, color="black", lw=0.6)
        ax.legend(fontsize=8, ncols=2, loc="upper right")
        ax.set_title("wordspace model comparison (Google analogies, WordSim353, SimLex-999)", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, lambda handle: fig.savefig(handle, format="png"))
    return out


def write_report(rows: Sequence[ModelScores], out_dir: str | os.PathLike,
                 restrict_vocab: int = COMPARE_RESTRICT, case_insensitive: bool = True,
                 eps: float = DEFAULT_EPS) -> dict[str, Path]:
    """Write report.md, report.json and report.png into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, restrict_vocab)
    paths = {"md": out_dir / "report.md", "json": out_dir / "report.json", "png": out_dir / "report.png"}
    text = "# wordspace model comparison\n\n" + table + "\n\n![scores](report.png)\n"
    atomic_write(paths["md"], lambda handle: handle.write(text.encode("utf-8")))
    atomic_write_json(paths["json"], {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"restrict_vocab": restrict_vocab, "case_insensitive": case_insensitive, "eps": eps},
        "models": [row.to_dict() for row in rows],
    })
    if any(row.error is None for row in rows):
        bar_chart(rows, paths["png"])
    else:
        paths.pop("png")
    return paths
