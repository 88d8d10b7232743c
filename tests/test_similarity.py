"""Word-pair similarity: equal to gensim's evaluate_word_pairs, OOV accounting, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.datasets import WordPair, read_word_pairs
from analysis.similarity import evaluate_word_pairs
from embeddings.datasets import benchmark_path
from embeddings.vectors import Embeddings
from tests.helpers import to_keyed_vectors


@pytest.fixture(scope="module")
def pair_embeddings() -> Embeddings:
    """Random vectors for ~85% of the WordSim353 and SimLex-999 words, with case variants."""
    rng = np.random.default_rng(7)
    words = []
    for name in ("ws353", "simlex999"):
        for pair in read_word_pairs(name).pairs:
            words += [pair.word1.lower(), pair.word2.lower()]
    words = list(dict.fromkeys(words))
    rng.shuffle(words)
    words = ["Tiger"] + words[: int(0.85 * len(words))] + ["CAT", "Money"]
    words = list(dict.fromkeys(words + [f"noise{i}" for i in range(300)]))
    return Embeddings(words, rng.normal(size=(len(words), 12)).astype(np.float32))


@pytest.mark.parametrize("dataset", ["ws353", "simlex999"])
@pytest.mark.parametrize("restrict, case_insensitive", [(300_000, True), (900, True), (300_000, False)])
def test_equals_gensim_evaluate_word_pairs(pair_embeddings, dataset, restrict, case_insensitive):
    kv = to_keyed_vectors(pair_embeddings)
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(
        str(benchmark_path(dataset)), restrict_vocab=restrict, case_insensitive=case_insensitive)
    report = evaluate_word_pairs(pair_embeddings, dataset, restrict_vocab=restrict,
                                 case_insensitive=case_insensitive)
    assert abs(report.spearman - spearman.statistic) <= 1e-9
    assert abs(report.pearson - pearson.statistic) <= 1e-9
    assert abs(report.spearman_pvalue - spearman.pvalue) <= 1e-9
    assert abs(100 * report.oov / report.total - oov_ratio) <= 1e-9
    assert 0 < report.oov < report.total


def test_oov_pairs_are_skipped_counted_and_listed():
    emb = Embeddings(["cat", "dog", "car", "tiger"], np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0.8, 0.3, 0.1]], dtype=np.float32))
    pairs = [WordPair("cat", "dog", 9.0, 1), WordPair("cat", "car", 1.0, 2), WordPair("cat", "unicorn", 5.0, 3),
             WordPair("tiger", "cat", 8.0, 4), WordPair("zebra", "dog", 3.0, 5)]
    report = evaluate_word_pairs(emb, pairs)
    assert (report.seen, report.total, report.oov) == (3, 5, 2)
    assert report.oov_pairs == (("cat", "unicorn"), ("zebra", "dog"))
    cosines = [emb.similarity("cat", "dog"), emb.similarity("cat", "car"), emb.similarity("tiger", "cat")]
    assert report.spearman == pytest.approx(stats.spearmanr([9.0, 1.0, 8.0], cosines).statistic, abs=1e-12)
    assert report.pearson == pytest.approx(stats.pearsonr([9.0, 1.0, 8.0], cosines).statistic, abs=1e-6)
    assert report.coverage == 0.6
    assert "3/5 pairs" in report.table()


def test_no_known_pair_and_bad_settings_are_errors(planted):
    with pytest.raises(ValueError, match="no pair of pairs has both words"):
        evaluate_word_pairs(planted, [WordPair("x", "y", 1.0, 1)])
    with pytest.raises(ValueError, match="restrict_vocab"):
        evaluate_word_pairs(planted, [WordPair("king", "queen", 1.0, 1)], restrict_vocab=0)
    with pytest.raises(ValueError, match="no vectors"):
        evaluate_word_pairs(Embeddings([], np.zeros((0, 2), np.float32)), [WordPair("a", "b", 1.0, 1)])


def test_undefined_correlation_is_none_not_a_warning(planted):
    report = evaluate_word_pairs(planted, [WordPair("king", "queen", 5.0, 1), WordPair("man", "woman", 5.0, 2)])
    assert report.spearman is None and report.pearson is None  # constant human scores
    assert report.to_dict()["spearman"] is None


@pytest.mark.parametrize("text, message", [
    ("love\tsex\n", ":1: expected"),
    ("# comment\nlove\tsex\t5\nlove\tsex\tmuch\n", ":3: score 'much' is not a number"),
    ("a\tb\tnan\n", ":1: score 'nan' is not finite"),
    ("# only comments\n", "no word pairs"),
])
def test_malformed_pair_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_word_pairs(path)


def test_space_separated_pairs_are_read(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("king queen 8.5\nman  woman 7\n", encoding="utf-8")
    pairs = read_word_pairs(path).pairs
    assert [(p.word1, p.word2, p.score, p.line) for p in pairs] == [("king", "queen", 8.5, 1), ("man", "woman", 7.0, 2)]


def test_header_line_and_comma_separators_are_read_with_a_note(tmp_path):
    """The original WordSim353 CSV: a header line and commas."""
    path = tmp_path / "combined.csv"
    path.write_text("Word 1,Word 2,Human (mean)\nlove,sex,6.77\ntiger,cat,7.35\n", encoding="utf-8")
    dataset = read_word_pairs(path)
    assert [(p.word1, p.word2, p.score, p.line) for p in dataset.pairs] == [
        ("love", "sex", 6.77, 2), ("tiger", "cat", 7.35, 3)]
    assert len(dataset.notes) == 2
    assert ":1: read as a header line and skipped: 'Word 1,Word 2,Human (mean)'" in dataset.notes[0]
    assert "separated by commas" in dataset.notes[1]
    tabbed = tmp_path / "tabbed.tsv"
    tabbed.write_text("word1\tword2\tscore\nlove\tsex\t6.77\n", encoding="utf-8")
    assert [p.word1 for p in read_word_pairs(tabbed).pairs] == ["love"]
    assert len(read_word_pairs(tabbed).notes) == 1  # the header only
    assert read_word_pairs("ws353").notes == ()  # the shipped files need no note


def test_low_coverage_and_too_few_pairs_warn():
    emb = Embeddings(["cat", "dog", "car", "tiger"], np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0.8, 0.3, 0.1]], dtype=np.float32))
    known = [WordPair("cat", "dog", 9.0, 1), WordPair("cat", "car", 1.0, 2), WordPair("tiger", "cat", 8.0, 3)]
    unknown = [WordPair("zebra", f"w{i}", 3.0, 10 + i) for i in range(4)]
    report = evaluate_word_pairs(emb, known + unknown)  # 3/7 = 43% covered, 3 usable pairs
    assert len(report.warnings) == 2
    assert report.warnings[0].startswith("low coverage: only 3/7 pairs (42.9%)")
    assert "only 3 usable pairs (fewer than 10)" in report.warnings[1] and "meaningless" in report.warnings[1]
    assert report.to_dict()["warnings"] == list(report.warnings)
    assert "WARNING: low coverage" in report.table()
    half = evaluate_word_pairs(emb, known + unknown[:3])  # exactly 50%: not low
    assert [w for w in half.warnings if "coverage" in w] == []


def test_enough_covered_pairs_do_not_warn(pair_embeddings):
    report = evaluate_word_pairs(pair_embeddings, "ws353")
    assert report.coverage > 0.5 and report.seen >= 10 and report.warnings == ()
