"""Contextual pooling on a Dask cluster equals the serial pooling: the same words, the
same context counts per word (the budget is chosen on the driver), vectors equal up to
the order of float64 additions, and the same WS353/SimLex scores; through the
`train contextual --cluster` CLI and the Transformer trainer too."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from analysis.datasets import read_word_pairs
from analysis.similarity import evaluate_word_pairs
from embeddings import distributed_pooling, store
from embeddings.corpus import Vocabulary, prepare_corpus
from embeddings.distributed_pooling import encoder_ref
from embeddings.encoders import MINILM, HFEncoder
from embeddings.pooling import ContextualTrainer, build_contextual_model, pool_static
from embeddings.transformer_train import TransformerMLM
from embeddings.vectors import Embeddings
from wordspace.cli import main

DATASETS = ("ws353", "simlex999")
MAX_CONTEXTS = 3
MAX_TOKENS = 6_000
BATCH_TOKENS = 1024  # small batches: ~8 of them, so several shards per worker


@pytest.fixture(scope="module")
def minilm():
    return HFEncoder(MINILM, source=MINILM, precision="fp32")


@pytest.fixture(scope="module")
def pooled(minilm, sample_corpus, dask_client):
    """The sample corpus pooled serially and on the cluster with the same budget, and the
    cluster run's progress events. The vocabulary is the words of WS353 and SimLex, so
    that a small budget gives their pairs contexts."""
    wanted = {w.lower() for name in DATASETS for p in read_word_pairs(name).pairs for w in (p.word1, p.word2)}
    full = sample_corpus.vocabulary(5)
    keep = [i for i, w in enumerate(full.words) if w in wanted]
    vocab = Vocabulary([full.words[i] for i in keep], [full.counts[i] for i in keep])
    options = dict(max_contexts=MAX_CONTEXTS, max_tokens=MAX_TOKENS, batch_tokens=BATCH_TOKENS, seed=0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # like each worker; two threads crawl when other jobs share the cores
    try:
        serial = pool_static(minilm, sample_corpus, vocab, **options)
    finally:
        torch.set_num_threads(before)
    events = []
    cluster = pool_static(minilm, sample_corpus, vocab, cluster=dask_client, progress=events.append, **options)
    return serial, cluster, events


@pytest.fixture(scope="module")
def slice_corpus(sample_corpus_file, tmp_path_factory):
    """The first 300 lines of the sample corpus, prepared."""
    root = tmp_path_factory.mktemp("slice")
    with open(sample_corpus_file, encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(300)]
    (root / "slice.txt").write_text("".join(lines), encoding="utf-8")
    return prepare_corpus(root / "slice.txt", root / "prepared")


def test_cluster_pooling_equals_serial(pooled):
    serial, cluster, _events = pooled
    assert cluster.words == serial.words
    np.testing.assert_array_equal(cluster.contexts, serial.contexts)
    np.testing.assert_array_equal(cluster.corpus_counts, serial.corpus_counts)
    # The batches are the serial ones: only the order of the float64 additions differs.
    np.testing.assert_allclose(cluster.vectors, serial.vectors, rtol=1e-5, atol=1e-6)
    assert cluster.stats["cluster"]["workers"] == 2 and cluster.stats["cluster"]["shards"] >= 4
    assert "cluster" not in serial.stats
    same = {k: v for k, v in serial.stats.items() if "second" not in k}
    assert {k: cluster.stats[k] for k in same} == same


def test_the_context_budget_holds_across_shards(pooled):
    _serial, cluster, _events = pooled
    # Many words reach the cap while their contexts are spread over several shards
    # (batches are cut by window length, not by word); none goes past it.
    assert cluster.contexts.max() == MAX_CONTEXTS
    assert (cluster.contexts == MAX_CONTEXTS).sum() > 50
    assert cluster.contexts.min() >= 1


def test_progress_covers_every_shard(pooled):
    _serial, cluster, events = pooled
    assert {e.stage for e in events} == {"pool"} and {e.unit for e in events} == {"tok"}
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == events[-1].total == cluster.stats["tokens_encoded"]
    assert len(events) >= cluster.stats["cluster"]["shards"]


def test_quality_equals_serial(pooled):
    """Implied by the equality above (the same words, vectors within 1e-5): one cheap check
    of the scores on the pairs this small budget covers."""
    serial, cluster, _events = pooled
    for dataset in DATASETS:
        a = evaluate_word_pairs(Embeddings(serial.words, serial.vectors), dataset)
        b = evaluate_word_pairs(Embeddings(cluster.words, cluster.vectors), dataset)
        assert a.seen == b.seen >= 20
        assert abs(a.spearman - b.spearman) <= 0.01, dataset


def test_workers_load_the_encoder_once(pooled, minilm, dask_client):
    ref = encoder_ref(minilm)
    assert ref.location == MINILM and ref.precision == "fp32"  # workers resolve their own MiniLM copy
    cached = dask_client.run(lambda: [k for k in distributed_pooling._ENCODERS if k == ref])
    assert sum(len(keys) for keys in cached.values()) >= 1
    assert all(len(keys) <= 1 for keys in cached.values())


def test_cli_train_contextual_on_the_cluster(slice_corpus, dask_client, tmp_path, capsys):
    models = tmp_path / "models"
    argv = ["train", "contextual", "--encoder", "minilm", "--corpus", str(slice_corpus.directory),
            "--name", "ctx", "--min-count", "2", "--max-tokens", "600", "--precision", "fp32",
            "--cluster", dask_client.scheduler.address, "--models", str(models), "--data", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    emb = store.load_model(models, "ctx")
    stats = emb.meta["contextual"]["stats"]
    assert stats["cluster"]["workers"] == 2 and stats["tokens_encoded"] >= 600
    assert (store.model_path(models, "ctx") / "encoder" / "model.safetensors").is_file()
    serial = ContextualTrainer(min_count=2, max_tokens=600, precision="fp32").fit(slice_corpus).embeddings_
    assert emb.words == serial.words
    np.testing.assert_allclose(emb.vectors, serial.vectors, rtol=1e-5, atol=1e-6)


def test_transformer_pools_on_the_cluster(dask_client, tmp_path):
    rng = random.Random(2)
    lines = [" ".join(f"w{(s + i) % 15}" for i in range(rng.randrange(6, 14)))
             for s in (rng.randrange(15) for _ in range(150))]
    (tmp_path / "grammar.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = prepare_corpus(tmp_path / "grammar.txt", tmp_path / "prepared")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = TransformerMLM(d_model=16, n_heads=2, n_layers=1, max_len=16, epochs=1, batch_size=16,
                                 min_count=1, max_contexts=5, random_state=0)
        trainer.fit(corpus, checkpoint_dir=tmp_path / "ckpt", cluster=dask_client)
        serial = build_contextual_model(trainer.encoder(), corpus, min_count=1, max_vocab=trainer.max_vocab,
                                        max_contexts=5, seed=0, window=16)
    finally:
        torch.set_num_threads(before)
    emb = trainer.embeddings_
    assert emb.meta["contextual"]["stats"]["cluster"]["workers"] == 2
    assert emb.words == serial.words and len(emb) == 15
    np.testing.assert_allclose(emb.vectors, serial.vectors, rtol=1e-5, atol=1e-6)
    # The copy of the encoder the workers loaded is gone; only the run's own files stay.
    assert not [p.name for p in (tmp_path / "ckpt").iterdir() if "pool-encoder" in p.name]
