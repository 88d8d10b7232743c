"""Comparison report and the evaluate/compare commands: files, stored results, re-use,
failing models, JSON on stdout."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.analogy import evaluate_analogies
from analysis.datasets import read_analogies, read_word_pairs
from analysis.report import compare_models, markdown_table, write_report
from analysis.similarity import evaluate_word_pairs
from embeddings import store
from embeddings.metadata import ModelMeta
from wordspace.cli import main
from tests.test_analogy import medium_embeddings


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A models directory with small models: alpha written the way models before `ModelMeta` were
    (training_seconds), beta and gamma with older SVD timings and the current record, and a corrupt one."""
    google = read_analogies("google")
    models = tmp_path_factory.mktemp("report-models")
    first = medium_embeddings(google, dim=12, seed=1)
    first.meta.update(method="skipgram", training_seconds=12.5)
    store.save_model(models, "alpha", first)
    second = medium_embeddings(google, dim=10, seed=2)
    second.meta.update(method="svd", timings={"count_s": 1.0, "total_s": 3.0})
    store.save_model(models, "beta", second)
    third = medium_embeddings(google, dim=6, seed=4)
    third.meta.update(ModelMeta("cbow", {"vector_size": 6}, train_seconds=150.0, epochs=5).to_dict())
    store.save_model(models, "gamma", third)
    store.save_model(models, "broken", medium_embeddings(google, dim=4, seed=3))
    vectors = models / "broken" / store.VECTORS_FILE
    vectors.write_bytes(vectors.read_bytes()[:-16])  # truncated: checksum and size mismatch
    return models


def test_compare_writes_report_and_stores_results(two_models, tmp_path):
    logs: list[str] = []
    rows = compare_models(two_models, restrict_vocab=1500, log=logs.append)
    assert [r.name for r in rows] == ["alpha", "beta", "broken", "gamma"]
    alpha, beta, broken, gamma = rows
    assert broken.error is not None and "vectors.npy" in broken.error
    assert any("broken: skipped" in line for line in logs)
    assert (alpha.method, alpha.dim, alpha.train_seconds) == ("skipgram", 12, 12.5)
    assert (beta.method, beta.train_seconds) == ("svd", 3.0)
    assert (gamma.method, gamma.dim, gamma.train_seconds) == ("cbow", 6, 150.0)

    # The scores are those of the evaluators, with the same settings.
    emb = store.load_model(two_models, "alpha")
    for method in ("3cosadd", "3cosmul"):
        direct = evaluate_analogies(emb, read_analogies("google"), method=method, restrict_vocab=1500)
        summary = alpha.scores[f"analogy/google/{method}"]
        assert (summary["correct"], summary["seen"], summary["total"]) == \
            (direct.total.correct, direct.total.seen, 19544)
    ws = evaluate_word_pairs(emb, read_word_pairs("ws353"), restrict_vocab=1500)
    assert alpha.value("similarity/ws353") == ws.spearman

    paths = write_report(rows, tmp_path / "report", restrict_vocab=1500)
    md = paths["md"].read_text(encoding="utf-8")
    assert "| model | method | dim | vocab | analogy coverage | 3CosAdd | 3CosMul" in md
    assert "| alpha | skipgram | 12 |" in md and "| broken |" in md and "failed:" in md
    assert "12 s" in md and "| gamma | cbow | 6 |" in md and "2.5 min" in md  # time to train
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [m["name"] for m in doc["models"]] == ["alpha", "beta", "broken", "gamma"]
    assert [m["train_seconds"] for m in doc["models"]] == [12.5, 3.0, None, 150.0]
    assert doc["settings"]["restrict_vocab"] == 1500
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # Stored in meta.json, re-used by the next run, recomputed with --fresh semantics.
    evaluation = store.read_meta(two_models / "alpha")["evaluation"]
    assert set(evaluation) == {"analogy/google/3cosadd", "analogy/google/3cosmul",
                               "similarity/ws353", "similarity/simlex999"}
    logs.clear()
    again = compare_models(two_models, ["alpha"], restrict_vocab=1500, log=logs.append)
    assert again[0].scores == alpha.scores and logs == []
    other = compare_models(two_models, ["alpha"], restrict_vocab=1000, save=False, log=logs.append)
    assert other[0].scores["analogy/google/3cosadd"]["settings"]["restrict_vocab"] == 1000
    assert len(logs) == 4


def test_markdown_table_of_a_failed_only_run_and_missing_model(two_models, tmp_path):
    rows = compare_models(two_models, ["nosuch", "broken"], log=lambda _: None)
    assert all(r.error for r in rows)
    assert "no model named 'nosuch'" in rows[0].error
    table = markdown_table(rows)
    assert table.count("failed:") == 2
    paths = write_report(rows, tmp_path / "r")
    assert "png" not in paths and paths["md"].is_file()


