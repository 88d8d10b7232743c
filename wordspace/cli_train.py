"""What every `wordspace train FAMILY` command shares: the common options
(--corpus, --name, --overwrite, --resume/--restart, --quiet), the printer that
turns the trainers' `Progress` events into tqdm bars and one line per epoch, and
the run itself through `embeddings.trainers.train_model`, which prints the exact
`--resume` command line when Ctrl-C interrupts it."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from embeddings import store
from embeddings.trainers import train_model
from embeddings.training import Progress
from embeddings.vectors import Embeddings

from .cli_common import data_dir, models_dir

#: Bar titles of the long steps trainers report.
STEPS = {"prepare": "preparing the corpus", "count": "counting co-occurrences", "train": "training",
         "pool": "pooling contexts"}


def add_train_options(p: argparse.ArgumentParser, default_name: str | None, checkpoints: bool = True) -> None:
    """--corpus, --name, --overwrite, --quiet and (for trainers with checkpoints) --resume / --restart."""
    p.add_argument("--corpus", required=True,
                   help="raw text file or directory (one document per line), a prepared corpus directory, "
                        "or 'sample' for the bundled sample corpus")
    if default_name is None:
        p.add_argument("--name", required=True, help="model name")
    else:
        p.add_argument("--name", default=default_name, help=f"model name (default: {default_name})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing model NAME (without it, an existing name is refused before "
                        "any work)")
    if checkpoints:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--resume", action="store_true",
                           help="continue an interrupted run from its last checkpoint in "
                                "MODELS/.checkpoints/NAME (from scratch if there is none)")
        group.add_argument("--restart", action="store_true",
                           help="delete the checkpoint an interrupted run of NAME left and start over "
                                "(without --resume or --restart such a checkpoint is kept and the command "
                                "refuses to run)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines (notes still print)")


def epoch_line(event: Progress) -> str:
    """`epoch 3/5: loss 1.23 (-4.0% vs epoch 2), held-out ppl 41.2, 812,000 words/s, 2.1 s`."""
    text = f"epoch {event.epoch}/{event.epochs}: loss {event.loss:.6g}"
    change = event.metrics.get("loss_change")
    if change is not None:
        text += f" ({change:+.1%} vs epoch {event.epoch - 1})"
    for label, value in event.metrics.items():
        if label != "loss_change" and value is not None:
            text += f", {label} {value:.4g}" if isinstance(value, float) else f", {label} {value}"
    if event.rate is not None:
        text += f", {event.rate:,.0f} {event.unit}/s"
    if event.seconds is not None:
        text += f", {event.seconds:.1f} s"
    return text


class ProgressPrinter:
    """A `progress` callback: a tqdm bar per long step, a line per epoch, every note (even when quiet)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.stage: str | None = None

    def __call__(self, event: Progress) -> None:
        if event.stage == "note":
            self.write(event.message)
        elif event.stage == "epoch":
            if not self.quiet:
                self.write(epoch_line(event))
        elif event.done is not None and not self.quiet:
            self._advance(event)

    def _advance(self, event: Progress) -> None:
        desc = STEPS.get(event.stage, event.stage)
        if event.epoch is not None and event.epochs is not None:
            desc += f", epoch {event.epoch}/{event.epochs}"
        if self.bar is None or self.stage != event.stage or self.bar.total != event.total or event.done < self.bar.n:
            self.close()
            self.bar = tqdm(total=event.total, unit=event.unit, unit_scale=True, file=sys.stderr,
                            dynamic_ncols=True, leave=False, desc=desc)
            self.stage = event.stage
        self.bar.set_description(desc, refresh=False)
        if event.loss is not None:
            self.bar.set_postfix_str(f"loss {event.loss:.4g}", refresh=False)
        self.bar.update(event.done - self.bar.n)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this run: the same arguments, --resume instead of --restart."""
    argv = [a for a in getattr(args, "argv", sys.argv[1:]) if a != "--restart"]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["wordspace", *argv])


def run_training(args: argparse.Namespace, family: str, params: Mapping[str, Any],
                 fit_options: Mapping[str, Any] | None = None) -> tuple[Embeddings, Path, float]:
    """Train and save through `train_model`; returns (vectors, model path, start time)."""
    started = time.perf_counter()
    printer = ProgressPrinter(quiet=args.quiet)
    models = models_dir(args)
    try:
        emb = train_model(family, args.corpus, name=args.name, models_dir=models, data_dir=data_dir(args),
                          overwrite=args.overwrite, resume=getattr(args, "resume", False),
                          restart=getattr(args, "restart", False), progress=printer,
                          fit_options=fit_options, **params)
    except KeyboardInterrupt:
        printer.close()
        if hasattr(args, "resume"):
            print(f"interrupted; the checkpoints are kept. To continue, run:\n  {resume_command(args)}",
                  file=sys.stderr)
        raise
    finally:
        printer.close()
    return emb, store.model_path(models, args.name), started
