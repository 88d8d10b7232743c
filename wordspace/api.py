"""The public Python API: `wordspace.load(name)` gives a `Model` that answers the same
queries as the REST API (through the one query layer, `embeddings.query`) and
evaluates itself on the standard benchmarks; `wordspace.train(...)` trains and saves
a model exactly as `wordspace train` does; `wordspace.models()` lists what
`wordspace models` lists.

    >>> import wordspace
    >>> m = wordspace.load("glove-6b-50d")
    >>> m.analogy("italy", "mussolini", "germany")[0].word
    'hitler'
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from gensim.models import KeyedVectors

from analysis.analogy import DEFAULT_EPS, DEFAULT_RESTRICT, AnalogyReport, evaluate_analogies
from analysis.similarity import SimilarityReport, evaluate_word_pairs
from embeddings import store
from embeddings.query import COSMUL_EPS, Neighbor, Term, WordIndex
from embeddings.trainers import FAMILIES, train_model
from embeddings.vectors import Embeddings

from .progress import ProgressPrinter

PathLike = str | os.PathLike


def resolve_models_dir(directory: PathLike | None = None) -> Path:
    """The models directory: `directory`, else $WORDSPACE_MODELS, else ./models."""
    return Path(directory) if directory is not None else store.default_models_dir()


class Model:
    """A word-vector model with its queries: `m["king"]`, `"king" in m`, `len(m)`,
    `most_similar`, `analogy`, `similarity`, `doesnt_match`, evaluations, `to_gensim()`.

    Read-only; safe to share between threads. Unknown words raise `KeyError`
    (`embeddings.query.MissingWords`) naming each word with close spellings.
    """

    def __init__(self, embeddings: Embeddings, name: str | None = None) -> None:
        self.embeddings = embeddings
        self.name = name
        self.index = WordIndex.brute_force(embeddings)

    @classmethod
    def load(cls, name: str, directory: PathLike | None = None) -> "Model":
        """Load model `name` from the models directory (checksums verified)."""
        return cls(store.load_model(resolve_models_dir(directory), name), name)

    # -- the vectors ------------------------------------------------------------------
    def __getitem__(self, word: str) -> np.ndarray:
        """The stored (read-only) vector of `word`."""
        self.index.require([word])
        return self.embeddings.vector(word)

    def __contains__(self, word: object) -> bool:
        return word in self.embeddings

    def __len__(self) -> int:
        return len(self.embeddings)

    def __iter__(self) -> Iterator[str]:
        return iter(self.embeddings)

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, method={self.meta.get('method')!r}, vocab={len(self)}, "
                f"dim={self.dim})")

    @property
    def words(self) -> tuple[str, ...]:
        """Words in row order (most frequent first for trained models)."""
        return self.embeddings.words

    @property
    def vectors(self) -> np.ndarray:
        """The read-only float32 matrix, one row per word."""
        return self.embeddings.vectors

    @property
    def dim(self) -> int:
        return self.embeddings.dim

    @property
    def meta(self) -> dict:
        """What the trainer recorded (method, parameters, corpus, evaluation...)."""
        return self.embeddings.meta

    # -- queries ------------------------------------------------------------------------
    def most_similar(self, positive: str | Sequence[Term] = (), negative: Sequence[Term] = (), k: int = 10,
                     *, vector: np.ndarray | Sequence[float] | None = None,
                     restrict_vocab: int | None = None) -> list[Neighbor]:
        """gensim's `most_similar(positive, negative, topn=k)`: the `k` words nearest (cosine) to
        the mean of the unit vectors of `positive` minus `negative` (plus a raw `vector`); the
        input words are never returned. A term may be a word or (word, weight); a weighted term
        in `negative` is subtracted (gensim would add it: it keeps a pair's weight as given)."""
        positive = [positive] if isinstance(positive, str) else list(positive)
        if vector is not None:
            positive.append(np.asarray(vector, dtype=np.float64))
        return self.index.most_similar(positive, list(negative), k=_check_k(k),
                                       restrict_vocab=restrict_vocab, exact=True)

    def analogy(self, a: str, b: str, c: str, k: int = 10, method: str = "3cosadd",
                restrict_vocab: int | None = None, eps: float = COSMUL_EPS) -> list[Neighbor]:
        """a is to b as c is to ?, best answers first: `analogy("italy", "mussolini", "germany")`
        -> hitler. `method` is "3cosadd" (cos(x, b - a + c)) or "3cosmul" (Levy & Goldberg,
        with `eps`; gensim's `most_similar_cosmul` is eps=1e-6)."""
        return self.index.analogy(a, b, c, k=_check_k(k), method=method, restrict_vocab=restrict_vocab,
                                  exact=True, eps=eps)

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words."""
        self.index.require([word1, word2])
        return self.index.similarity(word1, word2)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the mean of all of them (gensim's `doesnt_match`)."""
        return self.index.odd_one_out(list(words))[0]

    # -- evaluation and interchange ------------------------------------------------------
    def evaluate_analogies(self, dataset: PathLike = "google", method: str = "3cosadd",
                           restrict_vocab: int = DEFAULT_RESTRICT, eps: float = DEFAULT_EPS) -> AnalogyReport:
        """Accuracy on Google-format analogies ("google" = gensim's questions-words.txt, or a
        file), per section and overall, with coverage; `print(report.table())` shows it."""
        return evaluate_analogies(self.embeddings, dataset, method=method, restrict_vocab=restrict_vocab,
                                  eps=eps)

    def evaluate_similarity(self, dataset: PathLike = "ws353",
                            restrict_vocab: int = DEFAULT_RESTRICT) -> SimilarityReport:
        """Spearman/Pearson against human judgements ("ws353", "simlex999", or a file)."""
        return evaluate_word_pairs(self.embeddings, dataset, restrict_vocab=restrict_vocab)

    def to_gensim(self) -> KeyedVectors:
        """A gensim `KeyedVectors` with the same words, bit-identical vectors (and counts)."""
        kv = KeyedVectors(self.dim, count=0, dtype=np.float32)
        kv.add_vectors(list(self.words), np.array(self.vectors, dtype=np.float32))
        counts = self.embeddings.counts
        if counts is not None:
            kv.set_vecattr(list(self.words), "count", np.asarray(counts, dtype=np.int64))
        return kv


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def load(name: str, models_dir: PathLike | None = None) -> Model:
    """Load model `name` (models directory: `models_dir`, $WORDSPACE_MODELS or ./models)."""
    return Model.load(name, models_dir)


def models(models_dir: PathLike | None = None) -> list[store.ModelInfo]:
    """Every model in the models directory, as `wordspace models` lists them (broken ones
    carry `error`)."""
    return store.list_models(resolve_models_dir(models_dir))


def train(family: str, corpus: PathLike = "sample", *, name: str, models_dir: PathLike | None = None,
          overwrite: bool = False, resume: bool = False, restart: bool = False, progress: bool = True,
          data_dir: PathLike | None = None, cluster: Any = None, **params: Any) -> Model:
    """Train a `family` model on `corpus` and save it as `name`; returns the loaded `Model`.

    `family` is one of "cbow", "skipgram", "svd", "contextual", "transformer"; `corpus` a
    text file, a directory, a prepared corpus or "sample". `params` are the trainer's
    hyper-parameters (e.g. `vector_size=100, epochs=20` for word2vec, `dim=100` for svd,
    `encoder="minilm"` for contextual); unknown ones raise `ValueError` listing the
    accepted ones. As with `wordspace train`: an existing model `name` is refused unless
    `overwrite=True`, and a checkpoint left by an interrupted run must be continued
    (`resume=True`) or dropped (`restart=True`). Progress bars go to stderr unless
    `progress=False`. `cluster` ("local:4", "tcp://HOST:8786" or a `distributed.Client`;
    default `$WORDSPACE_CLUSTER`) runs the corpus preparation, and for svd, contextual and
    transformer the counting or pooling, on a Dask cluster (README: Scaling out).
    """
    directory = resolve_models_dir(models_dir)
    printer = ProgressPrinter(quiet=not progress)
    try:
        emb = train_model(family, corpus, name=name, models_dir=directory, data_dir=data_dir, overwrite=overwrite,
                          resume=resume, restart=restart, progress=printer, cluster=cluster, **params)
    finally:
        printer.close()
    return Model(emb, name)


__all__ = ["FAMILIES", "Model", "load", "models", "resolve_models_dir", "train"]
