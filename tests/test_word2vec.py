"""word2vec trainers: quality on the sample corpus (WordSim353 via gensim's own
evaluation), planted structure, equality with gensim called directly, exact
resume from epoch-end checkpoints, reproducibility, bad input, and the CLI."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings import store
from wordspace.cli import main
from embeddings.corpus import prepare_corpus
from embeddings.datasets import benchmark_path
from embeddings.trainers import make_trainer, train_model
from embeddings.training import Checkpoints, UnfinishedRun, checkpoint_dir
from embeddings.word2vec import (CBOW, CONTEXT_FILE, DEFAULT_ALPHA, SkipGram, Word2VecTrainer, line_boundaries,
                                 load_context, load_with_context, stable_hash, with_context, write_shards)
from tests.helpers import to_keyed_vectors

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = {"a": [f"apple{i}" for i in range(10)], "b": [f"boat{i}" for i in range(10)]}


def wordsim_spearman(emb, dataset: str = "ws353") -> float:
    """Spearman correlation on WordSim353 (or `dataset`), measured by gensim's evaluate_word_pairs."""
    _pearson, spearman, _oov = to_keyed_vectors(emb).evaluate_word_pairs(str(benchmark_path(dataset)))
    return float(spearman[0])


# -- fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def skipgram_sample(sample_corpus):
    """Skip-gram, 100-d, 20 epochs on the sample corpus (trained once, context vectors kept)."""
    return SkipGram(vector_size=100, epochs=20, keep_context=True, compute_loss=True).fit(sample_corpus)


@pytest.fixture(scope="module")
def cbow_sample(sample_corpus):
    """CBOW, 100-d, 20 epochs on the sample corpus (trained once; default alpha 0.05)."""
    return CBOW(vector_size=100, epochs=20, compute_loss=True).fit(sample_corpus)


@pytest.fixture(scope="module")
def skipgram_seed2(sample_corpus):
    """Skip-gram as `skipgram_sample` with seed 2: quality is judged on the mean of two seeds."""
    return SkipGram(vector_size=100, epochs=20, seed=2).fit(sample_corpus)


@pytest.fixture(scope="module")
def cbow_seed2(sample_corpus):
    """CBOW as `cbow_sample` with seed 2."""
    return CBOW(vector_size=100, epochs=20, seed=2).fit(sample_corpus)


