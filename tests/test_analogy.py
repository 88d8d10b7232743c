"""Analogy evaluation: exact agreement with gensim, the blocked evaluator against the
one-question reference (ties, input words on top, case variants), OOV accounting
and bad input."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import analysis.analogy as analogy
from analysis.analogy import evaluate_analogies
from analysis.datasets import Analogy, AnalogyDataset, read_analogies
from embeddings.vectors import Embeddings
from tests.conftest import planted_embeddings
from tests.helpers import to_keyed_vectors


@pytest.fixture(scope="module")
def google() -> AnalogyDataset:
    return read_analogies("google")


def medium_embeddings(google: AnalogyDataset, dim: int = 16, seed: int = 3) -> Embeddings:
    """Vectors for ~90% of the Google words (lower case) where many pairs share their section's
    offset (so some questions are right and some wrong), plus noise words and case variants."""
    rng = np.random.default_rng(seed)
    words = list(dict.fromkeys(w.lower() for q in google.questions for w in (q.a, q.b, q.c, q.expected)))
    vec = {w: rng.normal(size=dim) for w in words}
    offsets = {name: rng.normal(size=dim) for name in google.sections}
    assigned: set[str] = set()
    for q in google.questions:
        for first, second in ((q.a.lower(), q.b.lower()), (q.c.lower(), q.expected.lower())):
            if second not in assigned:
                vec[second] = vec[first] + offsets[q.section] + rng.normal(scale=0.5, size=dim)
                assigned.add(second)
    rng.shuffle(words)
    words = words[: int(0.9 * len(words))]
    # Case variants: "Athens" before "athens" (the first occurrence wins), "PARIS" after "paris".
    words = ["Athens"] + [w for w in words if w != "paris"] + ["paris", "PARIS", "Greece"]
    words += [f"noise{i}" for i in range(1200)]
    words = list(dict.fromkeys(words))
    vectors = [vec.get(w.lower(), None) for w in words]
    vectors = [v if v is not None else rng.normal(size=dim) for v in vectors]
    return Embeddings(words, np.asarray(vectors, dtype=np.float32))


@pytest.fixture(scope="module")
def medium(google) -> Embeddings:
    return medium_embeddings(google)


@pytest.fixture(scope="module")
def google_subset(google, tmp_path_factory):
    """Every 4th Google question (all 14 sections), as a file gensim can read too."""
    lines = []
    for name in google.sections:
        lines.append(f": {name}")
        qs = [q for q in google.questions if q.section == name]
        lines += [f"{q.a} {q.b} {q.c} {q.expected}" for q in qs[::4]]
    path = tmp_path_factory.mktemp("analogies") / "google-subset.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles much smaller than the vocabulary, so results are merged across many tiles and blocks."""
    monkeypatch.setattr(analogy, "VOCAB_TILE", 97)
    monkeypatch.setattr(analogy, "QUESTION_BLOCK", 31)


def gensim_counts(sections: list[dict]) -> dict[str, tuple[int, int]]:
    return {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections}


def our_counts(report) -> dict[str, tuple[int, int]]:
    counts = {s.name: (s.correct, s.seen) for s in report.sections}
    counts["Total accuracy"] = (report.total.correct, report.total.seen)
    return counts


