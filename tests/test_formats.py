"""word2vec text/binary and GloVe text: bit-exact round trips with gensim in both directions."""
from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors

from embeddings.formats import FORMATS, export_embeddings, import_embeddings
from embeddings.vectors import Embeddings
from tests.helpers import to_keyed_vectors


@pytest.fixture
def emb():
    rng = np.random.default_rng(42)
    words = ["the", "naïve", "東京", "x-ray", "don't", "1990s"] + [f"w{i}" for i in range(94)]
    vectors = rng.normal(size=(100, 13)).astype(np.float32)
    vectors[3, 4] = np.float32(1e-38)  # subnormal-adjacent value survives text
    vectors[4, 0] = np.float32(-3.4028235e38)
    return Embeddings(words, vectors)


GENSIM_ARGS = {
    "word2vec": dict(binary=False),
    "word2vec-bin": dict(binary=True),
    "glove": dict(binary=False, no_header=True),
}


# gensim's no_header reader leaves a file handle open (a ResourceWarning in gensim, not here).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fmt", FORMATS)
def test_gensim_reads_our_export_bit_exactly(emb, tmp_path, fmt):
    path = export_embeddings(emb, tmp_path / f"v.{fmt}", fmt)
    kv = KeyedVectors.load_word2vec_format(path, **GENSIM_ARGS[fmt])
    assert kv.index_to_key == list(emb.words)
    assert kv.vectors.dtype == np.float32
    np.testing.assert_array_equal(kv.vectors, emb.vectors)


@pytest.mark.parametrize("fmt", FORMATS)
def test_we_read_gensim_output_bit_exactly(emb, tmp_path, fmt):
    kv = to_keyed_vectors(emb)
    path = tmp_path / f"g.{fmt}"
    kv.save_word2vec_format(path, binary=fmt == "word2vec-bin", write_header=fmt != "glove")
    loaded = import_embeddings(path, fmt)
    assert loaded.words == emb.words
    np.testing.assert_array_equal(loaded.vectors, emb.vectors)
    assert loaded.counts is None and loaded.meta["format"] == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_our_round_trip_and_limit(emb, tmp_path, fmt):
    path = export_embeddings(emb, tmp_path / "v", fmt)
    again = import_embeddings(path, fmt)
    np.testing.assert_array_equal(again.vectors, emb.vectors)
    first = import_embeddings(path, fmt, limit=5)
    assert first.words == emb.words[:5]


def test_binary_with_newline_separators_is_read(tmp_path):
    data = b"2 2\n" + b"a " + np.float32([1, 2]).tobytes() + b"\n" + b"b " + np.float32([3, 4]).tobytes() + b"\n"
    (tmp_path / "v.bin").write_bytes(data)
    loaded = import_embeddings(tmp_path / "v.bin", "word2vec-bin")
    assert loaded.words == ("a", "b")
    np.testing.assert_array_equal(loaded.vectors, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    "fmt, content, message",
    [
        ("word2vec", "2 3\na 1 2 3\nb 1 2\n", ":3: expected 3 values"),
        ("word2vec", "3 2\na 1 2\n", "header says 3"),
        ("word2vec", "hello\n", ":1: expected a word2vec header"),
        ("glove", "a 1 x\n", ":1: non-numeric"),
        ("glove", "a 1 2\na 3 4\n", "duplicate word 'a'"),
        ("glove", "", "no vectors"),
        ("word2vec-bin", "2 4\nab", "truncated"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, fmt, content, message):
    path = tmp_path / "bad"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        import_embeddings(path, fmt)


def test_words_with_spaces_cannot_be_exported(tmp_path):
    with pytest.raises(ValueError, match="contains a space"):
        export_embeddings(Embeddings(["a b"], np.ones((1, 2))), tmp_path / "x", "glove")
