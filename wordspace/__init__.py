"""wordspace: train, store, index, evaluate, query and serve word embeddings.

The Python API (the CLI `wordspace` and the REST API answer the same queries):

    import wordspace
    m = wordspace.load("glove-6b-50d")           # models dir: argument, $WORDSPACE_MODELS or ./models
    m.most_similar("frog", k=10)
    m.analogy("italy", "mussolini", "germany")   # a:b :: c:? -> hitler
    wordspace.train("skipgram", corpus="sample", name="sg", epochs=5)
    wordspace.models()
"""
from embeddings.query import MissingWords, Neighbor

from .api import FAMILIES, Model, load, models, train

__all__ = ["FAMILIES", "Model", "MissingWords", "Neighbor", "load", "models", "train"]
