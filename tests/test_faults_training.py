"""kill -9 during training, then `--resume`: the run continues from the newest
complete checkpoint and ends equal to an uninterrupted run (each trainer is
deterministic in the settings used here: word2vec with one worker, SVD with a
fixed random_state, the Transformer on one thread). Kills land after a random
number of checkpoints plus a random few milliseconds, so also while the next
checkpoint is being written.
Planted pickle payloads in a checkpoint directory are never executed."""
from __future__ import annotations

import contextlib
import io
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
from embeddings.atomic import sha256_file
from wordspace.cli import main
from embeddings.corpus import PreparedCorpus, prepare_corpus
from embeddings.training import checkpoint_dir
from tests.test_faults_store import plant_payloads

ROOT = Path(__file__).resolve().parents[1]


def zipf_corpus(directory: Path, n_words: int, n_sentences: int, exponent: float = 1.0) -> PreparedCorpus:
    """Sentences of 20 Zipf-distributed words w0..w(n-1), prepared for training."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(n_words)]
    p = 1.0 / np.arange(1, n_words + 1) ** exponent
    p /= p.sum()
    raw = directory / "corpus.txt"
    raw.write_text("\n".join(" ".join(rng.choice(words, size=20, p=p)) for _ in range(n_sentences)) + "\n")
    return prepare_corpus(raw, directory / "prepared")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> PreparedCorpus:
    """About 24k tokens over 300 words: a word2vec epoch takes about 0.1 s."""
    return zipf_corpus(tmp_path_factory.mktemp("tiny"), 300, 1200)


@pytest.fixture(scope="module")
def micro_corpus(tmp_path_factory) -> PreparedCorpus:
    """About 10k tokens over 200 words: a Transformer epoch takes a second or so."""
    return zipf_corpus(tmp_path_factory.mktemp("micro"), 200, 500)


@pytest.fixture(scope="module")
def svd_corpus(tmp_path_factory) -> PreparedCorpus:
    """About 80k tokens over 1,500 words: the SVD step lasts long enough to be killed in."""
    return zipf_corpus(tmp_path_factory.mktemp("svd"), 1500, 4000, exponent=0.9)


def _epoch_dirs(ckpt: Path) -> list[int]:
    """word2vec and the Transformer: complete checkpoints are epoch-NNNN/ directories (renamed into place)."""
    return sorted(int(m.group(1)) for p in ckpt.glob("epoch-*")
                  if p.is_dir() and (m := re.fullmatch(r"epoch-(\d+)", p.name)))


def _svd_counts(ckpt: Path) -> list[int]:
    """SVD: the one checkpoint is the co-occurrence counts; "step 1" once its info file is written."""
    return [1] if (ckpt / "counts" / "cooccurrence.json").is_file() else []


@dataclass
class Trainer:
    """How to run one trainer from the CLI, find its complete checkpoints, and read
    from its stderr which checkpoint a resumed run started from."""

    family: str
    options: list[str]
    completed: Callable[[Path], list[int]]
    resumed: re.Pattern  # group 1 = the epoch (or step) the run resumed from
    steps: int  # checkpoints a whole run writes (epochs; 1 for SVD's counts)
    kills: int
    corpus: str  # fixture name


TRAINERS = {
    "skipgram": Trainer("skipgram", ["--dim", "12", "--window", "3", "--epochs", "14", "--workers", "1",
                                     "--seed", "5", "--min-count", "1", "--quiet"], _epoch_dirs,
                        re.compile(r"resuming \w+ from \S+ \(epoch (\d+)/"), 14, 2, "tiny_corpus"),
    "svd": Trainer("svd", ["--dim", "30", "--window", "3", "--min-count", "1", "--seed", "3", "--quiet"],
                   _svd_counts, re.compile(r"re-using the co-occurrence counts from checkpoint()"), 1, 1,
                   "svd_corpus"),
    "transformer": Trainer("transformer", ["--d-model", "16", "--layers", "1", "--heads", "2", "--max-len", "16",
                                           "--epochs", "3", "--batch-size", "64", "--threads", "1",
                                           "--min-count", "1", "--seed", "2"], _epoch_dirs,
                           re.compile(r"resuming \w+ from \S+ \(epoch (\d+)/"), 3, 1, "micro_corpus"),
}


def _args(trainer: Trainer, corpus: PreparedCorpus, models: Path, name: str) -> list[str]:
    """`wordspace` arguments training `name` with this trainer's small settings."""
    return ["train", trainer.family, "--corpus", str(corpus.directory), "--name", name, "--models", str(models),
            *trainer.options]