@pytest.fixture(scope="module")
def planted_corpus(tmp_path_factory):
    """Two topic clusters: every sentence draws its 10 words from one cluster only."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(1500):
        words = CLUSTERS["a" if i % 2 else "b"]
        lines.append(" ".join(rng.choice(words, size=10)))
    raw = tmp_path_factory.mktemp("planted") / "planted.txt"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prepare_corpus(raw, raw.parent / "prepared")


@pytest.fixture(scope="module")
def small_corpus(sample_corpus, tmp_path_factory):
    """The first 30k tokens of the sample corpus, 300 per line: fast exactness tests."""
    with open(sample_corpus.path, encoding="utf-8") as handle:
        tokens = handle.read(400_000).split()[:30_000]
    raw = tmp_path_factory.mktemp("small") / "small.txt"
    raw.write_text("".join(" ".join(tokens[i:i + 300]) + "\n" for i in range(0, len(tokens), 300)),
                   encoding="utf-8")
    return prepare_corpus(raw, raw.parent / "prepared")


SMALL = dict(vector_size=24, window=4, min_count=3, epochs=3, workers=1, seed=11, compute_loss=True)


# -- quality ----------------------------------------------------------------------
# Measured on 2026-11-29 with 2 workers (mean of seeds 1 and 2, see BENCHMARKS.md): skip-gram WS353
# 0.449, SimLex 0.229; CBOW (alpha 0.05) WS353 0.385. Hogwild threads make each run vary by ~0.01.
def test_skipgram_quality_mean_of_two_seeds(skipgram_sample, skipgram_seed2):
    runs = (skipgram_sample.embeddings_, skipgram_seed2.embeddings_)
    assert np.mean([wordsim_spearman(emb) for emb in runs]) >= 0.43
    assert np.mean([wordsim_spearman(emb, "simlex") for emb in runs]) >= 0.21


def test_cbow_quality_mean_of_two_seeds(cbow_sample, cbow_seed2):
    assert cbow_sample.embeddings_.meta["params"]["alpha"] == DEFAULT_ALPHA[0] == 0.05
    assert np.mean([wordsim_spearman(t.embeddings_) for t in (cbow_sample, cbow_seed2)]) >= 0.365


def test_every_epoch_trains_the_whole_corpus_once(skipgram_sample, cbow_sample, sample_corpus):
    """gensim's own corpus_file split read 538,495 words per epoch of this 535,705-token corpus
    (byte offsets: some text twice, some never); line-aligned shards read each token once."""
    for trainer in (skipgram_sample, cbow_sample):
        meta = trainer.embeddings_.meta
        assert meta["params"]["workers"] >= 1
        assert meta["epoch_words"] == [sample_corpus.n_tokens] * 20


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_epoch_word_counts_equal_the_corpus_after_min_count(workers, small_corpus):
    """Without subsampling, the words trained per epoch are exactly the corpus tokens that survive
    min_count, every epoch, for any number of workers."""
    kept = sum(c for c in small_corpus.vocabulary().counts if c >= SMALL["min_count"])
    meta = CBOW(**{**SMALL, "workers": workers, "sample": 0}).fit(small_corpus).embeddings_.meta
    assert meta["epoch_words"] == [small_corpus.n_tokens] * SMALL["epochs"]
    assert meta["epoch_effective_words"] == [kept] * SMALL["epochs"]


def test_gensim_alone_drops_words_of_overflowing_batches_we_do_not(small_corpus):
    """With min_count 1 and no subsampling every token is kept, so gensim's batches of just over
    10,000 words lose their tail (gensim trains at most 10,000 words a batch); ours train all."""
    from gensim.models import Word2Vec

    params = {**SMALL, "min_count": 1, "sample": 0}
    gensim = Word2Vec(sg=0, hs=0, negative=5, **params)
    gensim.build_vocab(corpus_file=str(small_corpus.path))
    trained, raw = gensim.train(corpus_file=str(small_corpus.path), total_examples=gensim.corpus_count,
                                total_words=gensim.corpus_total_words, epochs=SMALL["epochs"])
    assert raw == SMALL["epochs"] * small_corpus.n_tokens and trained < raw  # words lost
    meta = CBOW(**params).fit(small_corpus).embeddings_.meta
    assert meta["epoch_effective_words"] == [small_corpus.n_tokens] * SMALL["epochs"]


def test_shards_are_temporary_and_a_killed_runs_are_removed(small_corpus):
    orphan = small_corpus.directory / ".shards-999999999-x"  # no such process (above pid_max)
    orphan.mkdir()
    (orphan / "shard-000.txt").write_text("a b c\n")
    CBOW(**{**SMALL, "workers": 2}).fit(small_corpus)
    assert list(small_corpus.directory.glob(".shards-*")) == []


@pytest.mark.parametrize("parts", [1, 2, 3, 5, 150])
def test_shards_are_whole_lines_covering_the_file_once(parts, small_corpus, tmp_path):
    data = small_corpus.path.read_bytes()
    cuts = line_boundaries(small_corpus.path, parts)
    assert cuts[0] == 0 and cuts[-1] == len(data) and cuts == sorted(cuts) and len(cuts) == parts + 1
    assert all(c == 0 or data[c - 1:c] == b"\n" for c in cuts)
    shards = write_shards(small_corpus.path, parts, tmp_path, vocabulary=set())  # nothing known: no filler
    assert b"".join(shard.path.read_bytes() for shard in shards) == data
    assert sum(shard.sentences for shard in shards) == small_corpus.n_sentences
    assert sum(shard.words for shard in shards) == small_corpus.n_tokens
    assert {shard.filler for shard in shards} == {0}
    assert len(shards) == parts if parts <= 5 else 1 <= len(shards) <= small_corpus.n_sentences


def _gensim_batches(path):
    """The batches gensim's corpus_file reader makes of a file: lines until more than 10,000 words."""
    batch, size = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        batch.append(line.split())
        size += len(batch[-1])
        if size > 10_000:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@pytest.mark.parametrize("parts", [1, 2])
