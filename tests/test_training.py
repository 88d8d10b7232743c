"""The trainer base: parameter checks, the one checkpoint scheme (atomic epoch
directories, verification, pruning, the lock, unfinished runs), and the base class."""
from __future__ import annotations

import json
import os

import pytest

from embeddings.svd import SVDTrainer
from embeddings.training import (BackgroundWriter, Checkpoints, Trainer, UnfinishedRun, check_bool, check_choice,
                                 check_int, check_real, words_sha256)
from embeddings.word2vec import CBOW, Word2VecTrainer


# -- parameter checks --------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: check_int("n", 2.5), "n must be an integer, got 2.5"),
    (lambda: check_int("n", True), "n must be an integer, got True"),
    (lambda: check_int("n", 0, 1), "n must be >= 1, got 0"),
    (lambda: check_int("n", 9, 1, 8), r"n must be in \[1, 8\], got 9"),
    (lambda: check_real("x", float("nan")), "x must be a finite number, got nan"),
    (lambda: check_real("x", "1"), "x must be a finite number, got '1'"),
    (lambda: check_real("x", 0.0, 0.0, low_open=True), "x must be > 0.0, got 0.0"),
    (lambda: check_real("x", 0.5, 0.0, 0.5, high_open=True), r"x must be in \[0.0, 0.5\), got 0.5"),
    (lambda: check_real("x", 2.0, maximum=1.0), "x must be <= 1.0, got 2.0"),
    (lambda: check_bool("flag", 1), "flag must be True or False, got 1"),
    (lambda: check_choice("layers", "all", ("last", "last4")), "layers must be one of 'last', 'last4', got 'all'"),
])
def test_checks_name_the_bad_value(call, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        call()


def test_checks_return_good_values():
    assert check_int("n", 3, 1, 3) == 3 and check_real("x", 1, 0.0, low_open=True) == 1.0
    assert check_bool("b", False) is False and check_choice("c", "last", ("last",)) == "last"
    assert words_sha256(["a", "b"]) != words_sha256(["b", "a"])


# -- checkpoints -------------------------------------------------------------------
def _write(checkpoints: Checkpoints, epoch: int, payload: bytes = b"data") -> None:
    checkpoints.write(epoch, {"a.bin": payload, "b.bin": payload * 2}, {"trainer": "t", "note": epoch})


def test_write_is_atomic_prunes_older_and_verifies(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    _write(checkpoints, 1)
    _write(checkpoints, 2, b"newer")
    assert [epoch for epoch, _ in checkpoints.epochs()] == [2]  # older ones pruned
    assert not list(checkpoints.directory.glob(".*tmp*"))
    found = Checkpoints.read(checkpoints.directory / "epoch-0002", "t")
    assert found.epochs_done == 2 and found.state["note"] == 2
    assert found.file("a.bin").read_bytes() == b"newer"
    state = json.loads((found.path / "state.json").read_text())
    assert set(state["files"]) == {"a.bin", "b.bin"} and state["files"]["a.bin"]["bytes"] == 5
    with pytest.raises(ValueError, match="trainer"):
        checkpoints.write(3, {}, {"no": "trainer"})
    assert [epoch for epoch, _ in checkpoints.epochs()] == [2]  # a failed write leaves nothing


def test_latest_skips_broken_checkpoints_and_refuses_another_trainers(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    _write(checkpoints, 1, b"old")
    keep = checkpoints.directory / "keep"
    os.rename(checkpoints.directory / "epoch-0001", keep)
    _write(checkpoints, 2, b"new")
    os.rename(keep, checkpoints.directory / "epoch-0001")  # two checkpoints, as after a kill in the pruning
    with open(checkpoints.directory / "epoch-0002" / "b.bin", "r+b") as handle:
        handle.write(b"X")
    notes: list[str] = []
    checkpoint, loaded = checkpoints.latest(lambda c: c.file("a.bin").read_bytes(), notes, "t")
    assert checkpoint.epochs_done == 1 and loaded == b"old"
    assert len(notes) == 1 and "skipped broken checkpoint" in notes[0] and "checksum" in notes[0]
    # A loader error is a broken checkpoint too.
    notes.clear()
    assert checkpoints.latest(lambda c: (_ for _ in ()).throw(ValueError("bad array")), notes, "t") is None
    assert len(notes) == 2
    # Another trainer's checkpoint is never skipped (and later deleted) as if it were broken.
    with pytest.raises(UnfinishedRun, match="checkpoint of the t trainer, not word2vec.*--restart"):
        checkpoints.latest(lambda c: c, [], "word2vec")


def test_start_refuses_an_unfinished_run_or_resumes_the_newest(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    assert checkpoints.start(False, lambda c: c, []) is None  # nothing there: a fresh start
    _write(checkpoints, 3)
    (checkpoints.directory / ".epoch-0004.tmp-99").mkdir()  # a write killed half-way
    with pytest.raises(UnfinishedRun, match=r"unfinished run \(epoch-0003\)"):
        checkpoints.start(False, lambda c: c, [])
    assert checkpoints.leftovers() == ["epoch-0003"]
    notes: list[str] = []
    checkpoint, _ = checkpoints.start(True, lambda c: None, notes, "t")
    assert checkpoint.epochs_done == 3 and notes == []
    assert sorted(p.name for p in checkpoints.directory.iterdir()) == ["epoch-0003"]  # the temp dir went
    with checkpoints.lock():
        with pytest.raises(ValueError, match="another process is training"):
            with Checkpoints(checkpoints.directory).lock():
                pass
        with pytest.raises(ValueError, match="another process is training"):
            Checkpoints(checkpoints.directory).discard()
    checkpoints.discard()
    assert checkpoints.leftovers() == [] and checkpoints.start(True, lambda c: c, notes) is None
    assert notes == ["no usable checkpoint: training from scratch"]
    checkpoints.remove()
    assert not checkpoints.directory.exists()


def test_background_writer_reraises_a_failed_write(tmp_path):
    writer = BackgroundWriter(Checkpoints(tmp_path / "ck"))
    writer.submit(1, lambda: {"a.bin": b"x"}, {"trainer": "t"})
    writer.submit(2, lambda: (_ for _ in ()).throw(OSError("disk full")), {"trainer": "t"})
    with pytest.raises(OSError, match="writing a checkpoint into .* failed: disk full"):
        writer.close()
    assert [epoch for epoch, _ in Checkpoints(tmp_path / "ck").epochs()] == [1]


# -- the base class ------------------------------------------------------------------
def test_every_trainer_has_the_same_fit_signature_and_params():
    import inspect

    for cls in (Word2VecTrainer, CBOW, SVDTrainer):
        fit = inspect.signature(cls.fit).parameters
        assert list(fit)[:5] == ["self", "corpus", "checkpoint_dir", "resume", "progress"], cls
        assert all(fit[name].kind is inspect.Parameter.KEYWORD_ONLY for name in list(fit)[2:]), cls
        assert issubclass(cls, Trainer)
    assert "sg" in Word2VecTrainer.param_names() and "sg" not in CBOW.param_names()
    assert CBOW.param_names() == tuple(n for n in Word2VecTrainer.param_names() if n != "sg")
    assert SVDTrainer.param_names()[:3] == ("dim", "window", "weighting")


def test_save_before_fit_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        CBOW().save(tmp_path, "m")
