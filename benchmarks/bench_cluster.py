"""The Dask cluster path (issue 14): serial against `local:N` for corpus preparation,
co-occurrence counting, the SVD and contextual pooling, with the peak memory of the
driver and of every worker, at two corpus sizes; then a projection to a 4B-token corpus.

    .venv/bin/python benchmarks/bench_cluster.py [--sizes 10000000,50000000] [--workers 2]
                                                  [--pool-tokens 20000] [--skip-pool]

The corpora are built at run time from the bundled sample corpus (gensim's Wikipedia
extract + the Lee corpus, 535,705 tokens): its lines shuffled with a fixed seed and
repeated, each repetition in a new order, until the size is reached (kept under
data/bench/cluster/ and re-used). Every measurement runs in a fresh child process that
starts its own LocalCluster (processes, 1 thread each), so each peak RSS is that job's
own; cluster start-up is timed apart from the work. Counting uses window 5 and the
20,000 most frequent words (min-count 5); the SVD is 100-d on those counts; pooling is
MiniLM (all-MiniLM-L6-v2) on the sample corpus with a token budget. Prints markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings.cluster import connect  # noqa: E402
from embeddings.corpus import PreparedCorpus, TokenizerConfig, prepare_corpus, tokenize  # noqa: E402
from embeddings.datasets import write_sample_corpus  # noqa: E402
from embeddings.distributed_corpus import prepare_corpus_on_cluster  # noqa: E402

BENCH_DIR = ROOT / "data" / "bench" / "cluster"
MAX_VOCAB = 20_000
WINDOW = 5
PROJECTED_TOKENS = 4_000_000_000
PROJECTED_WORKERS = (8, 32, 128)


def _peak_rss_mib() -> float:
    """Peak resident memory of the calling process (run on the driver or on a worker), MiB."""
    import resource as _resource

    return _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024


def build_corpus(tokens: int) -> Path:
    """The sample corpus' lines, shuffled (seed 0) and repeated in new orders, up to `tokens` tokens."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    target = BENCH_DIR / f"corpus-{tokens}-v2.txt"
    if target.is_file():
        return target
    sample = write_sample_corpus(BENCH_DIR / "sample.txt")
    lines = [line for line in sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    sizes = [len(tokenize(line)) for line in lines]  # the tokens preparation will count
    rng = random.Random(0)
    written = 0
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        while written < tokens:
            order = list(range(len(lines)))
            rng.shuffle(order)
            for i in order:
                out.write(lines[i] + "\n")
                written += sizes[i]
                if written >= tokens:
                    break
    os.replace(tmp, target)
    return target


# -- the measurements, each in its own child process --------------------------------------
def child(step: str, workers: int, raw: Path, work: Path, pool_tokens: int) -> dict:
    """Run one step; return its seconds and peaks (driver and workers)."""
    if step.endswith("-cluster"):
        started = time.perf_counter()
        with connect(f"local:{workers}") as client:
            startup = time.perf_counter() - started
            result = _run(step, raw, work, pool_tokens, client)
            result["workers_peak_mib"] = sorted(client.run(_peak_rss_mib).values())
        result["startup_s"] = startup
    else:
        result = _run(step, raw, work, pool_tokens, None)
    result["driver_peak_mib"] = _peak_rss_mib()
    return result


class _TailClock:
    """A progress callback remembering when the last worker task finished: what follows is the
    driver's own tail (concatenating corpus.txt; the last sums of the count)."""

    def __init__(self, start: float) -> None:
        self.start, self.last_task = start, None

    def __call__(self, done: int, total: int) -> None:
        if total and done >= total:
            self.last_task = time.perf_counter() - self.start

    def tail(self, seconds: float) -> float | None:
        return None if self.last_task is None else seconds - self.last_task


def _prepared(raw: Path, work: Path) -> PreparedCorpus:
    return prepare_corpus(raw, work / "prepared-serial")


def _run(step: str, raw: Path, work: Path, pool_tokens: int, client) -> dict:
    from embeddings.cooccurrence import count_cooccurrences, load_counts_npz
    from embeddings.distributed_counts import count_cooccurrences_on_cluster
    from embeddings.svd import SVDTrainer

    kind = step.rsplit("-", 1)[0]
    if kind == "prepare":
        out = work / f"prepared-{step}"
        t = time.perf_counter()
        tail = _TailClock(t)
        if client is None:
            prepared = prepare_corpus(raw, out)
        else:
            prepared = prepare_corpus_on_cluster(raw, out, TokenizerConfig(), client, progress=tail)
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "tokens": prepared.n_tokens, "sha256": prepared.sha256,
                "driver_tail_s": tail.tail(seconds)}
    if kind in ("count", "count2"):
        prepared = _prepared(raw, work)
        vocab = prepared.vocabulary(5, MAX_VOCAB)
        t = time.perf_counter()
        tail = _TailClock(t)
        if client is None:
            counts = count_cooccurrences(prepared, vocab, WINDOW, workers=2 if kind == "count2" else 1)
        else:
            counts = count_cooccurrences_on_cluster(client, prepared, vocab, WINDOW, progress=tail)
        seconds = time.perf_counter() - t
        digest = __import__("hashlib").sha256(counts.data.tobytes() + counts.indices.tobytes()).hexdigest()
        if not (work / "counts.npz").exists():
            import scipy.sparse as sp
            sp.save_npz(work / "counts.npz", counts, compressed=False)
        return {"seconds": seconds, "tokens": prepared.n_tokens, "nnz": int(counts.nnz), "sha256": digest,
                "driver_tail_s": tail.tail(seconds)}
    if kind == "svd":
        prepared = _prepared(raw, work)
        counts = load_counts_npz(work / "counts.npz")
        trainer = SVDTrainer(dim=100, window=WINDOW, min_count=5, max_vocab=MAX_VOCAB)
        trainer.fit(prepared, counts=counts, **({} if client is None else {"cluster": client}))
        timings = trainer.embeddings_.meta["timings"]
        return {"seconds": timings["ppmi_s"] + timings["svd_s"], "svd_s": timings["svd_s"],
                "ppmi_s": timings["ppmi_s"], "vocab": len(trainer.embeddings_)}
    if kind == "pool":
        from embeddings.pooling import ContextualTrainer

        prepared = as_sample(work)
        trainer = ContextualTrainer(max_tokens=pool_tokens, min_count=5)
        t = time.perf_counter()
        trainer.fit(prepared, **({} if client is None else {"cluster": client}))
        seconds = time.perf_counter() - t
        stats = trainer.embeddings_.meta["contextual"]["stats"]
        return {"seconds": seconds, "tokens": stats["tokens_encoded"], "words_pooled": stats["words_pooled"]}
    raise ValueError(f"unknown step {step!r}")


