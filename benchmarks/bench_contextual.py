"""Contextual pooling and Transformer training speed.

1. Static-vector pooling with MiniLM over the same selected windows of the sample
   corpus, for each window length in --windows: ours (length-sorted batches,
   inference_mode, index_add pooling, in float32 and in the shipped precision)
   versus a naive loop (one window at a time in corpus-selection order, float32,
   a Python dict of vectors per word). The three run interleaved, --repeats
   rounds, and the medians are compared; the results are checked against each other.
2. Quality per window length: `build_contextual_model` with the CLI's 150k-word
   budget for each seed in --quality-seeds, scored on WordSim353 and SimLex-999.
3. Training tokens/s of the from-scratch MLM Transformer at the default size
   (one epoch over the sample corpus).

Run: .venv/bin/python benchmarks/bench_contextual.py [--windows 30,62,126] [--repeats 3]
     [--tokens 20000] [--quality-seeds 0,1,2] [--train-epochs 1] [--threads T]
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.similarity import evaluate_word_pairs  # noqa: E402
from embeddings.datasets import benchmark_path, default_data_dir  # noqa: E402
from embeddings.encoders import MINILM, HFEncoder, set_torch_threads  # noqa: E402
from embeddings.pooling import (  # noqa: E402
    DEFAULT_WINDOW, build_contextual_model, encode_and_sum, make_windows, select_windows,
)
from embeddings.training import as_prepared, peak_memory_mib  # noqa: E402
from embeddings.transformer_train import TransformerMLM  # noqa: E402

CLI_BUDGET = 150_000  # `wordspace train contextual`'s default --max-tokens


def naive_pool(encoder, windows, n_words):
    """One window at a time, no length sorting, per-word Python accumulation."""
    acc: dict[int, list[np.ndarray]] = {}
    for window in windows:
        vectors = encoder.encode_words([window.words]).numpy()
        for target, vector in zip(window.targets, vectors):
            if target >= 0:
                acc.setdefault(target, []).append(vector)
    out = np.full((n_words, encoder.dim), np.nan, dtype=np.float32)
    for row, vectors in acc.items():
        out[row] = np.mean(vectors, axis=0)
    return out


def timed(fn):
    """(result, wall seconds, CPU seconds) of fn()."""
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t, time.process_time() - c


def pooling_speed(encoder, corpus, vocab, window: int, tokens: int, repeats: int, fast: str) -> list[tuple]:
    """Rows comparing naive, ours-fp32 and ours-`fast` on the same selected windows."""
    index = {w: i for i, w in enumerate(vocab.words)}
    chosen = select_windows(list(make_windows(corpus.sentences(), encoder, window)), index, 100, tokens, 0)
    n_words, n_tokens = len(vocab.words), sum(len(w.words) for w in chosen)

    def ours(precision: str):
        encoder.precision = precision
        sums, contexts = encode_and_sum(encoder, chosen, n_words)
        return (sums / contexts[:, None].clamp(min=1)).float().numpy(), contexts.numpy() > 0

    def naive():
        encoder.precision = "fp32"
        return naive_pool(encoder, chosen, n_words)

    runs = {"naive": naive, "fp32": lambda: ours("fp32"), fast: lambda: ours(fast)}
    for fn in runs.values():  # warm-up: first-call allocations, the bf16 copy of the weights
        encoder.precision = "fp32" if fn is naive else fast
        encoder.encode_words([chosen[0].words])
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    results = {}
    for _ in range(repeats):  # interleaved, so load changes hit every method alike
        for key, fn in runs.items():
            results[key], wall, cpu = timed(fn)
            walls[key].append(wall)
            cpus[key].append(cpu)
    wall = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    reference = results["naive"]
    exact, found = results["fp32"]
    approx, _ = results[fast]
    diff = float(np.abs(exact[found] - reference[found]).max())
    cos = np.sum(approx[found] * reference[found], 1) / (
        np.linalg.norm(approx[found], axis=1) * np.linalg.norm(reference[found], axis=1))
    spread = lambda k: "/".join(f"{x:.1f}" for x in walls[k])  # noqa: E731
    return [
        (window, len(chosen), "naive loop (1 window/call, fp32)", f"{n_tokens / wall['naive']:,.0f}",
         f"{wall['naive']:.2f} s ({spread('naive')})", "1.0x", f"{n_tokens:,} words"),
        (window, len(chosen), "ours, fp32 (length-sorted batches)", f"{n_tokens / wall['fp32']:,.0f}",
         f"{wall['fp32']:.2f} s ({spread('fp32')})",
         f"{wall['naive'] / wall['fp32']:.1f}x wall, {cpu['naive'] / cpu['fp32']:.1f}x CPU",
         f"max abs diff to naive {diff:.1e}"),
        (window, len(chosen), f"ours, {fast} (the default here)", f"{n_tokens / wall[fast]:,.0f}",
         f"{wall[fast]:.2f} s ({spread(fast)})",
         f"**{wall['naive'] / wall[fast]:.1f}x** wall, {cpu['naive'] / cpu[fast]:.1f}x CPU",
         f"min cosine to naive {cos.min():.4f}"),
    ]


def pooling_quality(encoder, corpus, window: int, seed: int, fast: str) -> tuple:
    """One `train contextual`-sized pooling run: encode time and benchmark scores."""
    encoder.precision = fast
    emb = build_contextual_model(encoder, corpus, max_tokens=CLI_BUDGET, window=window, seed=seed)
    stats = emb.meta["contextual"]["stats"]
    ws = evaluate_word_pairs(emb, benchmark_path("ws353"))
    sl = evaluate_word_pairs(emb, benchmark_path("simlex999"))
    return (window, seed, f"{stats['encode_seconds']:.1f} s", f"{stats['tokens_per_second']:,.0f}",
            f"{stats['words_pooled']:,}", f"{ws.spearman:.3f} ({ws.seen} pairs)", f"{sl.spearman:.3f} ({sl.seen} pairs)")


def table(header: tuple, rows: list[tuple]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print()


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int_list, default=[DEFAULT_WINDOW, 62, 126],
                        help=f"word pieces per window, comma-separated (default: {DEFAULT_WINDOW},62,126)")
    parser.add_argument("--tokens", type=int, default=20_000, help="corpus words pooled by each speed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the speed runs (median)")
    parser.add_argument("--quality-seeds", type=int_list, default=[0, 1, 2],
                        help="seeds of the 150k-word quality runs per window ('' to skip)")
    parser.add_argument("--train-epochs", type=int, default=1, help="epochs of the training measurement (0: skip)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = set_torch_threads(args.threads)
    corpus = as_prepared("sample", default_data_dir())
    vocab = corpus.vocabulary(5)

    (encoder, load_s, _) = timed(lambda: HFEncoder(MINILM, source=MINILM))
    fast = encoder.precision  # "auto" resolved: bf16 on CPUs with native bfloat16
    speed = [row for w in args.windows
             for row in pooling_speed(encoder, corpus, vocab, w, args.tokens, args.repeats, fast)]
    quality = [pooling_quality(encoder, corpus, w, seed, fast) for w in args.windows for seed in args.quality_seeds]

    training = []
    if args.train_epochs:
        trainer = TransformerMLM(epochs=args.train_epochs, max_contexts=0, random_state=0).fit(corpus)
        last, config = trainer.history_[-1], trainer.config_
        training.append((f"d={config.d_model}, {config.n_layers} layers, {config.n_heads} heads, "
                         f"vocab {config.vocab_size:,}, batch 32x{config.max_len}",
                         f"{last['tokens_per_second']:,.0f}",
                         f"{last['train_tokens']:,} tokens in {last['seconds']:.0f} s; held-out masked ppl "
                         f"{last['heldout_ppl']:.0f} vs unigram {last['unigram_ppl']:.0f} after {last['epoch']} epoch(s)"))

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {threads} torch threads, {date}, load average at the end {load}, "
          f"peak memory {peak_memory_mib():.0f} MiB, MiniLM load {load_s:.1f} s\n")
    table(("window", "windows", "method", "words/s", "median wall (runs)", "vs naive", "check"), speed)
    if quality:
        table(("window", "seed", "encode", "words/s", "words pooled", "WordSim353 Spearman", "SimLex-999 Spearman"),
              quality)
    if training:
        table(("MLM training, default size", "tokens/s", "notes"), training)


if __name__ == "__main__":
    main()
