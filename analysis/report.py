"""Model comparison: every model on Google analogies (3CosAdd, 3CosMul), WordSim353 and
SimLex-999 under the same settings; `report.md` (a table), `report.json` and a
grouped bar chart `report.png`.

Results are stored in each model's meta.json under "evaluation" (the API shows
them) and re-used when a later run asks for the same dataset and settings; a
retrained model is a new version with a fresh meta.json, so stale scores are
never re-used. A model that fails to load or evaluate is reported, not fatal.

The comparison restricts the analogy and similarity vocabulary to the same
default as `wordspace evaluate`: gensim's 300,000 most frequent words (the
whole vocabulary of any model smaller than that), so a score in the report is
the score `evaluate` gives. Coverage is reported with every score and a score
on less than half of its dataset is flagged (`LOW_COVERAGE`): it is measured
on another, usually more frequent and easier, subset. `common=True` scores
every model on only the questions and pairs that all of them cover, the one
fair side-by-side.
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

from .analogy import DEFAULT_EPS, DEFAULT_RESTRICT, evaluate_analogies, lexicon
from .datasets import (LOW_COVERAGE, MIN_PAIRS, AnalogyDataset, WordPairDataset, coverage_warning, read_analogies,
                       read_word_pairs)
from .similarity import evaluate_word_pairs

#: The same default as `evaluate` (gensim's), so a model's score reads the same in both.
COMPARE_RESTRICT = DEFAULT_RESTRICT
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

    def warnings(self) -> list[str]:
        """One line per score that should not be read at face value (low coverage, too few pairs)."""
        out = []
        for key, summary in self.scores.items():
            items = "questions" if key.startswith("analogy/") else "pairs"
            warning = coverage_warning(items, summary.get("seen", 0), summary.get("total", 0))
            if warning:
                out.append(f"{self.name}: {key}: {warning}")
            if items == "pairs" and summary.get("seen", 0) < MIN_PAIRS:
                out.append(f"{self.name}: {key}: only {summary.get('seen', 0)} usable pairs (fewer than "
                           f"{MIN_PAIRS}): a Spearman correlation on so few pairs is meaningless")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "dim": self.dim, "vocab": self.vocab,
                "train_seconds": self.train_seconds, "error": self.error, "errors": self.errors,
                "evaluation": self.scores, "warnings": self.warnings(), "seconds": round(self.seconds, 3)}


def low_coverage(summary: dict[str, Any] | None) -> bool:
    """Whether a stored summary's score was measured on less than LOW_COVERAGE of its dataset."""
    return summary is not None and summary.get("total", 0) > 0 and summary.get("coverage", 1.0) < LOW_COVERAGE


def _matches(stored: Any, dataset: str, settings: dict[str, Any]) -> bool:
    return (isinstance(stored, dict) and stored.get("dataset") == dataset
            and stored.get("settings", {}) == {**stored.get("settings", {}), **settings})


def evaluate_model(emb: Embeddings, stored: dict[str, Any], restrict_vocab: int = COMPARE_RESTRICT,
                   case_insensitive: bool = True, eps: float = DEFAULT_EPS, reuse: bool = True,
                   log: Callable[[str], None] = lambda _: None,
                   common: "CommonItems | None" = None) -> tuple[dict[str, dict], dict[str, str], dict[str, dict]]:
    """Run the four evaluations on `emb` (re-using matching `stored` results).

    With `common`, only its questions and pairs are scored, nothing stored is re-used and
    nothing is returned to store (a score on a subset must not pass for the full one).
    Returns (summaries by key, errors by key, the new summaries to store).
    """
    if common is not None:
        reuse = False
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
            questions = questions or (common.questions if common is not None else read_analogies("google"))
            started = time.perf_counter()
            report = evaluate_analogies(view, questions, method=method, restrict_vocab=restrict_vocab,
                                        case_insensitive=case_insensitive, eps=eps)
            scores[key] = fresh[key] = stamp(report.to_dict())
            if common is not None:
                scores[key]["common"] = common.summary("questions")
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
            pairs = common.pairs[dataset] if common is not None else read_word_pairs(dataset)
            report = evaluate_word_pairs(view, pairs, restrict_vocab=restrict_vocab,
                                         case_insensitive=case_insensitive)
            scores[key] = fresh[key] = stamp(similarity_summary(report))
            if common is not None:
                scores[key]["common"] = common.summary(dataset)
            log(f"{key}: Spearman {report.spearman} on {report.seen}/{report.total} pairs")
        except (ValueError, FileNotFoundError) as exc:
            errors[key] = str(exc)
    return scores, errors, ({} if common is not None else fresh)


# -- the common subset ---------------------------------------------------------------
@dataclass(frozen=True)
class CommonItems:
    """The Google questions and the word pairs that every compared model covers."""

    questions: AnalogyDataset
    pairs: dict[str, WordPairDataset]
    totals: dict[str, int]  # "questions" / dataset name -> size of the full dataset

    def summary(self, name: str) -> dict[str, int]:
        """{"items": common items, "of": full dataset} for `name` ("questions" or a pair set)."""
        kept = len(self.questions) if name == "questions" else len(self.pairs[name])
        return {"items": kept, "of": self.totals[name]}