def as_sample(work: Path) -> PreparedCorpus:
    raw = write_sample_corpus(work / "sample.txt")
    return prepare_corpus(raw, work / "sample-prepared")


def run_child(step: str, workers: int, raw: Path, work: Path, pool_tokens: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--workers", str(workers), "--raw", str(raw),
                          "--work", str(work), "--pool-tokens", str(pool_tokens)],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {step} on {raw.name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def _rate(result: dict) -> float:
    return result["tokens"] / result["seconds"]


def _peaks(result: dict) -> str:
    workers = result.get("workers_peak_mib")
    text = f"driver {result['driver_peak_mib']:.0f}"
    return text + (f", workers {' / '.join(f'{w:.0f}' for w in workers)}" if workers else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000000,50000000", help="corpus sizes in tokens, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="local cluster worker processes")
    parser.add_argument("--pool-tokens", type=int, default=20_000, help="pooling budget (corpus words)")
    parser.add_argument("--skip-pool", action="store_true", help="no pooling runs (they need MiniLM)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workers, args.raw, args.work, args.pool_tokens)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    w = args.workers
    rows: dict[int, dict[str, dict]] = {}
    for size in sizes:
        raw = build_corpus(size)
        with tempfile.TemporaryDirectory(prefix="bench-cluster-", dir=BENCH_DIR) as tmp:
            work = Path(tmp)
            res = {step: run_child(step, w, raw, work, args.pool_tokens)
                   for step in ("prepare-serial", "prepare-cluster", "count-serial", "count2-serial", "count-cluster")}
            assert res["prepare-serial"]["sha256"] == res["prepare-cluster"]["sha256"], "prepare differs"
            assert res["count-serial"]["sha256"] == res["count-cluster"]["sha256"], "counts differ"
            if size == sizes[0]:
                res["svd-serial"] = run_child("svd-serial", w, raw, work, args.pool_tokens)
                res["svd-cluster"] = run_child("svd-cluster", w, raw, work, args.pool_tokens)
                if not args.skip_pool:
                    res["pool-serial"] = run_child("pool-serial", w, raw, work, args.pool_tokens)
                    res["pool-cluster"] = run_child("pool-cluster", w, raw, work, args.pool_tokens)
            rows[size] = res

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\n### Serial vs `local:{w}` ({when}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end)\n")
    print("| corpus | step | serial | serial, 2 threads | cluster | cluster / serial | peak MiB (serial) "
          "| peak MiB (cluster) |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for size, res in rows.items():
        label = f"{size / 1e6:.0f}M tokens"
        p, q = res["prepare-serial"], res["prepare-cluster"]
        print(f"| {label} | prepare (tokens/s) | {_rate(p):,.0f} | - | {_rate(q):,.0f} | {_rate(q) / _rate(p):.2f}x "
              f"| {_peaks(p)} | {_peaks(q)} |")
        c, c2, d = res["count-serial"], res["count2-serial"], res["count-cluster"]
        print(f"| {label} | counting (tokens/s) | {_rate(c):,.0f} | {_rate(c2):,.0f} | {_rate(d):,.0f} "
              f"| {_rate(d) / _rate(c):.2f}x | {_peaks(c)} | {_peaks(d)} |")
        if "svd-serial" in res:
            s, t = res["svd-serial"], res["svd-cluster"]
            print(f"| {label} | PPMI + SVD (s, {s['vocab']:,} words, 100-d) | {s['seconds']:.1f} | - "
                  f"| {t['seconds']:.1f} | {s['seconds'] / t['seconds']:.2f}x | {_peaks(s)} | {_peaks(t)} |")
        if "pool-serial" in res:
            s, t = res["pool-serial"], res["pool-cluster"]
            print(f"| sample corpus | pooling (words/s, {args.pool_tokens:,}-word budget) | {_rate(s):,.0f} | - "
                  f"| {_rate(t):,.0f} | {_rate(t) / _rate(s):.2f}x | {_peaks(s)} | {_peaks(t)} |")
    print(f"\nCluster start-up (local:{w}): " + ", ".join(
        f"{step} {res[step]['startup_s']:.1f} s" for res in list(rows.values())[:1] for step in res
        if step.endswith("-cluster")))

    # Projection from the largest size's per-worker rates.
    res = rows[sizes[-1]]
    print(f"\n### Projection to a {PROJECTED_TOKENS / 1e9:.0f}B-token corpus (per-worker rates of the workers' "
          f"part measured at {sizes[-1] / 1e6:.0f}M tokens, linear in workers; the driver's tail scaled "
          f"with the corpus for prepare)\n")
    print("| step | serial (one process) | " + " | ".join(f"{n} workers" for n in PROJECTED_WORKERS) + " |")
    print("|---|---:|" + "---:|" * len(PROJECTED_WORKERS))
    scale = PROJECTED_TOKENS / sizes[-1]
    for step, serial, cluster in (("prepare", res["prepare-serial"], res["prepare-cluster"]),
                                  ("counting", res["count-serial"], res["count-cluster"])):
        tail = (cluster.get("driver_tail_s") or 0.0)
        work_s = cluster["seconds"] - tail
        per_worker_rate = cluster["tokens"] / (work_s * w)
        # The driver's tail grows with the corpus for prepare (it writes corpus.txt) and not for
        # counting (the summed matrix is vocabulary-bound).
        driver = tail * scale if step == "prepare" else tail
        cells = [f"{(PROJECTED_TOKENS / (per_worker_rate * n) + driver) / 3600:.2f} h" for n in PROJECTED_WORKERS]
        print(f"| {step} | {PROJECTED_TOKENS / _rate(serial) / 3600:.1f} h | " + " | ".join(cells) + " |")
        print(f"|   of which on the driver | - | " + " | ".join(f"{driver / 3600:.2f} h" for _ in PROJECTED_WORKERS)
              + " |")


if __name__ == "__main__":
    main()
