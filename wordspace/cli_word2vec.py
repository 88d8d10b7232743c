"""`wordspace train cbow` and `wordspace train skipgram`: word2vec from a corpus
to a saved model, with a progress bar, epoch-end checkpoints and `--resume`."""
from __future__ import annotations

import argparse
import time

from embeddings.training import peak_memory_mib
from embeddings.word2vec import DEFAULT_ALPHA

from .cli_train import add_train_options, run_training

_DESCRIPTIONS = {
    "cbow": "word2vec CBOW with negative sampling: the averaged context vectors predict the middle word.",
    "skipgram": "word2vec skip-gram with negative sampling: each word predicts the words of its context.",
}


def register(train_subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace train cbow` and `wordspace train skipgram`."""
    for family in ("cbow", "skipgram"):
        p = train_subparsers.add_parser(
            family, parents=[common], help=f"word2vec {family} (negative sampling, gensim engine)",
            description=_DESCRIPTIONS[family] + " A checkpoint is written at every epoch end into "
            "MODELS/.checkpoints/NAME; --resume continues from the last one after a crash, kill or "
            "Ctrl-C, --restart discards it. With --workers 1 the same --seed gives identical vectors.")
        add_train_options(p, default_name=family)
        p.add_argument("--dim", type=int, default=100, help="vector size (default: 100)")
        p.add_argument("--window", type=int, default=5, help="max distance to a context word (default: 5)")
        p.add_argument("--negative", type=int, default=5, help="noise words per positive pair (default: 5)")
        p.add_argument("--ns-exponent", type=float, default=0.75,
                       help="noise distribution is unigram^EXP (default: 0.75)")
        p.add_argument("--sample", type=float, default=1e-3,
                       help="frequent-word subsampling threshold; 0 disables it (default: 1e-3)")
        p.add_argument("--min-count", type=int, default=5, help="ignore words rarer than this (default: 5)")
        p.add_argument("--epochs", type=int, default=5, help="passes over the corpus (default: 5)")
        p.add_argument("--alpha", type=float, default=None,
                       help="initial learning rate, decays linearly to 1e-4 (default: word2vec.c's, "
                            f"{DEFAULT_ALPHA[0 if family == 'cbow' else 1]} for {family})")
        p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
        p.add_argument("--workers", type=int, default=None,
                       help="training threads (default: all cores; 1 for bit-reproducible runs)")
        p.add_argument("--loss", action="store_true",
                       help="compute the training loss and print it per epoch (about 5%% slower; off by "
                            "default, as in gensim and word2vec.c; the vectors are the same)")
        p.add_argument("--keep-context", action="store_true",
                       help="also store the output (context) vectors as context.npy, for w + c vectors")
        p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> None:
    params = dict(vector_size=args.dim, window=args.window, negative=args.negative, ns_exponent=args.ns_exponent,
                  sample=args.sample, min_count=args.min_count, epochs=args.epochs, alpha=args.alpha,
                  seed=args.seed, workers=args.workers, keep_context=args.keep_context,
                  compute_loss=args.loss)
    emb, path, started = run_training(args, args.family, params)
    meta = emb.meta
    rate, loss = meta["words_per_second"], meta["epoch_losses"][-1]
    print(f"saved model {args.name!r} ({meta['method']}): {len(emb)} words x {emb.dim} dims, "
          f"{meta['epochs']} epochs, {'' if loss is None else f'final epoch loss {loss:.6g}, '}"
          f"{'' if rate is None else f'{rate:,.0f} words/s, '}"
          f"{time.perf_counter() - started:.1f} s in all, peak memory {peak_memory_mib():.0f} MiB -> {path}")
