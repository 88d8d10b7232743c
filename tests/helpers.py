"""Test helpers shared across test modules."""
from __future__ import annotations

import numpy as np

from embeddings.vectors import Embeddings


def to_keyed_vectors(emb: Embeddings):
    """A gensim KeyedVectors with the same words and vectors (the reference implementation)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(emb.dim, dtype=np.float32)
    kv.add_vectors(list(emb.words), np.asarray(emb.vectors, dtype=np.float32))
    return kv