def test_model_meta_reads_current_and_older_models():
    def seconds(meta):
        return ModelMeta.from_dict(meta).train_seconds

    assert seconds({"train_seconds": 7.0, "training_seconds": 4.0}) == 7.0
    assert seconds({"training_seconds": 4.0}) == 4.0
    assert seconds({"timings": {"total_s": 9.5}}) == 9.5
    assert seconds({"pooling": {"seconds": 2}}) == 2.0
    assert seconds({"contextual": {"stats": {"seconds": 3}}}) == 3.0
    assert seconds({"method": "glove", "timings": {"total_s": True}}) is None
    old = ModelMeta.from_dict({"method": "glove", "hyperparameters": {"dim": 50}, "corpus_sha256": "ab",
                               "corpus_tokens": 10, "evaluation": {"x": {"accuracy": 1}}, "dim": 50})
    assert (old.method, old.params, old.corpus.sha256, old.corpus.n_tokens) == ("glove", {"dim": 50}, "ab", 10)
    assert old.evaluation == {"x": {"accuracy": 1}} and old.extra == {"dim": 50}
    # The stable keys are written, the older spellings are not, and a record round-trips.
    written = old.to_dict()
    assert {"hyperparameters", "corpus_sha256", "corpus_tokens"}.isdisjoint(written)
    assert ModelMeta.from_dict(written) == old
    with pytest.raises(ValueError, match="params"):
        ModelMeta("x", extra={"params": {}}).to_dict()


def test_compare_command_prints_the_table(two_models, tmp_path, capsys):
    code = main(["compare", "alpha", "broken", "-o", str(tmp_path / "out"), "--restrict", "1500",
                 "--models", str(two_models)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("| model | method |")
    assert "| alpha |" in captured.out and "failed:" in captured.out
    assert (tmp_path / "out" / "report.md").is_file()
    code = main(["compare", "alpha", "-o", str(tmp_path / "out"), "--restrict", "1500", "--json",
                 "--models", str(two_models)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["models"][0]["name"] == "alpha"


def test_evaluate_analogy_command_json_details_and_meta(two_models, tmp_path, capsys):
    details = tmp_path / "details.csv"
    code = main(["evaluate", "analogy", "alpha", "--method", "both", "--restrict", "1200", "--json",
                 "--details", str(details), "--models", str(two_models), "--no-save"])
    captured = capsys.readouterr()
    assert code == 0
    doc = json.loads(captured.out)  # one JSON document and nothing else on stdout
    assert [r["method"] for r in doc["results"]] == ["3cosadd", "3cosmul"]
    assert doc["results"][0]["settings"]["restrict_vocab"] == 1200
    assert "evaluating alpha" in captured.err
    with open(details, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 19544
    seen = [r for r in rows if r["seen"] == "1"]
    assert all(r["rank"] == "1" for r in seen if r["correct"] == "1")
    assert all(int(r["rank"]) > 1 for r in seen if r["correct"] == "0" and r["rank"])

    code = main(["evaluate", "analogy", "alpha", "--restrict", "1200", "--models", str(two_models)])
    out = capsys.readouterr().out
    assert code == 0 and "coverage" in out and "capital-common-countries" in out
    stored = store.read_meta(two_models / "alpha")["evaluation"]["analogy/google/3cosadd"]
    assert stored["settings"]["restrict_vocab"] == 1200 and "evaluated_at" in stored


def test_evaluate_similarity_command(two_models, capsys):
    code = main(["evaluate", "similarity", "beta", "--dataset", "simlex999", "--json",
                 "--models", str(two_models)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["result"]["dataset"] == "simlex999"
    assert doc["result"]["seen"] + doc["result"]["oov"] == 999
    assert "similarity/simlex999" in store.read_meta(two_models / "beta")["evaluation"]


def test_evaluate_commands_report_bad_input(two_models, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(": s\na b c\n", encoding="utf-8")
    assert main(["evaluate", "analogy", "alpha", "--dataset", str(bad), "--models", str(two_models)]) == 1
    assert ":2: expected 4 words" in capsys.readouterr().err
    assert main(["evaluate", "analogy", "nosuch", "--models", str(two_models)]) == 1
    assert "no model named 'nosuch'" in capsys.readouterr().err
    assert main(["evaluate", "analogy", "broken", "--models", str(two_models)]) == 1
    assert "vectors.npy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "analogy", "alpha", "--restrict", "0", "--models", str(two_models)])
    assert "must be a positive integer" in capsys.readouterr().err
    empty = store.save_model(tmp_path / "m", "empty", _empty())
    assert main(["evaluate", "similarity", "empty", "--models", str(empty.parent)]) == 1
    assert "has no vectors" in capsys.readouterr().err


def _empty():
    from embeddings.vectors import Embeddings

    return Embeddings([], np.zeros((0, 5), dtype=np.float32))