def write_questions(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# -- exact agreement with gensim ------------------------------------------------------
@pytest.mark.parametrize("restrict, case_insensitive", [(300_000, True), (1500, True), (300_000, False)])
def test_3cosadd_equals_gensim_evaluate_word_analogies(medium, google_subset, small_tiles, restrict,
                                                       case_insensitive):
    kv = to_keyed_vectors(medium)
    score, sections = kv.evaluate_word_analogies(str(google_subset), restrict_vocab=restrict,
                                                 case_insensitive=case_insensitive)
    report = evaluate_analogies(medium, read_analogies(google_subset), restrict_vocab=restrict,
                                case_insensitive=case_insensitive)
    assert report.accuracy == score
    assert our_counts(report) == gensim_counts(sections)
    # Not only the counts: the same questions are right.
    key = str.upper if case_insensitive else str
    ours = Counter((key(q.a), key(q.b), key(q.c), key(q.expected)) for q in report.details if q.correct)
    assert ours == Counter(sections[-1]["correct"])
    assert report.total.seen > 500 and report.total.correct > 0


def test_3cosmul_equals_gensim_most_similar_cosmul_per_question(medium, google, small_tiles):
    questions = [Analogy(q.section, q.a.lower(), q.b.lower(), q.c.lower(), q.expected.lower(), q.line)
                 for q in google.questions[::11]]
    report = evaluate_analogies(medium, questions, method="3cosmul", restrict_vocab=len(medium),
                                case_insensitive=False, eps=analogy.GENSIM_COSMUL_EPS)
    kv = to_keyed_vectors(medium)
    seen = [q for q in report.details if q.seen]
    assert len(seen) > 400
    for q in seen:
        top = kv.most_similar_cosmul(positive=[q.b, q.c], negative=[q.a], topn=1)
        assert top[0][0] == q.predicted, q
        assert q.correct == (q.predicted == q.expected)


def test_planted_analogies_are_solved(planted):
    questions = [Analogy("family", "man", "king", "woman", "queen", 1),
                 Analogy("capital-common-countries", "italy", "mussolini", "germany", "hitler", 2),
                 Analogy("gram1-adjective-to-adverb", "man", "woman", "king", "queen", 3)]
    report = evaluate_analogies(planted, questions)
    assert [q.predicted for q in report.details] == ["queen", "hitler", "queen"]
    assert report.accuracy == 1.0
    assert report.semantic.correct == 2 and report.syntactic.correct == 1
    # 3CosMul is another objective: on these vectors a noise word anti-aligned with "man" wins
    # king:man::woman:?, exactly as in gensim.
    kv = to_keyed_vectors(planted)
    cosmul = evaluate_analogies(planted, questions, method="3cosmul", eps=analogy.GENSIM_COSMUL_EPS)
    for q in cosmul.details:
        assert kv.most_similar_cosmul(positive=[q.b, q.c], negative=[q.a], topn=1)[0][0] == q.predicted


# -- the blocked evaluator against the one-question reference ------------------------------
def near_tie_band(emb, q, method, eps, include_inputs, restrict):
    """How many candidates the reference scores within 1e-5 of the expected word (rank may move by that)."""
    lex = analogy.lexicon(emb, min(restrict, len(emb)), True, (q.a, q.b, q.c, q.expected))
    rows = [lex.first[w.upper()] for w in (q.a, q.b, q.c, q.expected)]
    dists = analogy._gensim_scores(emb, lex.n, *rows[:3], method, eps)
    return int(np.count_nonzero(np.abs(dists - dists[rows[3]]) <= 1e-5 * max(1.0, abs(dists[rows[3]]))))


@pytest.mark.parametrize("method", analogy.METHODS)
@pytest.mark.parametrize("include_inputs", [False, True])
def test_blocked_equals_one_question_reference(medium, google, small_tiles, method, include_inputs):
    questions = google.questions[::5]
    kwargs = dict(method=method, include_inputs=include_inputs, ranks=True, restrict_vocab=2500)
    blocked = evaluate_analogies(medium, questions, **kwargs)
    reference = evaluate_analogies(medium, questions, blocked=False, **kwargs)
    assert reference.exact_path_questions == reference.total.seen
    assert blocked.exact_path_questions < blocked.total.seen / 10
    assert blocked.sections == reference.sections
    for ours, ref in zip(blocked.details, reference.details):
        assert (ours.seen, ours.predicted, ours.correct) == (ref.seen, ref.predicted, ref.correct), ref
        if ours.rank != ref.rank:
            band = near_tie_band(medium, ours, method, analogy.DEFAULT_EPS, include_inputs, 2500)
            assert abs(ours.rank - ref.rank) <= band, (ours, ref)
    if include_inputs:  # inputs compete: b (or c) often wins
        assert any(q.predicted in (q.b.lower(), q.c.lower()) for q in blocked.details if q.seen)
    else:
        assert not any(q.predicted in (q.a.lower(), q.b.lower(), q.c.lower()) for q in blocked.details if q.seen)


def tie_embeddings(method: str, eps: float) -> tuple[Embeddings, list[Analogy]]:
    """Exact ties at the top: each question's best answer gets a twin row (same vector) far
    away in another tile; the expected word is the original or the twin in turn."""
    rng = np.random.default_rng(11)
    n, dim = 400, 8
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    words = [f"w{i}" for i in range(n)]
    base = Embeddings(words, vectors)
    questions, twins = [], {}
    for k in range(20):
        a, b, c = 3 * k, 3 * k + 1, 3 * k + 2
        scores = analogy._gensim_scores(base, n, a, b, c, method, eps)
        scores[[a, b, c]] = -np.inf
        top = int(np.argmax(scores))
        twin = twins.setdefault(top, n + len(twins))
        expected = words[top] if k % 2 else f"w{twin}"
        questions.append(Analogy("ties", words[a], words[b], words[c], expected, k + 1))
    extra = np.asarray([vectors[top] for top in twins], dtype=np.float32)
    return Embeddings(words + [f"w{t}" for t in twins.values()], np.vstack([vectors, extra])), questions


@pytest.mark.parametrize("method", analogy.METHODS)
def test_exact_ties_are_decided_like_the_reference_and_gensim(small_tiles, method, tmp_path):
    eps = analogy.GENSIM_COSMUL_EPS
    emb, questions = tie_embeddings(method, eps)
    blocked = evaluate_analogies(emb, questions, method=method, eps=eps, ranks=True)
    reference = evaluate_analogies(emb, questions, method=method, eps=eps, ranks=True, blocked=False)
    assert blocked.exact_path_questions == len(questions)  # every tie is re-decided exactly
    assert [q.predicted for q in blocked.details] == [q.predicted for q in reference.details]
    assert [q.rank for q in blocked.details] == [q.rank for q in reference.details]
    kv = to_keyed_vectors(emb)
    if method == "3cosadd":
        path = write_questions(tmp_path / "ties.txt", ": ties\n" + "".join(
            f"{q.a} {q.b} {q.c} {q.expected}\n" for q in questions))
        score, sections = kv.evaluate_word_analogies(str(path), case_insensitive=False)
        assert blocked.accuracy == score
        assert Counter((q.a, q.b, q.c, q.expected) for q in blocked.details if q.correct) \
            == Counter(sections[-1]["correct"])
    else:
        for q in blocked.details:
            assert kv.most_similar_cosmul(positive=[q.b, q.c], negative=[q.a], topn=1)[0][0] == q.predicted


@pytest.mark.parametrize("method", analogy.METHODS)
def test_input_word_on_top_is_skipped_unless_inputs_are_included(method):
    rng = np.random.default_rng(5)
    words = ["a", "b", "c", "answer"] + [f"n{i}" for i in range(50)]
    vectors = np.zeros((len(words), 6), dtype=np.float32)
    vectors[4:, 3:] = rng.normal(size=(50, 3))  # noise words point elsewhere
    vectors[4:, :3] = rng.normal(scale=0.05, size=(50, 3))
    vectors[:4, :3] = [[1, 0, 0], [0, 1, 0], [0.3, 1, 0.3], [-0.3, 1, 0.6]]
    emb = Embeddings(words, vectors)
    question = [Analogy("s", "a", "b", "c", "answer", 1)]
    excluded = evaluate_analogies(emb, question, method=method)
    included = evaluate_analogies(emb, question, method=method, include_inputs=True)
    reference = evaluate_analogies(emb, question, method=method, include_inputs=True, blocked=False)
    assert excluded.details[0].predicted == "answer" and excluded.accuracy == 1.0
    scores = analogy._gensim_scores(emb, len(emb), 0, 1, 2, method, analogy.DEFAULT_EPS)
    assert included.details[0].predicted == reference.details[0].predicted == words[int(np.argmax(scores))]
    if method == "3cosadd":  # b itself is the closest word to b - a + c
        assert included.details[0].predicted == "b" and included.accuracy == 0.0
    kv = to_keyed_vectors(emb)
    similar = kv.most_similar if method == "3cosadd" else kv.most_similar_cosmul
    assert similar(positive=["b", "c"], negative=["a"], topn=1)[0][0] == "answer"


def test_case_variants_follow_gensim_first_occurrence_and_top5_rule(tmp_path):
    """'King' is a separate row from 'king'; with case folding it stands for nothing (the first
    row 'king' does) and is never predicted for a question using king; 'ß' folds to 'SS'."""
    rng = np.random.default_rng(2)
    base = ["man", "king", "woman", "queen", "straße", "road", "wide", "broad"]
    words = base + ["King", "KING", "kinG", "MAN", "Woman", "Queen", "STRASSE"] + [f"n{i}" for i in range(40)]
    vectors = rng.normal(scale=0.1, size=(len(words), 8)).astype(np.float32)
    king, man, woman = np.eye(8, dtype=np.float32)[:3]
    vectors[:4] = [man, king + man, woman, king + woman]
    for i, w in enumerate(words):
        if w in ("King", "KING", "kinG", "MAN", "Woman"):  # case variants of inputs crowd the top 5
            vectors[i] = king + woman + rng.normal(scale=0.01, size=8)
    emb = Embeddings(words, vectors)
    path = write_questions(tmp_path / "case.txt", ": family\nman king woman queen\nMAN KING WOMAN QUEEN\n"
                           ": gram-test\nroad STRASSE wide broad\nroad straße wide broad\n")
    questions = read_analogies(path)
    kv = to_keyed_vectors(emb)
    for case_insensitive in (True, False):
        score, sections = kv.evaluate_word_analogies(str(path), case_insensitive=case_insensitive)
        report = evaluate_analogies(emb, questions, case_insensitive=case_insensitive)
        assert report.accuracy == score
        assert our_counts(report) == gensim_counts(sections)
    report = evaluate_analogies(emb, questions)
    assert report.total.seen == 4  # 'STRASSE' and 'straße' are one word once upper-cased
    assert report.details[0].predicted not in ("King", "KING", "kinG", "MAN", "Woman")


# -- accounting and reports -----------------------------------------------------------
def test_oov_questions_are_skipped_and_counted(medium, google):
    report = evaluate_analogies(medium, google, restrict_vocab=800)
    total = report.total
    assert total.total == len(google) == 19544
    assert 0 < total.seen < total.total
    assert total.seen == sum(q.seen for q in report.details)
    assert report.coverage == total.seen / total.total
    assert report.semantic.total + report.syntactic.total == total.total
    assert all(s.kind == ("syntactic" if s.name.startswith("gram") else "semantic") for s in report.sections)
    assert all(q.predicted is None and not q.correct for q in report.details if not q.seen)
    doc = report.to_dict(details=True)
    json.dumps(doc)  # serializable
    assert doc["coverage"] == report.coverage and len(doc["details"]) == total.total
    assert "capital-common-countries" in report.table()


def test_evaluation_never_modifies_the_embeddings(medium, google):
    before_vectors = np.array(medium.vectors)
    before_words = medium.words
    evaluate_analogies(medium, google.questions[:500], method="3cosmul", ranks=True)
    assert medium.words is before_words
    assert np.array_equal(medium.vectors, before_vectors)
    assert not medium.vectors.flags.writeable and not medium.normalized.flags.writeable


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("man king woman queen\n", ":1: question before the first"),
    (": s\nman king woman\n", ":2: expected 4 words"),
    (": s\nman king woman queen\n:\nman king woman queen\n", ":3: empty section name"),
    ("\n\n", "no analogy questions"),
])
def test_malformed_analogy_files_name_the_line(tmp_path, text, message):
    path = write_questions(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=message):
        read_analogies(path)