@pytest.mark.parametrize("known_share", [1.0, 0.97])
def test_batches_stay_under_gensims_limit_and_keep_every_token(parts, known_share, small_corpus, tmp_path):
    """Every token once, in order; lines only cut, never reordered; no batch reaches 10,000 known words;
    filler only where a cut batch still holds 10,000 words or fewer (every word known)."""
    words = small_corpus.vocabulary().words
    vocabulary = set(words[: round(len(words) * known_share)])  # 1.0: every batch would overflow
    assert max(sum(len(line) for line in batch) for batch in _gensim_batches(small_corpus.path)) > 10_000
    shards = write_shards(small_corpus.path, parts, tmp_path, vocabulary)
    text = b"".join(shard.path.read_bytes() for shard in shards).decode("utf-8").splitlines()
    filler = [line for line in text if line.split()[0] == "#"]
    assert all(set(line.split()) == {"#"} for line in filler)
    kept = [line for line in text if line not in filler]
    assert " ".join(kept).split() == small_corpus.path.read_text("utf-8").split()
    assert sum(shard.words for shard in shards) == small_corpus.n_tokens
    assert sum(shard.sentences for shard in shards) == len(text)
    assert sum(shard.filler for shard in shards) == sum(len(line.split()) for line in filler)
    if known_share == 1.0:
        assert filler and max(len(line.split()) for line in filler) <= 2
    else:
        assert sum(shard.filler for shard in shards) < 0.001 * small_corpus.n_tokens
    for shard in shards:
        for batch in _gensim_batches(shard.path):
            assert sum(1 for line in batch for token in line if token in vocabulary) < 10_000


def test_loss_is_optional_and_never_changes_the_vectors(small_corpus):
    with_loss = CBOW(**SMALL).fit(small_corpus).embeddings_
    without = CBOW(**{**SMALL, "compute_loss": False}).fit(small_corpus).embeddings_
    np.testing.assert_array_equal(with_loss.vectors, without.vectors)
    assert all(loss > 0 for loss in with_loss.meta["epoch_losses"])
    assert without.meta["epoch_losses"] == [None] * SMALL["epochs"]
    assert without.meta["params"]["compute_loss"] is False
    with pytest.raises(ValueError, match="compute_loss"):
        CBOW(**{**SMALL, "compute_loss": "yes"}).fit(small_corpus)


def test_meta_records_the_run(skipgram_sample, cbow_sample, sample_corpus):
    for trainer, method in ((skipgram_sample, "skipgram"), (cbow_sample, "cbow")):
        meta = trainer.embeddings_.meta
        assert meta["method"] == method
        assert meta["corpus"]["sha256"] == sample_corpus.sha256
        assert meta["corpus"]["n_tokens"] == sample_corpus.n_tokens and meta["epochs"] == 20
        assert meta["params"]["sg"] == (method == "skipgram") and meta["params"]["epochs"] == 20
        assert meta["params"]["vector_size"] == trainer.embeddings_.dim == 100
        assert len(meta["epoch_losses"]) == 20 and all(loss > 0 for loss in meta["epoch_losses"])
        assert meta["train_seconds"] > 0 and meta["resumed_from_epoch"] is None
        # min_count=5 on our own vocabulary gives exactly gensim's vocabulary, most frequent first.
        vocab = sample_corpus.vocabulary(5)
        assert set(trainer.embeddings_.words) == set(vocab.words)
        assert list(trainer.embeddings_.counts) == sorted(trainer.embeddings_.counts, reverse=True)
        assert trainer.embeddings_.counts[0] == vocab.counts[0]


