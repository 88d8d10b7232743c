"""Corpus pipeline: tokenizer rules, long-line chunking, vocabulary, prepared corpora."""
from __future__ import annotations

import bz2
import gzip
from collections import Counter

import pytest

from embeddings.corpus import (
    PreparedCorpus,
    TokenizerConfig,
    Vocabulary,
    build_vocabulary,
    iter_sentences,
    prepare_corpus,
    sentences_from_line,
    tokenize,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The cat sat on the mat.", ["the", "cat", "sat", "on", "the", "mat"]),
        ("Hello, world! (Really?)", ["hello", "world", "really"]),
        ("Café naïve Ångström façade", ["café", "naïve", "ångström", "façade"]),
        # Decomposed accents (e + combining acute) are composed first and stay in the word.
        ("cafe\u0301", ["café"]),
        ("state-of-the-art -leading trailing- a--b", ["state-of-the-art", "leading", "trailing", "a", "b"]),
        ("don't O’Neill 'quoted' rock'n'roll", ["don't", "o'neill", "quoted", "rock'n'roll"]),
        ("pi is 3.14, population 1,000,000 in the 1990s; mp3 2.", ["pi", "is", "3.14", "population",
                                                                   "1,000,000", "in", "the", "1990s", "mp3", "2"]),
        ("snake_case", ["snake", "case"]),
        ("我们学习词向量。", ["我", "们", "学", "习", "词", "向", "量"]),
        ("東京はカタカナ", ["東", "京", "は", "カ", "タ", "カ", "ナ"]),
        ("word2vec与GloVe", ["word2vec", "与", "glove"]),
        ("", []),
        ("  \t ...!!! ", []),
    ],
)
def test_tokenizer_rules(text, expected):
    assert tokenize(text) == expected


def test_tokenizer_keeps_case_when_asked():
    assert tokenize("Paris ÉTÉ", lowercase=False) == ["Paris", "ÉTÉ"]


def test_cjk_run_stays_together_without_splitting():
    assert tokenize("我们学习 words", cjk_chars=False) == ["我们学习", "words"]


def test_long_lines_are_chunked_to_the_limit():
    line = " ".join(f"w{i}" for i in range(25_000))
    chunks = list(sentences_from_line(line))
    assert [len(c) for c in chunks] == [10_000, 10_000, 5_000]
    assert chunks[1][0] == "w10000" and chunks[2][-1] == "w24999"
    small = list(sentences_from_line("a b c d e", TokenizerConfig(max_sentence_tokens=2)))
    assert small == [["a", "b"], ["c", "d"], ["e"]]


def test_reads_plain_gzip_bz2_and_directories(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("One two\n\nthree\n", encoding="utf-8")
    with gzip.open(tmp_path / "d" / "b.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("Four five\n")
    with bz2.open(tmp_path / "d" / "c.txt.bz2", "wt", encoding="utf-8") as handle:
        handle.write("six\n")
    (tmp_path / "d" / ".hidden").write_text("never read\n")
    assert list(iter_sentences(tmp_path / "d")) == [["one", "two"], ["three"], ["four", "five"], ["six"]]


def test_vocabulary_sorted_by_count_then_word():
    vocab = build_vocabulary([["b", "a", "c", "b"], ["a", "d", "b"]])
    assert vocab.words == ["b", "a", "c", "d"]
    assert vocab.counts == [3, 2, 1, 1]
    trimmed = vocab.trimmed(min_count=2)
    assert trimmed.words == ["b", "a"]
    assert vocab.trimmed(max_vocab=3).words == ["b", "a", "c"]


def test_vocabulary_errors_are_clear():
    with pytest.raises(ValueError, match="empty"):
        build_vocabulary([])
    with pytest.raises(ValueError, match="min_count=5 removes every word"):
        build_vocabulary([["a", "b", "a"]], min_count=5)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.from_counter(Counter(a=1), min_count=0)


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = build_vocabulary([["é", "x", "é"]])
    vocab.save(tmp_path / "vocab.txt")
    loaded = Vocabulary.load(tmp_path / "vocab.txt")
    assert (loaded.words, loaded.counts) == (vocab.words, vocab.counts)


def test_prepare_writes_gensim_corpus_file_and_reuses_it(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("The Cat sat.\nthe dog, the cat!\n\n", encoding="utf-8")
    prepared = prepare_corpus(raw, tmp_path / "out")
    assert prepared.path.read_text(encoding="utf-8") == "the cat sat\nthe dog the cat\n"
    assert (prepared.n_sentences, prepared.n_tokens, prepared.n_types) == (2, 7, 4)
    assert prepared.vocabulary().words[:2] == ["the", "cat"]
    mtime = prepared.path.stat().st_mtime_ns
    again = prepare_corpus(raw, tmp_path / "out")
    assert again == prepared and again.path.stat().st_mtime_ns == mtime  # skipped
    assert PreparedCorpus.open(tmp_path / "out") == prepared
    raw.write_text("something else entirely\n", encoding="utf-8")
    changed = prepare_corpus(raw, tmp_path / "out")
    assert changed.sha256 != prepared.sha256 and changed.n_tokens == 3


def test_prepare_rejects_an_empty_corpus(tmp_path):
    raw = tmp_path / "empty.txt"
    raw.write_text("\n ... \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        prepare_corpus(raw, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        prepare_corpus(tmp_path / "missing.txt", tmp_path / "out")


def test_sample_corpus_is_built_from_gensim_data(sample_corpus):
    assert 450_000 < sample_corpus.n_tokens < 700_000
    vocab = sample_corpus.vocabulary(min_count=5)
    assert vocab.words[0] == "the"
    for word in ("anarchism", "king", "queen", "government", "australia"):
        assert word in vocab
    assert max(len(s) for s in sample_corpus.sentences()) <= 10_000
