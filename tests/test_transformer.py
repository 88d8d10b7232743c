"""The MLM Transformer: positional codes, masking, padding, learning, checkpoints."""
from __future__ import annotations

import math
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from embeddings.corpus import prepare_corpus
from embeddings.transformer_model import (
    IGNORE, MASK_ID, N_SPECIAL, PAD_ID, TransformerConfig, TransformerEncoderLM, apply_rope, load_checkpoint,
    mask_tokens, pad_batch, rope_tables, sinusoidal_encoding,
)
from embeddings.training import UnfinishedRun
from embeddings.transformer_train import TransformerMLM


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are overhead-bound: one torch thread is fastest and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def grammar_lines(n: int = 400, vocab: int = 20, seed: int = 0) -> list[str]:
    """A deterministic grammar: each word is the successor (mod `vocab`) of the one before."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        start, length = rng.randrange(vocab), rng.randrange(8, 17)
        lines.append(" ".join(f"w{(start + i) % vocab}" for i in range(length)))
    return lines


@pytest.fixture(scope="module")
def grammar_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("grammar")
    (root / "grammar.txt").write_text("\n".join(grammar_lines()) + "\n", encoding="utf-8")
    return prepare_corpus(root / "grammar.txt", root / "prepared")


def tiny(**overrides) -> TransformerMLM:
    params = dict(d_model=32, n_heads=2, n_layers=2, max_len=32, epochs=10, batch_size=8, lr=5e-3,
                  min_count=1, holdout=0.1, dropout=0.0, max_contexts=0, random_state=0)
    params.update(overrides)
    return TransformerMLM(**params)


def test_sinusoidal_encoding_matches_formula():
    d = 16
    pe = sinusoidal_encoding(50, d)
    for i in (0, 1, 7, 49):
        for j in range(d // 2):
            angle = i / 10000 ** (2 * j / d)
            assert pe[i, 2 * j].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[i, 2 * j + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    cos, sin = rope_tables(32, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> float:
        x = torch.zeros(1, 1, 32, 8)
        x[0, 0, i], y = q, torch.zeros(1, 1, 32, 8)
        y[0, 0, j] = k
        return float(apply_rope(x, cos, sin)[0, 0, i] @ apply_rope(y, cos, sin)[0, 0, j])

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 9), abs=1e-3)
    # Rotation keeps lengths.
    x = torch.randn(1, 1, 32, 8)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_masking_proportions_and_padding():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(N_SPECIAL, 1000, (200, 100))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[:, 80:] = False
    ids[~mask] = PAD_ID
    inputs, targets = mask_tokens(ids, mask, 1000, gen, prob=0.15)
    chosen = targets != IGNORE
    assert not chosen[~mask].any(), "padding must never be predicted"
    assert torch.equal(targets[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen]), "unchosen tokens stay as they are"
    assert chosen[mask].float().mean().item() == pytest.approx(0.15, abs=0.01)
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK_ID).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    replaced = 1 - masked - kept
    assert masked == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.02)   # (+ the ~0.1% random draws of the same word)
    assert replaced == pytest.approx(0.1, abs=0.02)
    assert (inputs[chosen] >= N_SPECIAL).logical_or(inputs[chosen] == MASK_ID).all()


def test_loss_is_cross_entropy_on_masked_positions_only():
    torch.manual_seed(0)
    model = TransformerEncoderLM(TransformerConfig(vocab_size=50, d_model=16, n_heads=2, n_layers=2,
                                                   d_ff=32, max_len=16, dropout=0.0)).eval()
    ids, mask = pad_batch([torch.randint(N_SPECIAL, 50, (n,)) for n in (12, 7, 16)])
    inputs, targets = mask_tokens(ids, mask, 50, torch.Generator().manual_seed(1), prob=0.3)
    full, none = model(inputs, mask)
    assert none is None and full.shape == (3, 16, 50)
    logits, loss = model(inputs, mask, targets)
    chosen = targets != IGNORE
    assert logits.shape == (int(chosen.sum()), 50)
    reference = F.cross_entropy(full.reshape(-1, 50), targets.reshape(-1), ignore_index=IGNORE)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # Changing the words at unchosen positions' targets changes nothing: they are not predicted.
    other = targets.clone()
    other[~chosen] = IGNORE
    assert model(inputs, mask, other)[1].item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    grads = model.tok_emb.weight.grad
    assert grads is not None and torch.isfinite(grads).all()


@pytest.mark.parametrize("positional", ["sinusoidal", "rope"])
def test_padding_does_not_change_real_positions(positional):
    torch.manual_seed(0)
    model = TransformerEncoderLM(TransformerConfig(vocab_size=40, d_model=16, n_heads=4, n_layers=2,
                                                   d_ff=32, max_len=24, dropout=0.0,
                                                   positional=positional)).eval()
    seq = torch.randint(N_SPECIAL, 40, (1, 10))
    alone = model.hidden_states(seq, torch.ones_like(seq, dtype=torch.bool))[-1]
    padded = torch.cat([seq, torch.randint(N_SPECIAL, 40, (1, 14))], dim=1)  # junk in the padded tail
    mask = torch.zeros_like(padded, dtype=torch.bool)
    mask[:, :10] = True
    with_pad = model.hidden_states(padded, mask)[-1]
    assert torch.allclose(alone, with_pad[:, :10], atol=1e-5)
    # Without the mask the junk would leak in: the test can fail.
    unmasked = model.hidden_states(padded, torch.ones_like(mask))[-1]
    assert not torch.allclose(alone, unmasked[:, :10], atol=1e-3)


def test_config_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=30, n_heads=4).validate()
    with pytest.raises(ValueError, match="positional"):
        TransformerConfig(positional="learned").validate()
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        tiny(epochs=0).fit(None)
    with pytest.raises(ValueError, match="divisible"):  # the shape is checked before any corpus work
        tiny(d_model=30, n_heads=4).fit(None)


def test_learns_a_deterministic_grammar(grammar_corpus):
    trainer = tiny().fit(grammar_corpus)
    ppl, unigram = trainer.heldout_perplexity()
    assert unigram == pytest.approx(20, rel=0.15)  # 20 equally frequent words
    assert ppl < unigram / 2, trainer.history_
    losses = [h["train_loss"] for h in trainer.history_]
    assert losses[-1] < losses[0]


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    """A progress callback that interrupts training once epoch `epoch` has ended (like a kill)."""
    def progress(event):
        if event.stage == "epoch" and event.epoch == epoch:
            raise _Stop
    return progress


def test_resume_from_checkpoint_equals_uninterrupted_run(grammar_corpus, tmp_path):
    full = tiny(epochs=3, dropout=0.1).fit(grammar_corpus)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        tiny(epochs=3, dropout=0.1).fit(grammar_corpus, checkpoint_dir=ckpt, progress=_stop_after(2))
    # One checkpoint directory per epoch, older ones pruned; the dict is read with weights_only.
    assert sorted(p.name for p in ckpt.iterdir()) == [".lock", "epoch-0002"]
    assert sorted(p.name for p in (ckpt / "epoch-0002").iterdir()) == ["state.json", "state.pt"]
    saved = load_checkpoint(ckpt / "epoch-0002" / "state.pt")
    assert saved["epoch"] == 2 and len(saved["history"]) == 2
    events = []
    resumed = tiny(epochs=3, dropout=0.1).fit(grammar_corpus, checkpoint_dir=ckpt, resume=True,
                                             progress=events.append)
    assert resumed.resumed_from_epoch_ == 2
    assert [e.message for e in events if e.stage == "note"] == [
        f"resuming transformer from {ckpt / 'epoch-0002'} (epoch 2/3 done)"]
    assert [e.epoch for e in events if e.stage == "epoch"] == [3]
    for key, tensor in full.model_.state_dict().items():
        assert torch.equal(tensor, resumed.model_.state_dict()[key]), key
    assert [h["train_loss"] for h in resumed.history_] == [h["train_loss"] for h in full.history_]
    assert sorted(p.name for p in ckpt.iterdir()) == [".lock", "epoch-0003"]


def test_resume_refuses_other_settings_and_a_fresh_run_keeps_the_checkpoint(grammar_corpus, tmp_path):
    tiny(epochs=1).fit(grammar_corpus, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"cannot resume .*epochs=1 in the checkpoint, 2 now"):
        tiny(epochs=2).fit(grammar_corpus, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(UnfinishedRun, match="--resume"):
        tiny(epochs=1).fit(grammar_corpus, checkpoint_dir=tmp_path)
    assert (tmp_path / "epoch-0001" / "state.pt").is_file()


def test_a_corrupt_checkpoint_is_skipped_with_a_note(grammar_corpus, tmp_path):
    with pytest.raises(_Stop):
        tiny(epochs=2).fit(grammar_corpus, checkpoint_dir=tmp_path, progress=_stop_after(1))
    state = tmp_path / "epoch-0001" / "state.pt"
    state.write_bytes(state.read_bytes()[:-100])
    events = []
    trainer = tiny(epochs=2).fit(grammar_corpus, checkpoint_dir=tmp_path, resume=True, progress=events.append)
    notes = [e.message for e in events if e.stage == "note"]
    assert trainer.resumed_from_epoch_ is None and len(trainer.history_) == 2
    assert "skipped broken checkpoint" in notes[0] and "checksum" in notes[0]
    assert notes[1] == "no usable checkpoint: training from scratch"


def test_fit_reports_progress_and_prints_nothing(grammar_corpus, capsys):
    events = []
    trainer = tiny(epochs=2).fit(grammar_corpus, progress=events.append)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    epochs = [e for e in events if e.stage == "epoch"]
    assert [e.epoch for e in epochs] == [1, 2] and all(e.epochs == 2 for e in epochs)
    assert [e.loss for e in epochs] == [h["train_loss"] for h in trainer.history_]
    assert epochs[-1].metrics["held-out masked ppl"] == trainer.history_[-1]["heldout_ppl"]
    batches = [e for e in events if e.stage == "train"]
    assert batches and batches[-1].done == batches[-1].total and batches[-1].unit == "batch"


def test_checkpoint_loader_refuses_pickled_code_and_truncation(tmp_path):
    import collections

    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": collections.Counter(a=1), "x": shutil.rmtree}, evil)
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        load_checkpoint(evil)
    good = tmp_path / "good.pt"
    torch.save({"format": 1, "model": {"w": torch.ones(1000)}}, good)
    assert load_checkpoint(good)["model"]["w"].shape == (1000,)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        load_checkpoint(cut)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_kill_during_training_then_resume_matches_uninterrupted(tmp_path):
    """`wordspace train transformer` killed with SIGKILL mid-run, then --resume: same model."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from embeddings import store
    from wordspace.cli import main

    raw = tmp_path / "grammar.txt"
    raw.write_text("\n".join(grammar_lines(200, 12, seed=5)) + "\n", encoding="utf-8")
    common = ["--corpus", str(raw), "--name", "m", "--d-model", "16", "--heads", "2", "--layers", "1",
              "--max-len", "16", "--epochs", "12", "--batch-size", "8", "--min-count", "1",
              "--threads", "1", "--data", str(tmp_path / "data")]
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-m", "wordspace.cli", "train", "transformer", *common,
                             "--models", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / ".checkpoints" / "m"
    deadline = time.monotonic() + 120
    while not (ckpts / "epoch-0002").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (ckpts / "epoch-0012").exists()
    assert main(["train", "transformer", *common, "--models", str(killed), "--resume"]) == 0
    assert not ckpts.exists()  # a finished run removes its checkpoints
    assert main(["train", "transformer", *common, "--models", str(tmp_path / "straight")]) == 0
    resumed = store.load_model(killed, "m")
    straight = store.load_model(tmp_path / "straight", "m")
    assert resumed.words == straight.words
    np.testing.assert_array_equal(resumed.vectors, straight.vectors)
