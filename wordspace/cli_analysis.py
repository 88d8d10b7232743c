"""`wordspace evaluate analogy|similarity`, `wordspace plot` and `wordspace compare`.

Results go to stdout (a table, or one JSON document with `--json`); progress
and warnings go to stderr. Evaluation results are stored in the model's
meta.json under "evaluation" (shown by the API's GET /models/<name>).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from analysis.analogy import DEFAULT_EPS, DEFAULT_RESTRICT, METHODS, evaluate_analogies
from analysis.datasets import read_analogies, read_word_pairs
from analysis.plot import DEFAULT_FIT_TOP, FIT_ON, plot_words, read_groups
from analysis.report import (COMPARE_RESTRICT, analogy_key, compare_models, markdown_table, similarity_key,
                             similarity_summary, stamp, write_report)
from analysis.similarity import evaluate_word_pairs
from embeddings import store
from embeddings.atomic import atomic_write

from .cli_common import models_dir


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _load(args: argparse.Namespace):
    emb = store.load_model(models_dir(args), args.model)
    if len(emb) == 0:
        raise ValueError(f"model {args.model!r} has no vectors")
    return emb


def _warn_report(report) -> None:
    """Print a report's notes and warnings (low coverage, too few pairs) to stderr."""
    for note in getattr(report, "notes", ()):
        _err(f"wordspace: note: {note}")
    for warning in report.warnings:
        _err(f"wordspace: warning: {report.dataset}: {warning}")


def _store_results(args: argparse.Namespace, results: dict) -> None:
    try:
        store.update_meta(models_dir(args), args.model, {"evaluation": results})
    except (store.ModelError, OSError) as exc:
        _err(f"wordspace: warning: results not stored in meta.json ({exc})")