def test_context_vectors_and_w_plus_c(skipgram_sample, models_dir):
    emb, context = skipgram_sample.embeddings_, skipgram_sample.context_vectors_
    assert context.shape == emb.vectors.shape and not np.allclose(context, 0)
    path = skipgram_sample.save(models_dir, "sg")
    meta = store.read_meta(path)
    assert meta["keep_context"] is True and CONTEXT_FILE in meta["files"]
    np.testing.assert_array_equal(load_context(path), context)
    summed = load_with_context(models_dir, "sg")
    np.testing.assert_allclose(summed.vectors, emb.vectors + context, rtol=0, atol=0)
    assert summed.meta["method"] == "skipgram+context"
    assert wordsim_spearman(summed) >= 0.35
    with pytest.raises(ValueError, match="shape"):
        with_context(emb, context[:5])


def test_model_without_context_has_no_context_file(cbow_sample, models_dir):
    path = cbow_sample.save(models_dir, "cb")
    assert not (path / CONTEXT_FILE).exists()
    with pytest.raises(store.ModelExists, match="already exists"):
        cbow_sample.save(models_dir, "cb")
    assert cbow_sample.save(models_dir, "cb", overwrite=True) == path
    with pytest.raises(store.ModelError, match="keep-context"):
        load_context(path)


# -- planted structure -------------------------------------------------------------
@pytest.mark.parametrize("cls", [CBOW, SkipGram])
def test_planted_clusters_are_nearest_neighbours(cls, planted_corpus):
    emb = cls(vector_size=16, window=3, min_count=1, sample=0, epochs=5, workers=1).fit(planted_corpus).embeddings_
    assert len(emb) == 20
    unit = emb.normalized
    sims = unit @ unit.T
    for cluster in CLUSTERS.values():
        for word in cluster:
            row = sims[emb.index_of(word)]
            top = [emb.words[i] for i in np.argsort(-row) if emb.words[i] != word][:9]
            assert set(top) == set(cluster) - {word}, (word, top)


# -- gensim equality, determinism, resume ---------------------------------------------------
@pytest.mark.parametrize("sg", [0, 1])
def test_equals_gensim_called_directly(sg, small_corpus):
    from gensim.models import Word2Vec

    ours = Word2VecTrainer(sg=sg, **SMALL).fit(small_corpus).embeddings_
    params = {k: v for k, v in SMALL.items() if k != "epochs"}
    reference = Word2Vec(sg=sg, hs=0, negative=5, alpha=DEFAULT_ALPHA[sg], **params)
    reference.build_vocab(corpus_file=str(small_corpus.path))
    initial = reference.wv.vectors.copy()
    reference.wv.vectors *= np.float32(0.5)  # word2vec.c's initial range, as ours
    reference.train(corpus_file=str(small_corpus.path), total_examples=reference.corpus_count,
                    total_words=reference.corpus_total_words, epochs=SMALL["epochs"])
    assert list(ours.words) == reference.wv.index_to_key
    np.testing.assert_array_equal(ours.vectors, reference.wv.vectors)
    # gensim 4 alone starts in [-1/d, 1/d); word2vec.c (and ours) in [-0.5/d, 0.5/d)
    d = SMALL["vector_size"]
    assert 0.9 / d < np.abs(initial).max() < 1.0 / d


def test_initial_vectors_have_word2vec_c_range(small_corpus):
    """Before any training, W is uniform in word2vec.c's [-0.5/d, 0.5/d) (gensim 4's own is twice that)."""
    trainer = Word2VecTrainer(sg=1, **SMALL)
    model = trainer._new_model(small_corpus)
    d = SMALL["vector_size"]
    vectors = model.wv.vectors
    assert vectors.min() >= -0.5 / d and vectors.max() < 0.5 / d
    assert vectors.max() > 0.45 / d and vectors.min() < -0.45 / d  # the whole range is used


def test_epoch_loss_counts_every_worker_thread(small_corpus):
    """gensim alone keeps one thread's share of the loss; ours sums the threads, so the loss per
    trained word does not depend on the worker count (workers=1 is the reference)."""
    def per_word(workers):
        meta = CBOW(**{**SMALL, "workers": workers}).fit(small_corpus).embeddings_.meta
        return [loss / words for loss, words in zip(meta["epoch_losses"], meta["epoch_effective_words"])]

    one, two = per_word(1), per_word(2)
    assert len(one) == len(two) == SMALL["epochs"]
    for a, b in zip(one, two):
        assert a > 0 and abs(b - a) / a < 0.15, (one, two)
    assert one[-1] < one[0]


