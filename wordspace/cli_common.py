"""What every `wordspace` subcommand shares: the one-line user error, the common
options (`--models`, `--data`) and the directories they choose."""
from __future__ import annotations

import argparse
from pathlib import Path

from embeddings import store
from embeddings.datasets import default_data_dir


class UserError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand accepts (`--models`, `--data`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--models", type=Path, default=None, metavar="DIR",
                        help="models directory (default: $WORDSPACE_MODELS or ./models)")
    parent.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="where the sample corpus and prepared corpora are kept "
                             "(default: $WORDSPACE_DATA or ./data)")
    return parent


def models_dir(args: argparse.Namespace) -> Path:
    """The models directory chosen by `--models` or the environment."""
    return args.models if args.models is not None else store.default_models_dir()


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory chosen by `--data` or the environment."""
    return args.data if args.data is not None else default_data_dir()


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    """`--cluster SPEC`: run the parallel steps of a command on a Dask cluster."""
    p.add_argument("--cluster", default=None, metavar="SPEC",
                   help="run the corpus preparation (and for svd, contextual and transformer also the "
                        "counting or pooling) on a Dask cluster: local or local:N for N worker processes "
                        "on this machine, or tcp://HOST:8786 for a running scheduler (default: "
                        "$WORDSPACE_CLUSTER; unset: this process only). Needs `pip install "
                        "-e '.[cluster]'`; remote workers need the package and shared storage "
                        "for the corpus and models")
