"""SVD co-occurrence speed: our vectorized counter versus a naive
`scipy.sparse.coo_matrix(...).tocsr()` build and a pure-Python dict counter,
side by side in one run, on the sample corpus repeated to about 5M tokens
(window 5, min_count 5); then time and peak memory of PPMI and the SVD.

    .venv/bin/python benchmarks/bench_svd.py [--tokens 5000000] [--rounds 2]

Every measurement runs in a fresh child process, so its peak RSS is its own.
Counts of every method are checked equal. Prints a markdown table; target:
ours >= 5M tokens/s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from embeddings.corpus import PreparedCorpus  # noqa: E402
from embeddings.training import as_prepared, cpu_count  # noqa: E402

WINDOW = 5
MIN_COUNT = 5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def naive_coo(path: Path, words: list[str], limit: int | None = None) -> sp.csr_matrix:
    """Per-sentence id lists, NumPy pairs per offset, one coo_matrix(...).tocsr() at the end."""
    index = {w: i for i, w in enumerate(words)}
    rows, cols = [], []
    seen = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            tokens = line.split()
            seen += len(tokens)
            ids = np.array([index[t] for t in tokens if t in index], dtype=np.int32)
            for d in range(1, WINDOW + 1):
                if d >= len(ids):
                    break
                rows += [ids[:-d], ids[d:]]
                cols += [ids[d:], ids[:-d]]
            if limit is not None and seen >= limit:
                break
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(len(words), len(words))).tocsr()


def python_dict(path: Path, words: list[str], limit: int) -> sp.csr_matrix:
    """The textbook loop: a Counter of (word, context) over every token and offset."""
    index = {w: i for i, w in enumerate(words)}
    counts: Counter = Counter()
    seen = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            tokens = line.split()
            seen += len(tokens)
            ids = [index[t] for t in tokens if t in index]
            for i, a in enumerate(ids):
                for b in ids[i + 1:i + 1 + WINDOW]:
                    counts[a, b] += 1
                    counts[b, a] += 1
            if seen >= limit:
                break
    keys = np.array(list(counts), dtype=np.int64).reshape(-1, 2)
    return sp.csr_matrix((np.array(list(counts.values()), dtype=float), (keys[:, 0], keys[:, 1])),
                         shape=(len(words), len(words)))


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    from embeddings import svd

    prepared = PreparedCorpus.open(args.prepared)
    vocab = prepared.vocabulary(MIN_COUNT)
    path = Path(args.path)
    base_rss = _rss_mib()
    out: dict = {}
    began, cpu0 = time.perf_counter(), _cpu()
    if args.method.startswith("ours"):
        stats: dict = {}
        counts = svd.count_cooccurrences(path, vocab, WINDOW, workers=args.workers, stats=stats)
        out["tokens"] = stats["tokens"]
    elif args.method == "naive-coo":
        counts = naive_coo(path, vocab.words)
    elif args.method == "python-dict":
        counts = python_dict(path, vocab.words, args.limit)
    elif args.method == "ppmi+svd":
        counts = svd.count_cooccurrences(path, vocab, WINDOW, workers=1)
        began, cpu0, rss0 = time.perf_counter(), _cpu(), _rss_mib()
        weighted = svd.ppmi(counts, 0.75)
        out["ppmi_s"], out["ppmi_cpu"], out["ppmi_peak"] = time.perf_counter() - began, _cpu() - cpu0, _rss_mib()
        t, c = time.perf_counter(), _cpu()
        svd.svd_embed(weighted, 100, 0.5, random_state=0)
        out["svd_s"], out["svd_cpu"], out["svd_peak"] = time.perf_counter() - t, _cpu() - c, _rss_mib()
        out.update(rss_before=rss0, nnz=int(counts.nnz), ppmi_nnz=int(weighted.nnz), V=len(vocab))
    out.update(method=args.method, seconds=time.perf_counter() - began, cpu=_cpu() - cpu0,
               peak_mib=_rss_mib(), base_mib=base_rss)
    if args.save:
        sp.save_npz(args.save, sp.csr_matrix(counts), compressed=False)
    print(json.dumps(out))


def run_child(method: str, prepared: Path, path: Path, save: Path | None = None, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--prepared", str(prepared), "--path", str(path)]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    if save is not None:
        cmd += ["--save", str(save)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ})
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of the fast methods; best kept")
    parser.add_argument("--slice", type=int, default=500_000, help="tokens for the pure-Python dict counter")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prepared", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.method = args.child
        child(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench-svd-") as tmp:
        tmp = Path(tmp)
        prepared = as_prepared("sample", tmp / "data")
        repeat = max(1, -(-args.tokens // prepared.n_tokens))
        big = tmp / "big.txt"
        text = prepared.path.read_bytes()
        big.write_bytes(text * repeat)
        n_tokens = prepared.n_tokens * repeat
        small = tmp / "slice.txt"
        lines, seen = [], 0
        for line in text.decode("utf-8").splitlines(keepends=True):
            lines.append(line)
            seen += len(line.split())
            if seen >= args.slice:
                break
        small.write_text("".join(lines), encoding="utf-8")
        workers = cpu_count()
        print(f"corpus: sample x {repeat} = {n_tokens:,} tokens ({len(text) * repeat / 2**20:.0f} MiB), "
              f"window {WINDOW}, min_count {MIN_COUNT}, {workers} cores", file=sys.stderr)

        results: dict[str, dict] = {}
        for round_no in range(args.rounds):
            for method, w in ((f"ours ({workers} threads)", workers), ("ours (1 thread)", 1)):
                save = tmp / "ours.npz" if round_no == 0 and w == 1 else None
                r = run_child("ours", prepared.directory, big, save, workers=w)
                r["method"] = method
                if method not in results or r["seconds"] < results[method]["seconds"]:
                    results[method] = r
                print(f"  {method}: {r['seconds']:.2f} s", file=sys.stderr)
        r = run_child("naive-coo", prepared.directory, big, tmp / "naive.npz")
        results["naive coo_matrix(...).tocsr()"] = {**r, "tokens": n_tokens}
        print(f"  naive: {r['seconds']:.2f} s", file=sys.stderr)
        r = run_child("ours", prepared.directory, small, tmp / "ours-slice.npz", workers=1)
        results["ours on the slice"] = {**r, "method": "ours on the slice"}
        r = run_child("python-dict", prepared.directory, small, tmp / "dict.npz", limit=args.slice)
        results["pure-Python dict (slice)"] = {**r, "tokens": results["ours on the slice"]["tokens"]}
        print(f"  dict: {r['seconds']:.2f} s", file=sys.stderr)
        steps = run_child("ppmi+svd", prepared.directory, big)

        ours_full, naive = sp.load_npz(tmp / "ours.npz"), sp.load_npz(tmp / "naive.npz")
        assert (ours_full != naive).nnz == 0, "ours and the naive build disagree"
        assert (sp.load_npz(tmp / "ours-slice.npz") != sp.load_npz(tmp / "dict.npz")).nnz == 0, \
            "ours and the dict counter disagree"

    base = results["naive coo_matrix(...).tocsr()"]
    base_rate = base["tokens"] / base["seconds"]
    print(f"\nCounting (window {WINDOW}, min_count {MIN_COUNT}; sample corpus x {repeat} = {n_tokens:,} tokens; "
          f"best of {args.rounds} for ours; counts checked equal)\n")
    print("| method | tokens | wall s | CPU s | M tokens/s | M tokens per CPU-s | peak RSS MiB | vs naive |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        print(f"| {name} | {r['tokens']:,} | {r['seconds']:.2f} | {r['cpu']:.2f} | {rate / 1e6:.2f} | "
              f"{r['tokens'] / max(r['cpu'], 1e-9) / 1e6:.2f} | {r['peak_mib']:.0f} | {rate / base_rate:.1f}x |")
    print(f"\nPPMI and SVD on those counts ({steps['V']:,} x {steps['V']:,}, {steps['nnz']:,} non-zeros, "
          f"{steps['ppmi_nnz']:,} after PPMI; peak RSS of the process {steps['rss_before']:.0f} MiB before)\n")
    print("| step | wall s | CPU s | peak RSS MiB after |")
    print("|---|---:|---:|---:|")
    print(f"| PPMI (cds 0.75) | {steps['ppmi_s']:.2f} | {steps['ppmi_cpu']:.2f} | {steps['ppmi_peak']:.0f} |")
    print(f"| TruncatedSVD randomized (float32, n_iter 5), 100-d, eig 0.5 | {steps['svd_s']:.2f} | "
          f"{steps['svd_cpu']:.2f} | {steps['svd_peak']:.0f} |")


if __name__ == "__main__":
    main()