def test_same_seed_same_vectors_other_seed_differs(small_corpus):
    first = CBOW(**SMALL).fit(small_corpus).embeddings_.vectors
    second = CBOW(**SMALL).fit(small_corpus).embeddings_.vectors
    other = CBOW(**{**SMALL, "seed": 12}).fit(small_corpus).embeddings_.vectors
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_pythonhashseed_does_not_matter(small_corpus):
    """Two processes with different hash seeds train identical vectors (gensim 4 seeds W with
    default_rng(seed); our hashfxn is deterministic anyway)."""
    params = {**SMALL, "epochs": 1}
    code = ("import hashlib, sys; from embeddings.corpus import PreparedCorpus; "
            "from embeddings.word2vec import SkipGram; "
            f"e = SkipGram(**{params!r}).fit(PreparedCorpus.open(sys.argv[1])).embeddings_; "
            "print(hashlib.sha256(e.vectors.tobytes()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code, str(small_corpus.directory)], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert stable_hash("king") == stable_hash("king") != stable_hash("queen")


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    """A progress callback that interrupts training once epoch `epoch` has ended."""
    def progress(event):
        if event.stage == "epoch" and event.epoch == epoch:
            raise _Stop
    return progress


@pytest.mark.parametrize("sg", [0, 1])
def test_resume_equals_uninterrupted_run(sg, small_corpus, tmp_path):
    uninterrupted = Word2VecTrainer(sg=sg, **SMALL).fit(small_corpus).embeddings_
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        Word2VecTrainer(sg=sg, **SMALL).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(2))
    assert sorted(p.name for p in ckpt.iterdir()) == [".lock", "epoch-0002"]
    state = json.loads((ckpt / "epoch-0002" / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["epoch_losses"]) == 2
    resumed = Word2VecTrainer(sg=sg, **SMALL).fit(small_corpus, checkpoint_dir=ckpt, resume=True)
    assert resumed.resumed_from_epoch_ == 2
    np.testing.assert_array_equal(resumed.embeddings_.vectors, uninterrupted.vectors)
    assert resumed.embeddings_.meta["epoch_losses"] == uninterrupted.meta["epoch_losses"]
    assert resumed.embeddings_.meta["resumed_from_epoch"] == 2


def test_resume_skips_a_corrupt_checkpoint_and_refuses_other_settings(small_corpus, tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(1))
    with pytest.raises(ValueError, match=r"window \(--window\)=4 in the checkpoint, 5 now"):
        CBOW(**{**SMALL, "window": 5}).fit(small_corpus, checkpoint_dir=ckpt, resume=True)
    with pytest.raises(ValueError, match="sg=0 in the checkpoint, 1 now"):
        SkipGram(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, resume=True)
    with open(ckpt / "epoch-0001" / "input.npy", "r+b") as handle:  # flip bytes inside the matrix
        handle.seek(-16, os.SEEK_END)
        handle.write(b"\xff" * 8)
    trainer = CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, resume=True)
    assert trainer.resumed_from_epoch_ is None
    assert any("checksum" in note for note in trainer.notes_)
    np.testing.assert_array_equal(trainer.embeddings_.vectors, CBOW(**SMALL).fit(small_corpus).embeddings_.vectors)


def test_resume_refuses_another_corpus(small_corpus, planted_corpus, tmp_path):
    ckpt = tmp_path / "ckpt"
    params = {**SMALL, "min_count": 1}
    with pytest.raises(_Stop):
        CBOW(**params).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(1))
    with pytest.raises(ValueError, match="another corpus"):
        CBOW(**params).fit(planted_corpus, checkpoint_dir=ckpt, resume=True)


