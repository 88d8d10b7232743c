"""`wordspace train svd`: PPMI + truncated SVD vectors from a corpus to a saved model.

The co-occurrence counts are the expensive step, so they are kept:

* while counting, a snapshot every --checkpoint-every seconds (default 60) in
  MODELS/.checkpoints/NAME/partial; `--resume` continues a killed count from it
  (counts are exact integers and subsampling is seeded per chunk, so the result
  is identical to an uninterrupted run);
* right after counting, in MODELS/.checkpoints/NAME/counts (a kill during PPMI
  or SVD loses nothing: the rerun starts from them, with or without --resume);
* with the model, as `cooccurrence.npz` (+ `cooccurrence_vocab.txt`,
  `cooccurrence.json`), checksummed in meta.json.

A run whose counting parameters (corpus sha256, window, weighting, dynamic
window, subsampling, min_count, max_vocab) match saved counts re-uses them, so
changing only --dim/--eig/--cds/--shift/--add-context skips the counting.
`--recount` forces a fresh count.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import scipy.sparse as sp
from tqdm import tqdm

from embeddings import store
from embeddings.svd import (COUNTS_FILE, COUNTS_INFO, COUNTS_VOCAB, WEIGHTINGS, CountCheckpoint, SVDTrainer,
                            read_counts, write_counts)
from embeddings.training import as_prepared, checkpoint_dir, peak_memory_mib

from .cli_common import data_dir, models_dir

COUNTS_CHECKPOINT = "counts"
PARTIAL_CHECKPOINT = "partial"


def register(train_subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace train svd`."""
    p = train_subparsers.add_parser(
        "svd", parents=[common], help="PPMI + truncated SVD of word co-occurrence counts",
        description="Count word-context co-occurrences in a symmetric window, weight them by positive "
                    "PMI with context-distribution smoothing (context counts ** CDS, optional shift by "
                    "log SHIFT) and keep W = U * S**EIG of a randomized truncated SVD (Levy, Goldberg & "
                    "Dagan 2015). The counts are saved with the model (cooccurrence.npz) and re-used when "
                    "only --dim/--eig/--cds/--shift/--add-context change.")
    p.add_argument("--corpus", required=True,
                   help="raw text file or directory (one document per line), a prepared corpus directory, "
                        "or 'sample' for the bundled sample corpus")
    p.add_argument("--name", default="svd", help="model name (default: svd)")
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
    p.add_argument("--resume", action="store_true",
                   help="continue a killed count from its last snapshot in MODELS/.checkpoints/NAME (finished "
                        "counts are re-used even without it; the PPMI and SVD steps are deterministic)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="snapshot a count in progress this often (default: 60)")
    p.add_argument("--recount", action="store_true", help="count again even when matching counts are saved")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def find_counts(models: Path, name: str, key: str, words: list[str]) -> tuple[sp.csr_matrix, str] | None:
    """Saved counts for `key`: the checkpoint of `name`, then model `name`, then any other svd model."""
    found = read_counts(checkpoint_dir(models, name) / COUNTS_CHECKPOINT, key, words)
    if found is not None:
        return found, "checkpoint"
    candidates = [name] + sorted(i.name for i in store.list_models(models) if i.method == "svd" and i.name != name)
    for candidate in candidates:
        path = models / candidate
        try:
            if not path.exists():
                continue
            path = path.resolve()
            meta = store.read_meta(path)
            if meta.get("counts_key") != key:
                continue
            for rel in (COUNTS_FILE, COUNTS_INFO, COUNTS_VOCAB):
                store.verify_file(path, rel, meta)
        except (ValueError, OSError):
            continue
        found = read_counts(path, key, words)
        if found is not None:
            return found, f"model {candidate!r}"
    return None


def _cmd_train(args: argparse.Namespace) -> None:
    # Every bad value is reported before any corpus is read or prepared.
    name = store.validate_name(args.name)
    trainer = SVDTrainer(dim=args.dim, window=args.window, weighting=args.weighting,
                         dynamic_window=args.dynamic_window, subsample=args.subsample,
                         min_count=args.min_count, max_vocab=args.max_vocab, cds=args.cds, shift=args.shift,
                         eig=args.eig, add_context=args.add_context, random_state=args.seed,
                         workers=args.workers)
    trainer.check_params()
    if not args.checkpoint_every >= 0:
        raise ValueError(f"--checkpoint-every must be >= 0 seconds, got {args.checkpoint_every}")
    models = models_dir(args)
    started = time.perf_counter()
    prepared = as_prepared(args.corpus, data_dir(args), progress=not args.quiet)
    vocab = trainer.vocabulary(prepared)  # dim >= vocabulary size fails here, before counting
    key = trainer.counts_key(prepared.sha256, vocab)
    checkpoints = checkpoint_dir(models, name)
    counts = None
    if not args.recount:
        found = find_counts(models, name, key, vocab.words)
        if found is not None:
            counts, origin = found
            print(f"re-using the co-occurrence counts from {origin} (same corpus and counting parameters)",
                  file=sys.stderr)
    bar = tqdm(total=prepared.n_tokens, unit="tok", unit_scale=True, desc="counting co-occurrences",
               disable=args.quiet or counts is not None, file=sys.stderr, dynamic_ncols=True)

    def checkpoint(matrix: sp.csr_matrix, fitted: SVDTrainer) -> None:
        bar.close()
        write_counts(checkpoints / COUNTS_CHECKPOINT, matrix, fitted.vocabulary_.words, key)
        shutil.rmtree(checkpoints / PARTIAL_CHECKPOINT, ignore_errors=True)

    partial = CountCheckpoint(checkpoints / PARTIAL_CHECKPOINT, key, every_s=args.checkpoint_every,
                              resume=args.resume)
    try:
        trainer.fit(prepared, counts=counts, progress=bar.update, on_counts=checkpoint, checkpoint=partial)
    finally:
        bar.close()
    if partial.resumed_chunk is not None:
        print(f"resumed the count from its snapshot (chunk {partial.resumed_chunk})", file=sys.stderr)

    def write_extra(directory: Path) -> None:
        write_counts(directory, trainer.counts_, trainer.vocabulary_.words, key)

    path = store.save_model(models, name, trainer.embeddings_, write_extra)
    shutil.rmtree(checkpoints, ignore_errors=True)
    emb = trainer.embeddings_
    meta: dict[str, Any] = emb.meta
    t = meta["timings"]
    rate = meta.get("tokens_per_second")
    counted = (f"counting {t['count_s']:.1f} s ({rate / 1e6:.2f}M tokens/s)" if "count_s" in t
               else "counts re-used")
    print(f"saved model {name!r} (svd): {len(emb)} words x {emb.dim} dims, "
          f"{meta['cooccurrence']['nnz']:,} co-occurrence non-zeros; {counted}, PPMI {t['ppmi_s']:.1f} s, "
          f"SVD {t['svd_s']:.1f} s, {time.perf_counter() - started:.1f} s in all, "
          f"peak memory {peak_memory_mib():.0f} MiB -> {path}")
    if meta["dropped_words"]:
        print(f"note: {meta['dropped_words']} words had no positive-PMI context and got no vector",
              file=sys.stderr)