@contextlib.contextmanager
def _torch_threads_restored():
    """`train transformer --threads 1` pins torch's threads for the whole process; put
    the count back so later tests in this pytest process are not slowed down."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None and before is not None:
            torch.set_num_threads(before)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    """Run `wordspace ARGS` in this process (no interpreter start-up); (exit code, stderr)."""
    with _torch_threads_restored():
        code = main(args)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def reference(request, tmp_path_factory) -> Callable[[str], Path]:
    """The models directory of an uninterrupted run per trainer (trained once, on demand).
    Kept apart from the killed runs: `train svd` re-uses the counts of any svd model."""
    done: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in done:
            trainer = TRAINERS[family]
            models = tmp_path_factory.mktemp(f"reference-{family}")
            err = io.StringIO()
            corpus = request.getfixturevalue(trainer.corpus)
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                    _torch_threads_restored():
                code = main(_args(trainer, corpus, models, "reference"))
            assert code == 0, err.getvalue()[-2000:]
            done[family] = models
        return done[family]
    return get


def _resumed_from(trainer: Trainer, err: str) -> int | None:
    match = trainer.resumed.search(err)
    if match is None:
        return None
    return int(match.group(1)) if match.group(1) else 1


def _run_and_kill(args: list[str], ckpt: Path, trainer: Trainer, rng: random.Random) -> str:
    """Start a training run, wait until it has written 1 to 4 (random, and never the
    last) checkpoints more than were present at start, wait 0-30 ms more (into the
    next epoch, or the next checkpoint write) and SIGKILL it; returns its stderr.
    Counting checkpoints instead of seconds keeps the kill inside the run on a fast
    machine and a loaded one alike."""
    before = max(trainer.completed(ckpt), default=0)
    target = before + rng.randint(1, max(1, min(4, trainer.steps - 1 - before)))
    child = subprocess.Popen([sys.executable, "-m", "wordspace.cli", *args], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while max(trainer.completed(ckpt), default=0) < target and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.03))
    child.send_signal(signal.SIGKILL)
    _out, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{err[-2000:]}"
    return err


@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_kill9_during_training_then_resume_equals_uninterrupted(family, request, reference, tmp_path, capsys):
    """Kills at random moments after a checkpoint, then --resume to the end: every
    resume starts from the newest complete checkpoint, no half model is ever
    published, and the final model equals an uninterrupted run."""
    trainer = TRAINERS[family]
    corpus = request.getfixturevalue(trainer.corpus)
    models = tmp_path / "models"
    ckpt = checkpoint_dir(models, "killed")
    args = _args(trainer, corpus, models, "killed")
    rng = random.Random(family)
    expected = None
    for attempt in range(trainer.kills):
        err = _run_and_kill(args + (["--resume"] if attempt else []), ckpt, trainer, rng)
        if attempt:
            assert _resumed_from(trainer, err) == expected, err[-2000:]
        assert not store.model_path(models, "killed").exists()  # nothing half-trained was published
        expected = max(trainer.completed(ckpt))
    code, err = _cli(args + ["--resume"], capsys)
    assert code == 0, err[-2000:]
    assert _resumed_from(trainer, err) == expected, err[-2000:]
    killed, uninterrupted = store.load_model(models, "killed"), store.load_model(reference(family), "reference")
    assert killed.words == uninterrupted.words
    np.testing.assert_array_equal(killed.vectors, uninterrupted.vectors)


def test_svd_resume_with_a_corrupt_counts_checkpoint_recounts(svd_corpus, reference, tmp_path, capsys):
    """A counts checkpoint damaged after the kill is not trusted: --resume counts again
    and still ends equal to an uninterrupted run."""
    trainer = TRAINERS["svd"]
    models = tmp_path / "models"
    ckpt = checkpoint_dir(models, "killed")
    _run_and_kill(_args(trainer, svd_corpus, models, "killed"), ckpt, trainer, random.Random(0))
    counts = ckpt / "counts" / "cooccurrence.npz"
    data = bytearray(counts.read_bytes())
    data[len(data) // 2] ^= 0xFF
    counts.write_bytes(bytes(data))
    code, err = _cli(_args(trainer, svd_corpus, models, "killed") + ["--resume"], capsys)
    assert code == 0, err[-2000:]
    assert "re-using" not in err
    np.testing.assert_array_equal(store.load_model(models, "killed").vectors,
                                  store.load_model(reference("svd"), "reference").vectors)


#: Names inside a checkpoint directory that a resuming trainer might open.
CHECKPOINT_NAMES = {
    "skipgram": ("epoch-0009/input.npy", "epoch-0009/output.npy", "epoch-0009/rng_keys.npy",
                 "epoch-0010/input.npy", "epoch-0010/output.npy", "epoch-0010/rng_keys.npy"),
    "svd": ("counts/cooccurrence.npz", "counts/cooccurrence_vocab.txt"),
    "transformer": ("epoch-0001/state.pt", "epoch-0002/state.pt", "epoch-0003/state.pt", "epoch-9999/state.pt"),
}


def _plant_checkpoints(ckpt: Path, family: str, sentinel: Path, reference_models: Path) -> None:
    """Payloads under every checkpoint name, plus the index files (state.json,
    cooccurrence.json) recording their checksums, so the loaders reach them."""
    plant_payloads(ckpt, CHECKPOINT_NAMES[family], sentinel)
    for directory in {p.parent for p in ckpt.rglob("*") if p.is_file()}:
        files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for p in directory.iterdir() if p.is_file()}
        if family in ("skipgram", "transformer"):
            epoch = int(directory.name.split("-")[1])
            (directory / "state.json").write_text(json.dumps({
                "format": 1, "trainer": "word2vec" if family == "skipgram" else "transformer",
                "epochs_done": epoch, "files": files}))
        elif family == "svd":
            # The real re-use key and vocabulary hash (from an honest run), the payload's sha256.
            info = json.loads((store.model_path(reference_models, "reference").resolve()
                               / "cooccurrence.json").read_text())
            info["sha256"] = sha256_file(directory / "cooccurrence.npz")
            (directory / "cooccurrence.json").write_text(json.dumps(info))


@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_resume_never_unpickles_planted_checkpoints(family, request, reference, tmp_path, capsys):
    """Checkpoints made of pickle payloads (with index files whose checksums match
    them) are refused or skipped by --resume, and no payload ever runs."""
    trainer = TRAINERS[family]
    corpus = request.getfixturevalue(trainer.corpus)
    models = tmp_path / "models"
    sentinel = tmp_path / "pwned"
    _plant_checkpoints(checkpoint_dir(models, "evil"), family, sentinel,
                       reference(family) if family == "svd" else tmp_path)
    args = _args(trainer, corpus, models, "evil") + ["--resume"]
    if family == "transformer":
        args[args.index("--epochs") + 1] = "1"
    code, err = _cli(args, capsys)
    assert not sentinel.exists()
    # Either the payloads were skipped as broken checkpoints and training started over,
    # or the run refused them with one clear line.
    assert code == 0 or err.strip().splitlines()[-1].startswith("wordspace: error:"), err[-2000:]
    assert "Traceback" not in err
    refused = {"skipgram": "skipped broken checkpoint", "transformer": "skipped broken checkpoint"}.get(family)
    if refused:  # the planted files were reached and refused, not silently ignored
        assert refused in err, err[-2000:]