def test_unknown_dataset_is_reported():
    with pytest.raises(FileNotFoundError, match="neither a file nor one of"):
        read_analogies("no-such-dataset")


@pytest.mark.parametrize("kwargs, message", [
    ({"restrict_vocab": 0}, "restrict_vocab"), ({"restrict_vocab": -5}, "restrict_vocab"),
    ({"restrict_vocab": True}, "restrict_vocab"), ({"restrict_vocab": 2.5}, "restrict_vocab"),
    ({"method": "3cosavg"}, "unknown analogy method"), ({"eps": 0.0}, "eps"), ({"eps": float("nan")}, "eps"),
])
def test_bad_settings_are_rejected(planted, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_analogies(planted, [Analogy("s", "man", "king", "woman", "queen", 1)], **kwargs)


def test_model_without_vectors_is_rejected():
    empty = Embeddings([], np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="no vectors"):
        evaluate_analogies(empty, [Analogy("s", "man", "king", "woman", "queen", 1)])


def test_zero_vectors_never_win_and_do_not_crash():
    emb = planted_embeddings()
    vectors = np.array(emb.vectors)
    vectors[-1] = 0  # a zero row among the candidates
    words = list(emb.words)
    zero = Embeddings(words, vectors)
    report = evaluate_analogies(zero, [Analogy("s", "man", "king", "woman", "queen", 1),
                                       Analogy("s", "man", "king", words[-1], "queen", 2)])
    assert report.details[0].predicted == "queen"
    assert report.details[0].correct and report.total.seen == 2
