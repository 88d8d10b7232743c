"""kill -9 during training, then `--resume`: the run continues from the newest
complete epoch checkpoint and ends equal to an uninterrupted run (the trainers
are deterministic in these settings). Each run is killed at random moments,
several times in a row, so kills also land while a checkpoint is being written.
Planted pickle payloads in a checkpoint directory are never executed."""
from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from embeddings import store
from embeddings.cli import main
from embeddings.corpus import PreparedCorpus, prepare_corpus
from embeddings.training import checkpoint_dir
from tests.test_faults_store import plant_payloads

ROOT = Path(__file__).resolve().parents[1]
RESUMING = re.compile(r"resum\w* .*?(?:after|from) (?:the checkpoint after )?epoch (\d+)")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> PreparedCorpus:
    """About 24k tokens of Zipf-distributed words: an epoch takes about 0.1 s."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    raw = tmp_path_factory.mktemp("tiny") / "tiny.txt"
    raw.write_text("\n".join(" ".join(rng.choice(words, size=20, p=p)) for _ in range(1200)) + "\n")
    return prepare_corpus(raw, raw.parent / "prepared")


@dataclass
class Trainer:
    """How to run one trainer from the CLI and find its complete epoch checkpoints."""

    family: str
    options: list[str]
    completed_epochs: Callable[[Path], list[int]]  # epochs of complete checkpoints in a checkpoint dir


def _dir_epochs(ckpt: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in ckpt.glob("epoch-*")
                  if p.is_dir() and (m := re.fullmatch(r"epoch-(\d+)", p.name)))


TRAINERS = {
    "skipgram": Trainer("skipgram", ["--dim", "12", "--window", "3", "--epochs", "14", "--workers", "1",
                                     "--seed", "5", "--min-count", "1"], _dir_epochs),
}


def _args(trainer: Trainer, corpus: PreparedCorpus, models: Path, name: str) -> list[str]:
    """`wordspace` arguments training `name` with this trainer's small settings."""
    return ["train", trainer.family, "--corpus", str(corpus.directory), "--name", name, "--models", str(models),
            "--quiet", *trainer.options]


def _cli(args: list[str], capsys) -> tuple[int, str]:
    """Run `wordspace ARGS` in this process (no interpreter start-up); (exit code, stderr)."""
    code = main(args)
    return code, capsys.readouterr().err


def _run_and_kill(argv: list[str], ckpt: Path, trainer: Trainer, delay: float) -> tuple[int | None, str]:
    """Start a training run, wait until it has written a checkpoint newer than the
    ones present at start, wait `delay` s more and SIGKILL it. Returns the epoch
    the run said it resumed from (None for a fresh start) and its stderr."""
    before = max(trainer.completed_epochs(ckpt), default=0)
    child = subprocess.Popen([sys.executable, "-m", "embeddings.cli", *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while max(trainer.completed_epochs(ckpt), default=0) <= before and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    _out, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{err}"
    match = RESUMING.search(err)
    return (int(match.group(1)) if match else None), err


@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_kill9_during_training_then_resume_equals_uninterrupted(family, tiny_corpus, tmp_path, capsys):
    """Two kills at random moments, then --resume to the end: every resume starts
    from the newest complete checkpoint, the final model equals an uninterrupted run."""
    trainer = TRAINERS[family]
    models = tmp_path / "models"
    code, err = _cli(_args(trainer, tiny_corpus, models, "reference"), capsys)
    assert code == 0, err
    ckpt = checkpoint_dir(models, "killed")
    argv = _args(trainer, tiny_corpus, models, "killed")
    rng = random.Random(family)
    resumed_from = []
    for attempt in range(2):
        started_from, _err = _run_and_kill(argv + (["--resume"] if attempt else []), ckpt, trainer,
                                           rng.uniform(0.0, 0.4))
        if attempt:
            resumed_from.append(started_from)
            assert started_from == expected, _err
        assert not store.model_path(models, "killed").exists()  # no half model was ever published
        expected = max(trainer.completed_epochs(ckpt))
        assert expected >= 1
    code, err = _cli(argv + ["--resume"], capsys)
    assert code == 0, err
    match = RESUMING.search(err)
    assert match and int(match.group(1)) == expected, err
    killed = store.load_model(models, "killed")
    np.testing.assert_array_equal(killed.vectors, store.load_model(models, "reference").vectors)
    assert killed.words == store.load_model(models, "reference").words
    assert not ckpt.exists() or not any(ckpt.iterdir())  # checkpoints cleared once the model is saved


#: Names inside a checkpoint directory that a resuming trainer might open.
CHECKPOINT_NAMES = {
    "skipgram": ("epoch-0009/input.npy", "epoch-0009/output.npy", "epoch-0009/rng_keys.npy",
                 "epoch-0010/input.npy", "epoch-0010/output.npy", "epoch-0010/rng_keys.npy"),
}


@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_resume_never_unpickles_planted_checkpoints(family, tiny_corpus, tmp_path, capsys):
    """Checkpoints made of pickle payloads (with a state.json whose checksums match
    them) are refused or skipped by --resume, and no payload ever runs."""
    trainer = TRAINERS[family]
    models = tmp_path / "models"
    ckpt = checkpoint_dir(models, "evil")
    sentinel = tmp_path / "pwned"
    plant_payloads(ckpt, CHECKPOINT_NAMES[family], sentinel)
    from embeddings.atomic import sha256_file

    for directory in {p.parent for p in ckpt.rglob("*") if p.is_file()}:
        files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for p in directory.iterdir() if p.is_file()}
        state = {"format": 1, "epochs_done": int(directory.name.split("-")[-1]) if "-" in directory.name else 1,
                 "files": files}
        (directory / "state.json").write_text(json.dumps(state))
    code, err = _cli(_args(trainer, tiny_corpus, models, "evil") + ["--resume"], capsys)
    assert not sentinel.exists()
    # Either the payloads were skipped as broken checkpoints and training started over,
    # or the run refused them with one clear line.
    assert code == 0 or err.strip().splitlines()[-1].startswith("wordspace: error:"), err
    assert "checkpoint" in err  # the planted files were reached and refused, not silently ignored