def _write_details(path: Path, reports) -> None:
    """CSV with one row per question and method: the prediction and the rank of the answer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "section", "line", "a", "b", "c", "expected", "seen", "predicted",
                     "correct", "rank"])
    for report in reports:
        for q in report.details:
            writer.writerow([report.method, q.section, q.line, q.a, q.b, q.c, q.expected, int(q.seen),
                             q.predicted or "", int(q.correct), "" if q.rank is None else q.rank])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))


def _cmd_analogy(args: argparse.Namespace) -> None:
    methods = list(METHODS) if args.method == "both" else [args.method]
    questions = read_analogies(args.dataset)
    emb = _load(args)
    reports = []
    for method in methods:
        _err(f"evaluating {args.model} on {questions.name} ({len(questions)} questions) with {method}, "
             f"restrict_vocab {args.restrict} ...")
        report = evaluate_analogies(emb, questions, method=method, restrict_vocab=args.restrict,
                                    case_insensitive=not args.case_sensitive,
                                    include_inputs=args.include_inputs, eps=args.eps,
                                    ranks=args.details is not None)
        _err(f"  done in {report.seconds:.2f} s")
        _warn_report(report)
        reports.append(report)
    if not args.no_save:
        _store_results(args, {analogy_key(r.dataset, r.method) + ("+inputs" if r.include_inputs else ""):
                              stamp(r.to_dict()) for r in reports})
    if args.details is not None:
        _write_details(args.details, reports)
        _err(f"wrote every question to {args.details}")
    if args.json:
        doc = {"model": args.model, "results": [r.to_dict() for r in reports]}
        print(json.dumps(doc, indent=2))
        return
    for report in reports:
        print(report.table())
        print()


def _cmd_similarity(args: argparse.Namespace) -> None:
    pairs = read_word_pairs(args.dataset)
    emb = _load(args)
    report = evaluate_word_pairs(emb, pairs, restrict_vocab=args.restrict,
                                 case_insensitive=not args.case_sensitive)
    _warn_report(report)
    if not args.no_save:
        _store_results(args, {similarity_key(report.dataset): stamp(similarity_summary(report))})
    if args.json:
        print(json.dumps({"model": args.model, "result": report.to_dict()}, indent=2))
        return
    print(report.table())
    if report.oov_pairs:
        shown = ", ".join(f"{a}/{b}" for a, b in report.oov_pairs[:10])
        print(f"skipped: {shown}" + (" ..." if len(report.oov_pairs) > 10 else ""))


def _cmd_plot(args: argparse.Namespace) -> None:
    words = [w for w in (args.words or "").split(",") if w]
    groups = read_groups(args.groups) if args.groups else None
    analogies = [tuple(a.split(",")) for a in (args.analogy or [])]
    emb = _load(args)
    result = plot_words(emb, args.out, words=words, groups=groups, analogies=analogies,
                        neighbors=args.neighbors, k=args.k, fit_on=args.fit_on, fit_top=args.fit_top,
                        model_name=args.model)
    if result.missing:
        _err(f"wordspace: warning: not in the vocabulary, left out: {', '.join(result.missing)}")
    count = sum(len(v) for v in result.groups.values())
    print(f"wrote {result.path}: {count} words, explained variance "
          f"{100 * result.explained_variance[0]:.1f}% + {100 * result.explained_variance[1]:.1f}%")


def _cmd_compare(args: argparse.Namespace) -> None:
    rows = compare_models(models_dir(args), args.names, restrict_vocab=args.restrict,
                          case_insensitive=not args.case_sensitive, eps=args.eps, reuse=not args.fresh,
                          log=_err, common=args.common)
    for row in rows:
        for warning in row.warnings():
            _err(f"wordspace: warning: {warning}")
    paths = write_report(rows, args.out, args.restrict, not args.case_sensitive, args.eps)
    if args.json:
        print(json.dumps({"models": [row.to_dict() for row in rows],
                          "files": {k: str(v) for k, v in paths.items()}}, indent=2))
    else:
        print(markdown_table(rows, args.restrict))
        print(f"\nwrote {', '.join(str(p) for p in paths.values())}")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace evaluate`, `wordspace plot` and `wordspace compare`."""
    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a model on analogies or word similarity",
        description="Evaluate a model on the Google analogies or on word-similarity judgements "
                    "(files that ship with gensim, or your own). Results are stored in meta.json.")
    tasks = evaluate.add_subparsers(dest="task", metavar="TASK", required=True)

    def shared(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="model name")
        p.add_argument("--restrict", type=_positive_int, default=DEFAULT_RESTRICT, metavar="N",
                       help=f"only the N most frequent words count (default: {DEFAULT_RESTRICT:,}, gensim's; "
                            "the same as `wordspace compare`)")
        p.add_argument("--case-sensitive", action="store_true",
                       help="match words exactly (default: upper-case both sides, gensim's rule; "
                            "the first, most frequent, case variant stands for the word)")
        p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
        p.add_argument("--no-save", action="store_true", help="do not store the result in meta.json")

    p = tasks.add_parser("analogy", parents=[common], help="Google-format analogies (3CosAdd, 3CosMul)",
                         description="Answer 'a is to b as c is to ?' for every question; report accuracy "
                                     "overall, per section and semantic vs syntactic, and coverage (questions "
                                     "whose four words are known).")
    shared(p)
    p.add_argument("--dataset", default="google", help="google (gensim's questions-words.txt) or a file "
                                                       "in that format (default: google)")
    p.add_argument("--method", choices=(*METHODS, "both"), default="3cosadd", help="default: 3cosadd")
    p.add_argument("--include-inputs", action="store_true",
                   help="let a, b, c be answers too (for study; the standard excludes them)")
    p.add_argument("--eps", type=_positive_float, default=DEFAULT_EPS,
                   help=f"3CosMul's epsilon (default {DEFAULT_EPS:g}, Levy & Goldberg; gensim uses 1e-6)")
    p.add_argument("--details", type=Path, metavar="FILE",
                   help="write every question (prediction, rank of the right answer) as CSV")
    p.set_defaults(func=_cmd_analogy)

    p = tasks.add_parser("similarity", parents=[common], help="word-pair similarity (Spearman, Pearson)",
                         description="Correlate the model's cosines with human similarity scores; pairs "
                                     "with an unknown word are skipped and counted.")
    shared(p)
    p.add_argument("--dataset", default="ws353", help="ws353, simlex999 or a 'word1<TAB>word2<TAB>score' "
                                                      "file (default: ws353)")
    p.set_defaults(func=_cmd_similarity)

    p = subparsers.add_parser(
        "plot", parents=[common], help="draw words in 2-D (TruncatedSVD)",
        description="Project word vectors to 2-D with TruncatedSVD (centred, random_state 0) and draw "
                    "them, labelled, to a PNG or SVG file. Give words, groups, analogies or a word "
                    "whose neighbours to draw (any combination). Unknown words are reported and skipped.")
    p.add_argument("model", help="model name")
    p.add_argument("-o", "--out", type=Path, required=True, help="output file (.png or .svg)")
    p.add_argument("--words", help="comma-separated words")
    p.add_argument("--groups", type=Path, metavar="FILE",
                   help="file of 'name: word word ...' lines; each group gets a colour")
    p.add_argument("--analogy", nargs="+", metavar="A,B,C,D",
                   help="analogies drawn as arrows A->B and C->D, e.g. italy,mussolini,germany,hitler")
    p.add_argument("--neighbors", metavar="WORD", help="draw WORD and its k nearest neighbours")
    p.add_argument("-k", type=_positive_int, default=10, help="neighbours to draw (default 10)")
    p.add_argument("--fit-on", choices=FIT_ON, default="selected",
                   help="fit the 2-D map on the words drawn (default, CS224n style) or on the "
                        "--fit-top most frequent words (a fixed map)")
    p.add_argument("--fit-top", type=_positive_int, default=DEFAULT_FIT_TOP, metavar="N",
                   help=f"words used by --fit-on vocab (default {DEFAULT_FIT_TOP})")
    p.set_defaults(func=_cmd_plot)

    p = subparsers.add_parser(
        "compare", parents=[common], help="compare models on analogies and word similarity",
        description="Evaluate every model (default: all in the models directory) on the Google analogies "
                    "(3CosAdd, 3CosMul), WordSim353 and SimLex-999 with the same settings; print the table "
                    "and write report.md, report.json and report.png. Stored results with the same settings "
                    "are re-used; a model that fails to load is reported and skipped. A score on under 50% "
                    "of its dataset is flagged; --common compares all models on their common items.")
    p.add_argument("names", nargs="*", metavar="MODEL", help="models to compare (default: all)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    p.add_argument("--restrict", type=_positive_int, default=COMPARE_RESTRICT, metavar="N",
                   help=f"the N most frequent words of each model (default {COMPARE_RESTRICT:,}, gensim's, "
                        "the same as `wordspace evaluate`)")
    p.add_argument("--case-sensitive", action="store_true", help="match words exactly")
    p.add_argument("--eps", type=_positive_float, default=DEFAULT_EPS, help="3CosMul's epsilon")
    p.add_argument("--fresh", action="store_true", help="recompute even when meta.json has the results")
    p.add_argument("--common", action="store_true",
                   help="score every model on only the questions and pairs that all of them cover (the fair "
                        "side-by-side; says how many); these scores are not stored in meta.json")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.set_defaults(func=_cmd_compare)