def test_a_fresh_fit_refuses_to_drop_an_unfinished_run(small_corpus, tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(1))
    before = {p.name: p.read_bytes() for p in (ckpt / "epoch-0001").iterdir()}
    with pytest.raises(UnfinishedRun, match=r"unfinished run \(epoch-0001\).*--resume.*--restart"):
        CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt)
    assert {p.name: p.read_bytes() for p in (ckpt / "epoch-0001").iterdir()} == before  # kept, untouched
    Checkpoints(ckpt).discard()
    assert Checkpoints(ckpt).leftovers() == []
    assert CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt).resumed_from_epoch_ is None


def test_progress_events(small_corpus, tmp_path):
    events = []
    CBOW(**SMALL).fit(small_corpus, progress=events.append)
    epochs = [e for e in events if e.stage == "epoch"]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert all(e.epochs == 3 and e.loss > 0 and e.rate > 0 and e.seconds > 0 for e in epochs)
    assert epochs[0].metrics["loss_change"] is None
    assert epochs[1].metrics["loss_change"] == pytest.approx((epochs[1].loss - epochs[0].loss) / epochs[0].loss)
    train = [e for e in events if e.stage == "train"]
    assert [e.done for e in train] == [i * small_corpus.n_tokens for i in range(4)]
    assert {e.total for e in train} == {3 * small_corpus.n_tokens}
    # A resumed run says where it started from, and reports only the epochs it trains.
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(2))
    events.clear()
    CBOW(**SMALL).fit(small_corpus, checkpoint_dir=ckpt, resume=True, progress=events.append)
    notes = [e.message for e in events if e.stage == "note"]
    assert notes == [f"resuming cbow from {ckpt / 'epoch-0002'} (epoch 2/3 done)"]
    assert [e.epoch for e in events if e.stage == "epoch"] == [3]


