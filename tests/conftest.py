"""Shared fixtures: the prepared sample corpus, hand-built embeddings with
planted analogies, and a temporary models directory."""
from __future__ import annotations

import os

import numpy as np
import pytest

# Keep BLAS/OpenMP from oversubscribing the 2 cores while tests run.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embeddings.corpus import PreparedCorpus, prepare_corpus  # noqa: E402
from embeddings.datasets import write_sample_corpus  # noqa: E402
from embeddings.vectors import Embeddings  # noqa: E402


@pytest.fixture(scope="session")
def sample_corpus_file(tmp_path_factory) -> "os.PathLike":
    """The bundled sample corpus as raw text (built once per test session)."""
    return write_sample_corpus(tmp_path_factory.mktemp("sample") / "sample.txt")


@pytest.fixture(scope="session")
def sample_corpus(sample_corpus_file, tmp_path_factory) -> PreparedCorpus:
    """The bundled sample corpus, prepared (about 536k tokens)."""
    return prepare_corpus(sample_corpus_file, tmp_path_factory.mktemp("sample-prepared"))


@pytest.fixture(scope="session")
def dask_client():
    """A real Dask LocalCluster of 2 worker processes (1 thread each), shared by the cluster tests."""
    from embeddings.cluster import connect

    with connect("local:2") as client:
        yield client


@pytest.fixture
def models_dir(tmp_path):
    """An empty models directory."""
    path = tmp_path / "models"
    path.mkdir()
    return path


def planted_embeddings(dim: int = 8, noise_words: int = 40, seed: int = 0) -> Embeddings:
    """Hand-built vectors where king - man + woman = queen and
    italy - germany = mussolini - hitler hold exactly, plus random filler words."""
    rng = np.random.default_rng(seed)
    royal, male, female, fascist, it, de = np.eye(dim, dtype=np.float32)[:6]
    base = {
        "king": royal + male,
        "queen": royal + female,
        "man": male,
        "woman": female,
        "italy": it,
        "germany": de,
        "mussolini": fascist + it,
        "hitler": fascist + de,
    }
    words = list(base)
    vectors = [base[w] for w in words]
    for i in range(noise_words):
        words.append(f"noise{i}")
        vectors.append(rng.normal(scale=0.3, size=dim).astype(np.float32))
    counts = np.arange(len(words), 0, -1) * 10
    return Embeddings(words, np.vstack(vectors), counts, {"method": "planted"})


@pytest.fixture
def planted() -> Embeddings:
    """Embeddings with planted analogies (see `planted_embeddings`)."""
    return planted_embeddings()
