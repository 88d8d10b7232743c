"""What every `wordspace train FAMILY` command shares: the common options
(--corpus, --name, --overwrite, --resume/--restart, --quiet) and the run itself through `embeddings.trainers.train_model`, which prints the exact
`--resume` command line when Ctrl-C interrupts it."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from embeddings import store
from embeddings.trainers import train_model
from embeddings.vectors import Embeddings

from .cli_common import add_cluster_option, data_dir, models_dir
from .progress import ProgressPrinter

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
    add_cluster_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines (notes still print)")


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
                          fit_options=fit_options, cluster=args.cluster, **params)
    except KeyboardInterrupt:
        printer.close()
        if hasattr(args, "resume"):
            print(f"interrupted; the checkpoints are kept. To continue, run:\n  {resume_command(args)}",
                  file=sys.stderr)
        raise
    finally:
        printer.close()
    return emb, store.model_path(models, args.name), started