def covered_words(emb: Embeddings, words: set[str], restrict_vocab: int, case_insensitive: bool) -> set[str]:
    """The words of `words` that an evaluation of `emb` finds (its rule: restriction, case)."""
    lex = lexicon(emb, min(restrict_vocab, len(emb)), case_insensitive, words)
    return {word for word in words if lex.key(word) in lex.first}


def common_items(models: Sequence[Embeddings], restrict_vocab: int = COMPARE_RESTRICT,
                 case_insensitive: bool = True) -> CommonItems:
    """The Google questions and WS353/SimLex pairs whose words every one of `models` covers."""
    questions = read_analogies("google")
    pair_sets = {name: read_word_pairs(name) for name in SIMILARITY_SETS}
    words = {w for q in questions.questions for w in (q.a, q.b, q.c, q.expected)}
    words |= {w for d in pair_sets.values() for p in d.pairs for w in (p.word1, p.word2)}
    known = set(words)
    for emb in models:
        known &= covered_words(emb, known, restrict_vocab, case_insensitive)
    kept = tuple(q for q in questions.questions if {q.a, q.b, q.c, q.expected} <= known)
    common_questions = AnalogyDataset(questions.name, tuple(dict.fromkeys(q.section for q in kept)), kept)
    pairs = {name: WordPairDataset(d.name, tuple(p for p in d.pairs if {p.word1, p.word2} <= known), d.notes)
             for name, d in pair_sets.items()}
    totals = {"questions": len(questions), **{name: len(d) for name, d in pair_sets.items()}}
    return CommonItems(common_questions, pairs, totals)


def compare_models(models_dir: str | os.PathLike, names: Sequence[str] | None = None,
                   restrict_vocab: int = COMPARE_RESTRICT, case_insensitive: bool = True,
                   eps: float = DEFAULT_EPS, reuse: bool = True, save: bool = True,
                   log: Callable[[str], None] | None = None, common: bool = False) -> list[ModelScores]:
    """Evaluate every model (default: all in `models_dir`); failures become rows with `error`.

    With `common`, every model that loads is scored on the questions and pairs that all of them
    cover (see `common_items`); those scores are not stored in meta.json."""
    if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, int) or restrict_vocab <= 0:
        raise ValueError(f"restrict_vocab must be a positive integer, got {restrict_vocab!r}")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if names is None or len(names) == 0:
        infos = store.list_models(models_dir)
        names = [info.name for info in infos]
        if not names:
            raise ValueError(f"no models in {models_dir}")
    rows: list[ModelScores] = []
    loaded: list[tuple[ModelScores, Embeddings, ModelMeta, float]] = []
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
        loaded.append((row, emb, record, time.perf_counter() - started))
    shared = None
    if common and loaded:
        shared = common_items([emb for _row, emb, _record, _s in loaded], restrict_vocab, case_insensitive)
        log(f"common to {len(loaded)} models: {len(shared.questions)}/{shared.totals['questions']} Google "
            "questions, " + ", ".join(f"{len(shared.pairs[d])}/{shared.totals[d]} {d} pairs" for d in SIMILARITY_SETS))
    for row, emb, record, load_seconds in loaded:
        started = time.perf_counter() - load_seconds
        name = row.name
        row.scores, row.errors, fresh = evaluate_model(
            emb, record.evaluation, restrict_vocab, case_insensitive, eps, reuse,
            log=lambda message, name=name: log(f"{name}: {message}"), common=shared)
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


LOW_MARK = "⚠"


def _common_note(rows: Sequence[ModelScores]) -> str | None:
    """The footnote of a `common` comparison: how many items every model was scored on."""
    for row in rows:
        google = row.scores.get(analogy_key("google", "3cosadd"))
        if google and "common" in google:
            parts = [f"{google['common']['items']:,}/{google['common']['of']:,} Google questions"]
            for dataset in SIMILARITY_SETS:
                summary = row.scores.get(similarity_key(dataset))
                if summary and "common" in summary:
                    parts.append(f"{summary['common']['items']}/{summary['common']['of']} {dataset} pairs")
            return ("Common subset (--common): every model is scored on the items all of them cover: "
                    + ", ".join(parts) + ".")
    return None


def _cell(summary: dict[str, Any] | None, value: str) -> str:
    if summary is None:
        return "-"
    mark = f" {LOW_MARK}" if low_coverage(summary) else ""
    return f"{value} ({summary['seen']}/{summary['total']}, {_fmt(summary.get('coverage'), True)}){mark}"


