"""Contextual pooling and Transformer training speed.

1. Static-vector pooling with MiniLM over the same selected windows of the sample
   corpus: ours (length-sorted batches, inference_mode, index_add pooling) versus a
   naive loop (one window at a time in corpus-selection order, a Python dict of
   vectors per word). Both results are compared.
2. Training tokens/s of the from-scratch MLM Transformer at the default size
   (one epoch over the sample corpus).

Run: .venv/bin/python benchmarks/bench_contextual.py [--tokens 20000] [--train-epochs 1]
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from embeddings.contextual import (  # noqa: E402
    MINILM, HFEncoder, encode_and_sum, make_windows, select_windows, set_torch_threads,
)
from embeddings.datasets import default_data_dir  # noqa: E402
from embeddings.training import as_prepared, peak_memory_mib  # noqa: E402
from embeddings.transformer import TransformerMLM  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000, help="corpus words pooled by each method")
    parser.add_argument("--train-epochs", type=int, default=1, help="epochs of the training measurement (0: skip)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = set_torch_threads(args.threads)
    corpus = as_prepared("sample", default_data_dir())
    rows = []

    started = time.perf_counter()
    encoder = HFEncoder(MINILM, source=MINILM)
    load_s = time.perf_counter() - started
    vocab = corpus.vocabulary(5)
    index = {w: i for i, w in enumerate(vocab.words)}
    windows = list(make_windows(corpus.sentences(), encoder, 126))
    chosen = select_windows(windows, index, 100, args.tokens, 0)
    n_tokens = sum(len(w.words) for w in chosen)
    encoder.encode_words([chosen[0].words])  # warm-up

    def ours_run(precision: str):
        encoder.precision = precision
        t, c = time.perf_counter(), time.process_time()
        sums, contexts = encode_and_sum(encoder, chosen, len(vocab.words))
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        return (sums / contexts[:, None].clamp(min=1)).float().numpy(), contexts.numpy() > 0, seconds, cpu

    fast_precision = encoder.precision  # "auto" resolved: bf16 on CPUs with native bfloat16
    encoder.precision = "fp32"
    t, c = time.perf_counter(), time.process_time()
    naive = naive_pool(encoder, chosen, len(vocab.words))
    naive_s, naive_cpu = time.perf_counter() - t, time.process_time() - c
    exact, found, exact_s, exact_cpu = ours_run("fp32")
    fast, _, ours_s, ours_cpu = ours_run(fast_precision)
    diff = float(np.abs(exact[found] - naive[found]).max())
    cos = np.sum(fast[found] * naive[found], 1) / (
        np.linalg.norm(fast[found], axis=1) * np.linalg.norm(naive[found], axis=1))
    rows.append(("MiniLM pooling, naive loop (1 window/call, fp32)", f"{n_tokens / naive_s:,.0f} words/s",
                 f"{naive_s:.1f} s wall, {naive_cpu:.1f} s CPU for {n_tokens:,} words"))
    rows.append(("MiniLM pooling, ours with fp32 (length-sorted batches)", f"{n_tokens / exact_s:,.0f} words/s",
                 f"{exact_s:.1f} s wall, {exact_cpu:.1f} s CPU: {naive_s / exact_s:.1f}x wall, "
                 f"{naive_cpu / exact_cpu:.1f}x CPU; max abs difference to naive {diff:.1e}"))
    rows.append((f"MiniLM pooling, ours (batches + {fast_precision}, the default here)",
                 f"{n_tokens / ours_s:,.0f} words/s",
                 f"{ours_s:.1f} s wall, {ours_cpu:.1f} s CPU: **{naive_s / ours_s:.1f}x** wall, "
                 f"**{naive_cpu / ours_cpu:.1f}x** CPU; min cosine to naive {cos.min():.4f}"))
    demo_s = load_s + 150_000 / (n_tokens / ours_s)
    rows.append(("`train contextual` default (150k-word budget), projected", f"~{demo_s:.0f} s",
                 f"model load {load_s:.1f} s + 150k words at ours' rate"))

    if args.train_epochs:
        trainer = TransformerMLM(epochs=args.train_epochs, max_contexts=0, random_state=0).fit(corpus)
        last = trainer.history_[-1]
        config = trainer.config_
        rows.append((f"MLM training, default size (d={config.d_model}, {config.n_layers} layers, "
                     f"{config.n_heads} heads, vocab {config.vocab_size:,}, batch 32x{config.max_len})",
                     f"{last['tokens_per_second']:,.0f} tokens/s",
                     f"{last['train_tokens']:,} tokens in {last['seconds']:.0f} s; held-out masked ppl "
                     f"{last['heldout_ppl']:.0f} vs unigram {last['unigram_ppl']:.0f} after {last['epoch']} epoch(s)"))

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {threads} torch threads, {date}, load average at the end {load}, "
          f"peak memory {peak_memory_mib():.0f} MiB\n")
    print("| what | rate | notes |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
