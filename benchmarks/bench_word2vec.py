"""word2vec speed: our `wordspace train cbow|skipgram` end to end (raw text file
-> saved model, with loss tracking, epoch-end checkpoints and the atomic save)
versus `gensim.models.Word2Vec(corpus_file=...)` called directly on the same
prepared file, side by side in one run. Preparation is timed separately.

    .venv/bin/python benchmarks/bench_word2vec.py [--epochs 5] [--rounds 2]

Prints a markdown table; target: ours >= 0.95x gensim's words/s. Both wall
time and process CPU time (all threads) are measured: on a shared machine the
CPU-time rate is the steadier comparison, the wall-clock one shows contention.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wordspace.cli import common_parser  # noqa: E402
from embeddings.datasets import write_sample_corpus  # noqa: E402
from embeddings.training import as_prepared, cpu_count, peak_memory_mib  # noqa: E402
from wordspace.cli_word2vec import register  # noqa: E402


def wordspace_train(argv: list[str]) -> None:
    """Run `wordspace train ...` through our own subcommand only (the same handler `wordspace` calls),
    so the benchmark does not depend on the other trainer modules."""
    parser = argparse.ArgumentParser(prog="wordspace")
    train = parser.add_subparsers(dest="command").add_parser("train").add_subparsers(dest="family")
    register(train, common_parser())
    args = parser.parse_args(argv)
    args.func(args)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_gensim(corpus_file: str, sg: int, epochs: int, workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds for gensim's own build_vocab + train on the prepared file (same hyper-parameters)."""
    from gensim.models import Word2Vec

    wall, cpu = time.perf_counter(), _cpu()
    Word2Vec(corpus_file=corpus_file, sg=sg, hs=0, negative=5, vector_size=100, window=5, min_count=5,
             sample=1e-3, epochs=epochs, workers=workers, seed=1)
    return time.perf_counter() - wall, _cpu() - cpu


def run_ours(raw: Path, data: Path, models: Path, family: str, epochs: int, workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds for `wordspace train FAMILY` from the raw file to the saved model
    (the prepared corpus is re-used, as on every run after the first)."""
    wall, cpu = time.perf_counter(), _cpu()
    wordspace_train(["train", family, "--corpus", str(raw), "--name", family, "--epochs", str(epochs),
                     "--workers", str(workers), "--models", str(models), "--data", str(data), "--quiet",
                     "--overwrite"])
    return time.perf_counter() - wall, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions; the median is reported")
    args = parser.parse_args()
    workers = cpu_count()
    with tempfile.TemporaryDirectory(prefix="bench-w2v-") as tmp:
        tmp = Path(tmp)
        raw = write_sample_corpus(tmp / "sample.txt")
        began = time.perf_counter()
        prepared = as_prepared(raw, tmp / "data")
        prep_seconds = time.perf_counter() - began
        words = prepared.n_tokens * args.epochs
        rows = []
        for family, sg in (("cbow", 0), ("skipgram", 1)):
            ours, theirs = [], []
            for round_ in range(args.rounds):
                # Alternate who goes first, so drift on the shared machine hits both alike.
                if round_ % 2 == 0:
                    theirs.append(run_gensim(str(prepared.path), sg, args.epochs, workers))
                    ours.append(run_ours(raw, tmp / "data", tmp / "models", family, args.epochs, workers))
                else:
                    ours.append(run_ours(raw, tmp / "data", tmp / "models", family, args.epochs, workers))
                    theirs.append(run_gensim(str(prepared.path), sg, args.epochs, workers))
            rows.append((family, None, None, theirs, ours))

    print(f"sample corpus: {prepared.n_tokens:,} tokens, {args.epochs} epochs, workers={workers}, "
          f"median of {args.rounds} alternating rounds, load average {os.getloadavg()[0]:.1f}\n")
    print("| architecture | gensim direct: wall s / CPU s | ours end-to-end: wall s / CPU s "
          "| gensim words/s (wall / CPU) | ours words/s (wall / CPU) | ours / gensim (wall / CPU) |")
    print("|---|---|---|---|---|---|")
    for family, _gensim_best, _ours_best, theirs, ours in rows:
        g_wall, g_cpu = (statistics.median(t[i] for t in theirs) for i in (0, 1))
        o_wall, o_cpu = (statistics.median(t[i] for t in ours) for i in (0, 1))
        print(f"| {family} | {g_wall:.2f} / {g_cpu:.2f} | {o_wall:.2f} / {o_cpu:.2f} "
              f"| {words / g_wall:,.0f} / {words / g_cpu:,.0f} | {words / o_wall:,.0f} / {words / o_cpu:,.0f} "
              f"| {g_wall / o_wall:.2f}x / {g_cpu / o_cpu:.2f}x |")
    print(f"\npreparation (tokenize raw text -> corpus.txt + vocab.txt, once): {prep_seconds:.2f} s "
          f"({prepared.n_tokens / prep_seconds:,.0f} tokens/s); peak memory {peak_memory_mib():.0f} MiB")
    for family, _g, _o, theirs, ours in rows:
        print(f"all runs {family} (wall/CPU s): gensim {', '.join(f'{w:.2f}/{c:.2f}' for w, c in theirs)}; "
              f"ours {', '.join(f'{w:.2f}/{c:.2f}' for w, c in ours)}")


if __name__ == "__main__":
    main()