def test_registry_and_train_model(small_corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown model family 'glove'; choose one of cbow, skipgram, svd"):
        make_trainer("glove")
    with pytest.raises(ValueError, match=r"unknown parameter for cbow: dim \(accepted: vector_size"):
        make_trainer("cbow", dim=8)
    with pytest.raises(ValueError, match="unknown parameter for skipgram: sg"):  # fixed by the family
        make_trainer("skipgram", sg=0)
    trainer = make_trainer("skipgram", epochs=2)
    assert isinstance(trainer, SkipGram) and trainer.sg == 1 and trainer.epochs == 2
    models = tmp_path / "models"
    emb = train_model("cbow", small_corpus.directory, name="reg", models_dir=models, **SMALL)
    np.testing.assert_array_equal(emb.vectors, CBOW(**SMALL).fit(small_corpus).embeddings_.vectors)
    np.testing.assert_array_equal(store.load_model(models, "reg").vectors, emb.vectors)
    assert not checkpoint_dir(models, "reg").exists()
    with pytest.raises(store.ModelExists):
        train_model("cbow", tmp_path / "no-such-corpus", name="reg", models_dir=models, **SMALL)
    with pytest.raises(ValueError, match="exclude each other"):
        train_model("cbow", small_corpus.directory, name="x", models_dir=models, resume=True, restart=True)


def test_kill_9_then_cli_resume_equals_uninterrupted(small_corpus, tmp_path):
    """A real `kill -9` of `wordspace train` after an epoch-end checkpoint, then `--resume`."""
    models = tmp_path / "models"
    argv = ["train", "cbow", "--corpus", str(small_corpus.directory), "--name", "k", "--dim", "8",
            "--window", "3", "--epochs", "40", "--workers", "1", "--seed", "3", "--models", str(models),
            "--quiet"]
    child = subprocess.Popen([sys.executable, "-m", "wordspace.cli", *argv], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = checkpoint_dir(models, "k")
    deadline = time.monotonic() + 120
    while not list(ckpt.glob("epoch-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    _out, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err
    assert not (models / "k").exists()
    assert main(argv + ["--resume"]) == 0
    resumed = store.load_model(models, "k")
    assert resumed.meta["resumed_from_epoch"] >= 1
    assert not ckpt.exists()  # cleared once the model is saved
    reference = CBOW(vector_size=8, window=3, epochs=40, workers=1, seed=3).fit(small_corpus).embeddings_
    np.testing.assert_array_equal(resumed.vectors, reference.vectors)


# -- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize("param, value, message", [
    ("vector_size", 0, r"vector_size \(--dim\) must be >= 1, got 0"),
    ("vector_size", -3, "got -3"),
    ("vector_size", 2.5, "must be an integer, got 2.5"),
    ("window", 0, r"window \(--window\) must be >= 1, got 0"),
    ("negative", -1, "got -1"),
    ("negative", 0, "would train nothing"),
    ("epochs", 0, r"epochs \(--epochs\) must be >= 1, got 0"),
    ("ns_exponent", float("nan"), "must be a finite number, got nan"),
    ("ns_exponent", float("inf"), "got inf"),
    ("sample", -0.1, "got -0.1"),
    ("min_count", 0, "got 0"),
    ("alpha", 0.0, "must be > 0.0"),
    ("seed", -1, "got -1"),
    ("workers", 0, "got 0"),
    ("sg", 2, "got 2"),
    ("window", True, "got True"),
])
def test_bad_hyper_parameters_fail_before_any_work(param, value, message, tmp_path):
    # The corpus does not even exist: the parameter error must come first.
    with pytest.raises(ValueError, match=message):
        Word2VecTrainer(**{param: value}).fit(tmp_path / "no-such-corpus.txt")


def test_bad_corpora(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert main(["train", "cbow", "--corpus", str(empty), "--models", str(tmp_path / "m"),
                 "--data", str(tmp_path / "data"), "--quiet"]) == 1
    assert "empty" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("one two three\n", encoding="utf-8")
    prepared = prepare_corpus(short, tmp_path / "p-short")
    with pytest.raises(ValueError, match="shorter than the window: 3 tokens"):
        CBOW(min_count=1, window=5).fit(prepared)
    with pytest.raises(ValueError, match="min_count=5 removes every word"):
        CBOW(min_count=5, window=1).fit(prepared)


# -- CLI ---------------------------------------------------------------------------
def test_cli_trains_saves_and_clears_checkpoints(small_corpus, tmp_path, capsys):
    models = tmp_path / "models"
    code = main(["train", "skipgram", "--corpus", str(small_corpus.directory), "--name", "sg1", "--dim", "12",
                 "--epochs", "2", "--min-count", "3", "--workers", "1", "--keep-context", "--loss",
                 "--models", str(models), "--data", str(tmp_path / "data")])
    assert code == 0
    captured = capsys.readouterr()
    assert "saved model 'sg1' (skipgram)" in captured.out
    assert "epoch 2/2: loss" in captured.err and "words/s" in captured.err
    emb = store.load_model(models, "sg1")
    assert emb.meta["method"] == "skipgram" and emb.dim == 12 and emb.meta["params"]["epochs"] == 2
    assert load_context(store.model_path(models, "sg1")).shape == emb.vectors.shape
    assert not checkpoint_dir(models, "sg1").exists()
    [info] = store.list_models(models)
    assert info.error is None and info.method == "skipgram"


def test_cli_refuses_an_existing_name_before_any_corpus_work(small_corpus, tmp_path, capsys):
    models = tmp_path / "models"
    base = ["train", "cbow", "--name", "taken", "--dim", "8", "--epochs", "1", "--min-count", "3",
            "--workers", "1", "--models", str(models), "--quiet"]
    assert main(base + ["--corpus", str(small_corpus.directory)]) == 0
    first = store.load_model(models, "taken", mmap=False)
    capsys.readouterr()
    # The corpus does not exist: the name error must come first.
    assert main(base + ["--corpus", str(tmp_path / "no-such-corpus.txt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error: a model named 'taken' already exists") and "--overwrite" in err
    assert "\n" not in err
    assert main(base + ["--corpus", str(small_corpus.directory), "--seed", "9", "--overwrite"]) == 0
    second = store.load_model(models, "taken")
    assert second.meta["params"]["seed"] == 9 and not np.array_equal(first.vectors, second.vectors)


def test_cli_keeps_a_killed_runs_checkpoint_until_resume_or_restart(small_corpus, tmp_path, capsys):
    models = tmp_path / "models"
    ckpt = checkpoint_dir(models, "run")
    params = dict(vector_size=8, window=3, min_count=3, epochs=3, workers=1, seed=4)
    with pytest.raises(_Stop):  # what a kill after epoch 1 leaves behind
        CBOW(**params).fit(small_corpus, checkpoint_dir=ckpt, progress=_stop_after(1))
    argv = ["train", "cbow", "--corpus", str(small_corpus.directory), "--name", "run", "--dim", "8", "--window", "3",
            "--min-count", "3", "--epochs", "3", "--workers", "1", "--seed", "4", "--models", str(models), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error:") and "unfinished run" in err and "\n" not in err
    assert "--resume" in err and "--restart" in err
    assert (ckpt / "epoch-0001" / "state.json").is_file() and not store.model_path(models, "run").exists()
    with pytest.raises(SystemExit):  # argparse: not allowed with each other
        main(argv + ["--resume", "--restart"])
    capsys.readouterr()
    assert main(argv + ["--restart"]) == 0
    assert "resuming" not in capsys.readouterr().err
    assert not ckpt.exists()
    np.testing.assert_array_equal(store.load_model(models, "run").vectors,
                                  CBOW(**params).fit(small_corpus).embeddings_.vectors)


def test_ctrl_c_prints_the_resume_command_that_continues(small_corpus, tmp_path):
    models = tmp_path / "models"
    argv = ["train", "skipgram", "--corpus", str(small_corpus.directory), "--name", "int", "--dim", "8",
            "--window", "3", "--epochs", "60", "--workers", "1", "--seed", "3", "--models", str(models),
            "--quiet", "--restart"]
    child = subprocess.Popen([sys.executable, "-m", "wordspace.cli", *argv], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = checkpoint_dir(models, "int")
    deadline = time.monotonic() + 120
    while not list(ckpt.glob("epoch-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    lines = [line.strip() for line in err.splitlines() if line.strip().startswith("wordspace train ")]
    assert len(lines) == 1, err
    command = shlex.split(lines[0])
    assert command == ["wordspace", *[a for a in argv if a != "--restart"], "--resume"]
    assert err.strip().endswith("wordspace: interrupted")
    assert main(command[1:]) == 0
    resumed = store.load_model(models, "int")
    assert resumed.meta["resumed_from_epoch"] >= 1
    reference = SkipGram(vector_size=8, window=3, epochs=60, workers=1, seed=3).fit(small_corpus).embeddings_
    np.testing.assert_array_equal(resumed.vectors, reference.vectors)


@pytest.mark.parametrize("args, message", [
    (["--dim", "0"], "--dim"),
    (["--ns-exponent", "nan"], "ns_exponent"),
    (["--negative", "-2"], "got -2"),
    (["--name", "../evil"], "invalid model name"),
    (["--min-count", "1000000"], "removes every word"),
])
def test_cli_bad_input_is_one_line_error(args, message, small_corpus, tmp_path, capsys):
    code = main(["train", "cbow", "--corpus", str(small_corpus.directory), "--models", str(tmp_path / "m"),
                 "--quiet", *args])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error:") and message in err and "\n" not in err
    assert not (tmp_path / "m" / "cbow").exists()


def test_epoch_line_with_and_without_a_loss():
    from embeddings.training import Progress
    from wordspace.progress import epoch_line

    with_loss = Progress("epoch", epoch=3, epochs=5, loss=1.5, rate=812_000.0, unit="words", seconds=2.1,
                         metrics={"loss_change": -0.04})
    assert epoch_line(with_loss) == "epoch 3/5: loss 1.5 (-4.0% vs epoch 2), 812,000 words/s, 2.1 s"
    without = Progress("epoch", epoch=3, epochs=5, rate=812_000.0, unit="words", seconds=2.1,
                       metrics={"loss_change": None})
    assert epoch_line(without) == "epoch 3/5, 812,000 words/s, 2.1 s"