def markdown_table(rows: Sequence[ModelScores], restrict_vocab: int = COMPARE_RESTRICT) -> str:
    """The comparison as a markdown table (one row per model); low-coverage scores are marked."""
    head = ("| model | method | dim | vocab | analogy coverage | 3CosAdd | 3CosMul | WS353 ρ (pairs, coverage) "
            "| SimLex ρ (pairs, coverage) | train time |")
    lines = [head, "|" + "---|" * 10]
    flagged = False
    for row in rows:
        if row.error is not None:
            lines.append(f"| {row.name} | {row.method or '-'} | {row.dim or '-'} | {row.vocab or '-'} "
                         f"| failed: {row.error.replace('|', '/')} | | | | | |")
            continue
        google = row.scores.get(analogy_key("google", "3cosadd")) or row.scores.get(analogy_key("google", "3cosmul"))
        coverage = "-" if google is None else f"{google['seen']}/{google['total']} ({_fmt(google['coverage'], True)})"
        if low_coverage(google):
            coverage += f" {LOW_MARK}"
        cells = [row.name, row.method or "-", str(row.dim), str(row.vocab), coverage,
                 _fmt(row.value(analogy_key("google", "3cosadd")), True),
                 _fmt(row.value(analogy_key("google", "3cosmul")), True)]
        for dataset in SIMILARITY_SETS:
            summary = row.scores.get(similarity_key(dataset))
            cells.append(_cell(summary, _fmt(None if summary is None else summary.get("spearman"))))
        flagged = flagged or any(low_coverage(summary) for summary in row.scores.values())
        cells.append(_duration(row.train_seconds))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Google analogies (19,544 questions) and word pairs restricted to each model's "
                 f"{restrict_vocab:,} most frequent words, case-insensitive (gensim's rule); 3CosMul eps "
                 f"{DEFAULT_EPS:g}; accuracy over the questions seen (coverage = seen/total).")
    if flagged:
        lines.append(f"\n**{LOW_MARK} = coverage under {100 * LOW_COVERAGE:.0f}%**: that score is measured on a "
                     "subset of the dataset (mostly its frequent words) and is not comparable with the others; "
                     "`wordspace compare --common` scores every model on the items all of them cover.")
    note = _common_note(rows)
    if note:
        lines.append("\n" + note)
    return "\n".join(lines)


def bar_chart(rows: Sequence[ModelScores], out: str | os.PathLike) -> Path:
    """Write `bar_figure(rows)` as a PNG file."""
    out = Path(out)
    fig = bar_figure(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda handle: fig.savefig(handle, format="png"))
    return out


def bar_figure(rows: Sequence[ModelScores]):
    """A grouped bar chart (one group per model, one bar per metric): each bar carries its value on
    top and its coverage at its foot; low-coverage bars are hatched and marked."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ok = [row for row in rows if row.error is None]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig = Figure(figsize=(max(7.0, 2.0 * len(ok) + 2), 5.2), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / len(METRICS)
        x = np.arange(len(ok))
        colors = ("#1f77b4", "#aec7e8", "#d62728", "#ff9896")
        for i, (label, key) in enumerate(METRICS):
            values = [row.value(key) for row in ok]
            heights = [0.0 if v is None else v for v in values]
            bars = ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=label, color=colors[i])
            for bar, value, row in zip(bars, values, ok):
                middle = bar.get_x() + bar.get_width() / 2
                if value is None:
                    ax.annotate("n/a", (middle, 0), ha="center", va="bottom", fontsize=7, rotation=90)
                    continue
                summary = row.scores.get(key, {})
                low = low_coverage(summary)
                if low:
                    bar.set_hatch("///")
                    bar.set_edgecolor("black")
                ax.annotate(f"{value:.2f}", (middle, max(value, 0.0)), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=6.5, rotation=90)
                coverage = summary.get("coverage")
                if coverage is not None:  # under the axis, below its bar
                    ax.annotate(f"cov {100 * coverage:.0f}%" + (f" {LOW_MARK}" if low else ""), (middle, 0),
                                xycoords=("data", "axes fraction"), xytext=(0, -3), textcoords="offset points",
                                ha="center", va="top", fontsize=6, rotation=90,
                                color="#b00000" if low else "#444444")
        ax.set_xticks(x, [row.name for row in ok], rotation=20 if len(ok) > 4 else 0)
        ax.tick_params(axis="x", pad=38)
        ax.set_ylabel("accuracy / Spearman ρ")
        ax.set_ylim(min(0.0, *[row.value(k) or 0.0 for row in ok for _, k in METRICS]) - 0.02, 1.05)
        ax.axhline(0, color="black", lw=0.6)
        ax.legend(handles=[Patch(color=colors[i], label=label) for i, (label, _key) in enumerate(METRICS)],
                  fontsize=8, ncols=2, loc="upper right")
        title = "wordspace model comparison (Google analogies, WordSim353, SimLex-999)"
        if _common_note(rows):
            title += "\non the questions and pairs every model covers (--common)"
        ax.set_title(title, fontsize=10)
        if any(low_coverage(s) for row in ok for s in row.scores.values()):
            fig.text(0.01, 0.01, f"hatched {LOW_MARK}: coverage under {100 * LOW_COVERAGE:.0f}%, not comparable",
                     fontsize=7, color="#b00000")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
    return fig


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
