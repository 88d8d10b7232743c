"""`wordspace serve --workers N` on the 400k-word GloVe model: throughput and latency of
`GET /models/glove-6b-50d/neighbors` under wrk (16 connections) for the bare Flask +
waitress + FAISS probe, one worker and two workers, alternated within one run, and the
memory of each server (RSS, PSS and private pages per process, from /proc/PID/smaps_rollup).

    .venv/bin/python benchmarks/bench_workers.py [--rounds 2] [--duration 15] [--threads 8]

Targets (issue 15): 2 workers >= 1.6x one worker, one worker >= 1.0x the probe, p99 <= 25 ms,
0 errors. Loopback only; every run is bounded in time. The model is imported (and its
index built) into --models once (default data/bench/models). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_load import ensure_model, query_words  # noqa: E402
from bench_service import NAME, start_probe, start_server, wrk_load  # noqa: E402


def smaps(pid: int) -> dict[str, int]:
    """Rss, Pss and private (Private_Clean + Private_Dirty) of one process, KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return {"rss": values["Rss"], "pss": values["Pss"],
            "private": values["Private_Clean"] + values["Private_Dirty"]}


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (the supervisor and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its children (the server's processes)."""
    total = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def memory_row(label: str, pid: int) -> str:
    parts, total_pss = [], 0
    for i, p in enumerate(process_tree(pid)):
        m = smaps(p)
        total_pss += m["pss"]
        probe = label.startswith("probe")
        role = "process" if probe else "supervisor" if i == 0 else "worker"
        parts.append(f"{role} {p}: RSS {m['rss'] / 1024:.0f} / PSS {m['pss'] / 1024:.0f} / "
                     f"private {m['private'] / 1024:.0f} MiB")
    return f"{'; '.join(parts)}; **total PSS {total_pss / 1024:.0f} MiB**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "bench" / "models")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default: 15)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads per process (default: 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--probe-settings", action="store_true",
                        help="also run the probe under `wordspace serve`'s waitress settings (poll(), "
                             "1,000 connections, ...): the part of the gap that is the server's settings")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is required: apt-get install -y wrk", file=sys.stderr)
        return 2

    setup = ensure_model(args.models)
    words = query_words(args.models, 1000)
    configs = ["probe", *(["probe+settings"] if args.probe_settings else []), *[f"workers={n}" for n in args.workers]]
    results: dict[str, list[dict]] = {c: [] for c in configs}
    memory: dict[str, str] = {}
    ready: dict[str, list[float]] = {c: [] for c in configs}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for config in configs if r % 2 == 0 else configs[::-1]:
            started = time.perf_counter()
            if config.startswith("probe"):
                proc, port = start_probe(args.models, args.threads, our_settings=config == "probe+settings")
            else:
                n = config.split("=")[1]
                proc, port, _ = start_server(args.models, args.threads, ("--model", NAME, "--workers", n))
            ready[config].append(time.perf_counter() - started)
            try:
                wrk_load(port, words, args.connections, 2)  # warm-up: page in the mapped index
                cpu = cpu_seconds(proc.pid)
                stats = wrk_load(port, words, args.connections, args.duration)
                stats["per_cpu_s"] = stats["requests"] / max(cpu_seconds(proc.pid) - cpu, 1e-9)
                results[config].append(stats)
                memory[config] = memory_row(config, proc.pid)
                print(f"round {r + 1} {config}: {stats['rps']:.0f} req/s, p50 {stats['p50']:.1f} ms, "
                      f"p99 {stats['p99']:.1f} ms, {stats['errors'] + stats['non2xx']} errors, "
                      f"{stats['per_cpu_s']:.0f} requests per server CPU-second", file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(30)
                proc.stdout.close()
    load_after = os.getloadavg()

    def median(config: str, key: str) -> float:
        return statistics.median(s[key] for s in results[config])

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\n### `serve --workers N` vs one worker vs the bare probe ({when}, {os.cpu_count()} cores, "
          f"load average {load_before[0]:.2f} before / {load_after[0]:.2f} after)\n")
    print(f"GloVe 400k x 50 ({setup}), persisted HNSW index, wrk -t2 -c{args.connections} -d{args.duration}s on "
          f"GET /models/{NAME}/neighbors (1,000 words, k=10), {args.threads} waitress threads per process, "
          f"{args.rounds} alternating rounds (median; each run after a 2 s warm-up).\n")
    print("| server | req/s (each round) | median req/s | p50 ms | p99 ms (worst) | errors | requests per server "
          "CPU-second | start -> ready s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config in configs:
        runs = results[config]
        each = ", ".join(f"{s['rps']:.0f}" for s in runs)
        print(f"| {config} | {each} | {median(config, 'rps'):.0f} | "
              f"{median(config, 'p50'):.1f} | {max(s['p99'] for s in runs):.1f} | "
              f"{sum(s['errors'] + s['non2xx'] for s in runs)} | {median(config, 'per_cpu_s'):.0f} | "
              f"{statistics.median(ready[config]):.1f} |")
    probe = median("probe", "rps")
    base = f"workers={args.workers[0]}"
    print()
    for config in configs[1:]:
        line = f"- {config}: {median(config, 'rps') / probe:.2f}x the probe"
        if config != base and config.startswith("workers"):
            line += f", {median(config, 'rps') / median(base, 'rps'):.2f}x {base}"
        print(line)
    print("\nMemory after the last run of each (the vectors and index.faiss are memory-mapped files; "
          "PSS splits shared pages between the processes mapping them):\n")
    for config in configs:
        print(f"- {config}: {memory[config]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
