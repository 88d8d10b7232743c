"""word2vec speed: our `wordspace train cbow|skipgram` end to end (raw text file
-> saved model, with loss tracking, epoch-end checkpoints and the atomic save)
versus `gensim.models.Word2Vec(corpus_file=...)` called directly on the same
prepared file, side by side in one run. Preparation is timed separately.

    .venv/bin/python benchmarks/bench_word2vec.py [--epochs 5] [--rounds 2]

Prints a markdown table; target: ours >= 0.95x gensim's words/s.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.cli import main as wordspace  # noqa: E402
from embeddings.datasets import write_sample_corpus  # noqa: E402
from embeddings.training import as_prepared, cpu_count, peak_memory_mib  # noqa: E402


def run_gensim(corpus_file: str, sg: int, epochs: int, workers: int) -> float:
    """Seconds for gensim's own build_vocab + train on the prepared file (same hyper-parameters)."""
    from gensim.models import Word2Vec

    began = time.perf_counter()
    Word2Vec(corpus_file=corpus_file, sg=sg, hs=0, negative=5, vector_size=100, window=5, min_count=5,
             sample=1e-3, epochs=epochs, workers=workers, seed=1)
    return time.perf_counter() - began


def run_ours(raw: Path, data: Path, models: Path, family: str, epochs: int, workers: int) -> float:
    """Seconds for `wordspace train FAMILY` from the raw file to the saved model (prepared corpus re-used)."""
    began = time.perf_counter()
    code = wordspace(["train", family, "--corpus", str(raw), "--name", family, "--epochs", str(epochs),
                      "--workers", str(workers), "--models", str(models), "--data", str(data), "--quiet"])
    if code != 0:
        raise SystemExit(f"wordspace train {family} failed")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating repetitions; the best of each is kept")
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
            rows.append((family, min(theirs), min(ours), theirs, ours))

    print(f"sample corpus: {prepared.n_tokens:,} tokens, {args.epochs} epochs, workers={workers}, "
          f"best of {args.rounds} alternating rounds\n")
    print("| architecture | gensim direct (s) | gensim words/s | ours end-to-end (s) | ours words/s | ours / gensim |")
    print("|---|---|---|---|---|---|")
    for family, gensim_s, ours_s, _theirs, _ours in rows:
        print(f"| {family} | {gensim_s:.2f} | {words / gensim_s:,.0f} | {ours_s:.2f} | {words / ours_s:,.0f} "
              f"| {gensim_s / ours_s:.2f}x |")
    print(f"\npreparation (tokenize raw text -> corpus.txt + vocab.txt, once): {prep_seconds:.2f} s "
          f"({prepared.n_tokens / prep_seconds:,.0f} tokens/s); peak memory {peak_memory_mib():.0f} MiB")
    for family, _g, _o, theirs, ours in rows:
        print(f"all runs {family}: gensim {', '.join(f'{t:.2f}' for t in theirs)} s; "
              f"ours {', '.join(f'{t:.2f}' for t in ours)} s")


if __name__ == "__main__":
    main()
