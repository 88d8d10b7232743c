"""What every trainer shares: turning `--corpus` into a prepared corpus,
checkpoint locations, seeding, and the peak-memory figure printed at the end."""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from .corpus import PreparedCorpus, TokenizerConfig, input_key, prepare_corpus
from .datasets import SAMPLE_NAME, default_data_dir, sample_corpus_path

CHECKPOINTS_DIR = ".checkpoints"


def as_prepared(
    corpus: "PreparedCorpus | str | os.PathLike",
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> PreparedCorpus:
    """Accept a `PreparedCorpus`, a prepared directory, "sample", or a raw file/directory.

    Raw input is prepared once into `<data_dir>/prepared/<key>` and re-used after.
    """
    if isinstance(corpus, PreparedCorpus):
        return corpus
    data_dir = Path(data_dir or default_data_dir())
    if str(corpus) == SAMPLE_NAME:
        source = sample_corpus_path(data_dir)
    else:
        source = Path(corpus)
        if source.is_dir() and (source / "corpus.json").is_file():
            return PreparedCorpus.open(source)
        if not source.exists():
            raise FileNotFoundError(f"corpus not found: {source} (give a file, a directory, or 'sample')")
    key = input_key(source, TokenizerConfig())
    return prepare_corpus(source, data_dir / "prepared" / key[:16], progress=progress)


def checkpoint_dir(models_dir: str | os.PathLike, name: str) -> Path:
    """Where training checkpoints of model `name` live (outside any model version)."""
    return Path(models_dir) / CHECKPOINTS_DIR / name


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
