"""`wordspace train svd`: PPMI + truncated SVD vectors from a corpus to a saved model.

The co-occurrence counts are the expensive step, so they are kept (see
`embeddings.svd`): a snapshot every --checkpoint-every seconds while counting
and the finished counts, both in MODELS/.checkpoints/NAME (`--resume` continues
from them after a kill or Ctrl-C, `--restart` discards them), and the counts
saved with the model as `cooccurrence.npz`. A run whose counting parameters
(corpus sha256, window, weighting, dynamic window, subsampling, min_count,
max_vocab) match a saved svd model's re-uses its counts, so changing only
--dim/--eig/--cds/--shift/--add-context skips the counting. `--recount` forces a
fresh count.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from embeddings.svd import WEIGHTINGS
from embeddings.training import peak_memory_mib

from .cli_common import models_dir
from .cli_train import add_train_options, run_training


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def register(train_subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace train svd`."""
    p = train_subparsers.add_parser(
        "svd", parents=[common], help="PPMI + truncated SVD of word co-occurrence counts",
        description="Count word-context co-occurrences in a symmetric window, weight them by positive "
                    "PMI with context-distribution smoothing (context counts ** CDS, optional shift by "
                    "log SHIFT) and keep W = U * S**EIG of a randomized truncated SVD (Levy, Goldberg & "
                    "Dagan 2015). The counts are saved with the model (cooccurrence.npz) and re-used when "
                    "only --dim/--eig/--cds/--shift/--add-context change.")
    add_train_options(p, default_name="svd")
    p.add_argument("--dim", type=int, default=100, help="vector size (default: 100)")
    p.add_argument("--window", type=int, default=5, help="max distance to a context word (default: 5)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="uniform",
                   help="weight of a context at distance d: 1 (uniform) or 1/d (harmonic) (default: uniform)")
    p.add_argument("--dynamic-window", action="store_true",
                   help="also weight distance d by (window-d+1)/window, word2vec's expected sampled window")
    p.add_argument("--subsample", type=float, default=None, metavar="S",
                   help="drop frequent words with word2vec's rule, threshold S (e.g. 1e-5; default: off)")
    p.add_argument("--min-count", type=int, default=5, help="ignore words rarer than this (default: 5)")
    p.add_argument("--max-vocab", type=int, default=None, help="keep at most this many words (default: all)")
    p.add_argument("--cds", type=float, default=0.75,
                   help="context-distribution smoothing exponent, > 0 (default: 0.75; 1 = plain PPMI)")
    p.add_argument("--shift", type=float, default=1.0,
                   help="shift PMI by log(SHIFT), >= 1, like word2vec's negative samples (default: 1 = none)")
    p.add_argument("--eig", type=float, default=0.5, help="eigenvalue weighting p in U * S**p (default: 0.5)")
    p.add_argument("--add-context", action="store_true", help="return W + C (word + context vectors)")
    p.add_argument("--seed", type=int, default=0, help="random state of the SVD and subsampling (default: 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="counting threads for large corpora (default: all cores; results are identical)")
    p.add_argument("--checkpoint-every", type=_seconds, default=60.0, metavar="SECONDS",
                   help="snapshot a count in progress this often (default: 60)")
    p.add_argument("--recount", action="store_true",
                   help="count again even when a saved svd model has matching counts")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> None:
    params = dict(dim=args.dim, window=args.window, weighting=args.weighting, dynamic_window=args.dynamic_window,
                  subsample=args.subsample, min_count=args.min_count, max_vocab=args.max_vocab, cds=args.cds,
                  shift=args.shift, eig=args.eig, add_context=args.add_context, random_state=args.seed,
                  workers=args.workers)
    fit_options = {"checkpoint_every": args.checkpoint_every,
                   "counts_from": None if args.recount else models_dir(args)}
    emb, path, started = run_training(args, "svd", params, fit_options)
    meta: dict[str, Any] = emb.meta
    t = meta["timings"]
    rate = meta.get("tokens_per_second")
    counted = (f"counting {t['count_s']:.1f} s ({rate / 1e6:.2f}M tokens/s)" if "count_s" in t and rate
               else "counts re-used")
    print(f"saved model {args.name!r} (svd): {len(emb)} words x {emb.dim} dims, "
          f"{meta['cooccurrence']['nnz']:,} co-occurrence non-zeros; {counted}, PPMI {t['ppmi_s']:.1f} s, "
          f"SVD {t['svd_s']:.1f} s, {time.perf_counter() - started:.1f} s in all, "
          f"peak memory {peak_memory_mib():.0f} MiB -> {path}")
    if meta["dropped_words"]:
        print(f"note: {meta['dropped_words']} words had no positive-PMI context and got no vector",
              file=sys.stderr)
