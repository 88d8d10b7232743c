"""Analysis speed against gensim, side by side in one run, on GloVe 6B 50-d (400k words).

Google analogies (19,544 questions, restrict_vocab 300,000, case-insensitive):
gensim's `evaluate_word_analogies` vs our blocked `evaluate_analogies` (3CosAdd),
with identical accuracy and per-section counts asserted; our 3CosMul and our
rank computation timed too, and 3CosMul checked question by question against
gensim's `most_similar_cosmul` (eps 1e-6) on a sample. WordSim353 and
SimLex-999: gensim's `evaluate_word_pairs` vs ours, equal to 1e-9.

Run: .venv/bin/python benchmarks/bench_analysis.py [--cosmul-sample N]
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from analysis.analogy import evaluate_analogies  # noqa: E402
from analysis.datasets import read_analogies, read_word_pairs  # noqa: E402
from analysis.similarity import evaluate_word_pairs  # noqa: E402
from embeddings.datasets import benchmark_path  # noqa: E402
from embeddings.formats import import_glove_6b_50d  # noqa: E402
from embeddings.training import cpu_count  # noqa: E402
from embeddings.vectors import Embeddings  # noqa: E402

RESTRICT = 300_000


def keyed_vectors(emb: Embeddings):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(emb.dim, dtype=np.float32)
    kv.add_vectors(list(emb.words), np.asarray(emb.vectors, dtype=np.float32))
    return kv


CPU: dict[str, float] = {}


def timed(fn, label: str | None = None):
    """(result, wall seconds); the process CPU seconds (all threads) go to CPU[label]."""
    cpu = time.process_time()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    if label:
        CPU[label] = time.process_time() - cpu
    return result, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cosmul-sample", type=int, default=300,
                        help="questions checked one by one against most_similar_cosmul (default 300)")
    args = parser.parse_args()
    logging.getLogger("gensim").setLevel(logging.WARNING)

    glove, load_s = timed(import_glove_6b_50d)
    kv = keyed_vectors(glove)
    google = benchmark_path("google")
    questions = read_analogies("google")
    rows = []

    # A fresh Embeddings for the cold run: its normalized matrix and case map are built inside the timing.
    cold = Embeddings(glove.words, glove.vectors)
    ours_cold, ours_cold_s = timed(lambda: evaluate_analogies(cold, questions, restrict_vocab=RESTRICT))
    ours, ours_s = timed(lambda: evaluate_analogies(glove, questions, restrict_vocab=RESTRICT), "ours")
    (g_score, g_sections), gensim_s = timed(
        lambda: kv.evaluate_word_analogies(str(google), restrict_vocab=RESTRICT), "gensim")
    ours2, ours2_s = timed(lambda: evaluate_analogies(glove, questions, restrict_vocab=RESTRICT), "ours2")
    g_counts = {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in g_sections}
    o_counts = {s.name: (s.correct, s.seen) for s in ours.sections}
    o_counts["Total accuracy"] = (ours.total.correct, ours.total.seen)
    same = g_counts == o_counts and ours.accuracy == g_score
    assert same, f"accuracy differs: gensim {g_score} {g_counts} vs ours {ours.accuracy} {o_counts}"
    assert ours_cold.sections == ours.sections == ours2.sections
    best = min(ours_s, ours2_s)
    rows.append(("Google analogies, 3CosAdd (19,544 q, restrict 300k)", f"{gensim_s:.1f} s",
                 f"{best:.2f} s (cold {ours_cold_s:.2f} s)", f"{gensim_s / best:.0f}x (cold {gensim_s / ours_cold_s:.0f}x)",
                 f"identical: {ours.total.correct}/{ours.total.seen} = {100 * ours.accuracy:.2f}%, "
                 f"{ours.exact_path_questions} near-ties re-decided exactly; CPU time {CPU['gensim']:.0f} s "
                 f"vs {min(CPU['ours'], CPU['ours2']):.1f} s ({CPU['gensim'] / min(CPU['ours'], CPU['ours2']):.0f}x)"))

    ranked, ranked_s = timed(lambda: evaluate_analogies(glove, questions, restrict_vocab=RESTRICT, ranks=True))
    assert ranked.sections == ours.sections
    rows.append(("  same, with the rank of every expected word", "-", f"{ranked_s:.2f} s", "-",
                 f"median rank of wrong answers {int(np.median([q.rank for q in ranked.details if q.rank and q.rank > 1]))}"))

    cosmul, cosmul_s = timed(lambda: evaluate_analogies(glove, questions, method="3cosmul",
                                                         restrict_vocab=RESTRICT, eps=1e-6))
    # gensim's most_similar_cosmul ignores restrict_vocab and has no case folding: compare on
    # the whole vocabulary with exact case, question by question, on a sample.
    full, _ = timed(lambda: evaluate_analogies(glove, questions, method="3cosmul", restrict_vocab=len(glove),
                                                case_insensitive=False, eps=1e-6))
    seen = [q for q in full.details if q.seen]
    step = max(1, len(seen) // max(1, args.cosmul_sample))
    sample = seen[::step][: args.cosmul_sample]
    start = time.perf_counter()
    agree = 0
    for q in sample:
        top = kv.most_similar_cosmul(positive=[q.b, q.c], negative=[q.a], topn=1)
        agree += top[0][0] == q.predicted
    per_q = (time.perf_counter() - start) / max(1, len(sample))
    assert agree == len(sample), f"3CosMul differs from gensim on {len(sample) - agree} of {len(sample)}"
    rows.append(("Google analogies, 3CosMul (eps 1e-6)", f"~{per_q * len(full.details):.0f} s (est.)",
                 f"{cosmul_s:.2f} s", f"~{per_q * len(full.details) / cosmul_s:.0f}x",
                 f"{100 * cosmul.accuracy:.2f}% at restrict 300k; predictions equal gensim on "
                 f"{agree}/{len(sample)} sampled questions (full vocabulary, exact case)"))

    for name in ("ws353", "simlex999"):
        pairs = read_word_pairs(name)
        fresh = Embeddings(glove.words, glove.vectors)
        mine, mine_s = timed(lambda: evaluate_word_pairs(fresh, pairs, restrict_vocab=RESTRICT))
        warm, warm_s = timed(lambda: evaluate_word_pairs(fresh, pairs, restrict_vocab=RESTRICT))
        (pearson, spearman, oov), theirs_s = timed(
            lambda: kv.evaluate_word_pairs(str(benchmark_path(name)), restrict_vocab=RESTRICT))
        diff = max(abs(spearman.statistic - mine.spearman), abs(pearson.statistic - mine.pearson))
        assert diff <= 1e-9, diff
        rows.append((f"{name} word pairs ({mine.total})", f"{theirs_s * 1e3:.0f} ms",
                     f"{mine_s * 1e3:.0f} ms (warm {warm_s * 1e3:.1f} ms)", f"{theirs_s / mine_s:.1f}x",
                     f"Spearman {mine.spearman:.4f}, Pearson {mine.pearson:.4f}, |diff| {diff:.0e}, "
                     f"OOV {mine.oov} ({oov:.1f}%)"))

    load = os.getloadavg()[0]
    print(f"GloVe 6B 50-d: {len(glove)} words x {glove.dim} (imported in {load_s:.1f} s); "
          f"{cpu_count()} cores, load average {load:.1f} at the end; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| task | gensim 4.4 | wordspace | speed-up | result |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
