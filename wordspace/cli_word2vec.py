"""`wordspace train cbow` and `wordspace train skipgram`: word2vec from a corpus
to a saved model, with a progress bar, epoch-end checkpoints and `--resume`."""
from __future__ import annotations

import argparse
import sys
import time

from embeddings import store
from embeddings.training import as_prepared, checkpoint_dir, peak_memory_mib
from embeddings.word2vec import EpochReport, Word2VecTrainer, clear_checkpoints, save_trained

from .cli_common import data_dir, models_dir

_DESCRIPTIONS = {
    "cbow": "word2vec CBOW with negative sampling: the averaged context vectors predict the middle word.",
    "skipgram": "word2vec skip-gram with negative sampling: each word predicts the words of its context.",
}


def register(train_subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace train cbow` and `wordspace train skipgram`."""
    for family, sg in (("cbow", 0), ("skipgram", 1)):
        p = train_subparsers.add_parser(
            family, parents=[common], help=f"word2vec {family} (negative sampling, gensim engine)",
            description=_DESCRIPTIONS[family] + " A checkpoint is written at every epoch end into "
            "MODELS/.checkpoints/NAME; --resume continues from the last one after a crash or kill. "
            "With --workers 1 the same --seed gives identical vectors.")
        p.add_argument("--corpus", required=True,
                       help="raw text file or directory (one document per line), a prepared corpus directory, "
                            "or 'sample' for the bundled sample corpus")
        p.add_argument("--name", default=family, help=f"model name (default: {family})")
        p.add_argument("--dim", type=int, default=100, help="vector size (default: 100)")
        p.add_argument("--window", type=int, default=5, help="max distance to a context word (default: 5)")
        p.add_argument("--negative", type=int, default=5, help="noise words per positive pair (default: 5)")
        p.add_argument("--ns-exponent", type=float, default=0.75,
                       help="noise distribution is unigram^EXP (default: 0.75)")
        p.add_argument("--sample", type=float, default=1e-3,
                       help="frequent-word subsampling threshold; 0 disables it (default: 1e-3)")
        p.add_argument("--min-count", type=int, default=5, help="ignore words rarer than this (default: 5)")
        p.add_argument("--epochs", type=int, default=5, help="passes over the corpus (default: 5)")
        p.add_argument("--alpha", type=float, default=0.025,
                       help="initial learning rate, decays linearly to 1e-4 (default: 0.025; "
                            "word2vec.c uses 0.05 for CBOW)")
        p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
        p.add_argument("--workers", type=int, default=None,
                       help="training threads (default: all cores; 1 for bit-reproducible runs)")
        p.add_argument("--keep-context", action="store_true",
                       help="also store the output (context) vectors as context.npy, for w + c vectors")
        p.add_argument("--resume", action="store_true",
                       help="continue from the last epoch-end checkpoint of NAME (from scratch if none)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=_cmd_train, sg=sg)


class _Progress:
    """A tqdm bar over corpus words (so it shows words/s) plus one line per epoch with the loss change."""

    def __init__(self, trainer: Word2VecTrainer, words_per_epoch: int, quiet: bool) -> None:
        self.trainer = trainer
        self.words_per_epoch = words_per_epoch
        self.quiet = quiet
        self.bar = None

    def start(self, trainer: Word2VecTrainer) -> None:
        from tqdm import tqdm

        info = trainer.resume_info_
        for note in info.notes:
            print(f"note: {note}", file=sys.stderr)
        done = info.resumed_from_epoch or 0
        if info.resumed_from_epoch is not None:
            print(f"resuming {trainer.method} from the checkpoint after epoch {done}/{trainer.epochs}",
                  file=sys.stderr)
        self.bar = tqdm(total=self.words_per_epoch * trainer.epochs, initial=self.words_per_epoch * done,
                        unit="w", unit_scale=True, desc=f"{trainer.method} epoch {done}/{trainer.epochs}",
                        disable=self.quiet, file=sys.stderr, dynamic_ncols=True)

    def epoch(self, report: EpochReport) -> None:
        if self.bar is None:
            return
        change = report.loss_change
        delta = "" if change is None else f" ({change:+.1%} vs epoch {report.epoch - 1})"
        self.bar.set_description(f"{self.trainer.method} epoch {report.epoch}/{report.epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {report.loss:.4g}{delta}", refresh=False)
        # gensim's threads read slightly past their share (byte offsets), so count the corpus size.
        self.bar.update(self.words_per_epoch)
        if not self.quiet:
            self.bar.write(f"epoch {report.epoch}/{report.epochs}: loss {report.loss:.6g}{delta}, "
                           f"{report.words_per_second:,.0f} words/s, {report.seconds:.1f} s", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_train(args: argparse.Namespace) -> None:
    # Every bad value is reported before any corpus is read or prepared.
    name = store.validate_name(args.name)
    trainer = Word2VecTrainer(
        sg=args.sg, vector_size=args.dim, window=args.window, negative=args.negative,
        ns_exponent=args.ns_exponent, sample=args.sample, min_count=args.min_count, epochs=args.epochs,
        alpha=args.alpha, seed=args.seed, workers=args.workers, keep_context=args.keep_context)
    trainer.check_params()
    models = models_dir(args)
    started = time.perf_counter()
    prepared = as_prepared(args.corpus, data_dir(args), progress=not args.quiet)
    checkpoints = checkpoint_dir(models, name)
    progress = _Progress(trainer, prepared.n_tokens, args.quiet)
    try:
        trainer.fit(prepared, checkpoint_dir=checkpoints, resume=args.resume,
                    on_start=progress.start, on_epoch=progress.epoch)
    finally:
        progress.close()
    path = save_trained(trainer, models, name)
    clear_checkpoints(checkpoints)
    emb = trainer.embeddings_
    meta = emb.meta
    losses = meta["epoch_losses"]
    rate = meta["words_per_second"]
    print(f"saved model {name!r} ({trainer.method}): {len(emb)} words x {emb.dim} dims, "
          f"{trainer.epochs} epochs, final epoch loss {losses[-1]:.6g}, "
          f"{'' if rate is None else f'{rate:,.0f} words/s, '}"
          f"{time.perf_counter() - started:.1f} s in all, peak memory {peak_memory_mib():.0f} MiB -> {path}")
