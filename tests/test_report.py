"""Comparison report and the evaluate/compare commands: files, stored results, re-use,
failing models, JSON on stdout."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.analogy import evaluate_analogies
from analysis.datasets import read_analogies, read_word_pairs
from analysis.report import bar_figure, compare_models, markdown_table, write_report
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
    with pytest.raises(ValueError, match="no words"):  # an empty model is never saved (nor loaded)
        store.save_model(tmp_path / "m", "empty", _empty())


def _empty():
    from embeddings.vectors import Embeddings

    return Embeddings([], np.zeros((0, 5), dtype=np.float32))


# -- honest evaluation: coverage, common subset, one default ------------------------------
def test_low_coverage_scores_are_flagged_in_table_json_png_and_cli(two_models, tmp_path, capsys):
    """The models know ~90% of the Google words but few WordSim353/SimLex words."""
    rows = compare_models(two_models, ["alpha"], restrict_vocab=1500, save=False, log=lambda _: None)
    ws = rows[0].scores["similarity/ws353"]
    assert ws["coverage"] < 0.5 and rows[0].scores["analogy/google/3cosadd"]["coverage"] > 0.5
    table = markdown_table(rows, 1500)
    ws_cell = table.splitlines()[2].split(" | ")[7]
    assert ws_cell.endswith("⚠") and f"{ws['seen']}/{ws['total']}" in ws_cell
    assert "coverage under 50%" in table and "--common" in table
    assert any("similarity/ws353: low coverage" in w for w in rows[0].to_dict()["warnings"])
    # report.png: every bar has its value on top and its coverage at its foot.
    texts = [t.get_text() for t in bar_figure(rows).axes[0].texts]
    for key in ("analogy/google/3cosadd", "similarity/ws353"):
        assert f"{rows[0].value(key):.2f}" in texts
    assert f"cov {100 * ws['coverage']:.0f}% ⚠" in texts
    assert sum(t.startswith("cov ") for t in texts) == 4
    assert main(["compare", "alpha", "-o", str(tmp_path / "out"), "--restrict", "1500",
                 "--models", str(two_models)]) == 0
    err = capsys.readouterr().err
    assert "wordspace: warning: alpha: similarity/ws353: low coverage: only" in err
    assert main(["evaluate", "similarity", "alpha", "--restrict", "1500", "--no-save",
                 "--models", str(two_models)]) == 0
    captured = capsys.readouterr()
    assert "wordspace: warning: ws353: low coverage" in captured.err
    assert "WARNING: low coverage" in captured.out


def test_compare_common_scores_every_model_on_the_shared_items(two_models, tmp_path, capsys):
    names = ["alpha", "beta", "gamma"]
    before = {n: store.read_meta(two_models / n).get("evaluation") for n in names}
    logs: list[str] = []
    rows = compare_models(two_models, names, restrict_vocab=1500, log=logs.append, common=True)
    own = compare_models(two_models, names, restrict_vocab=1500, save=False, log=lambda _: None)
    emb = [store.load_model(two_models, n) for n in names]
    for key, items in (("analogy/google/3cosadd", "questions"), ("similarity/ws353", "ws353"),
                       ("similarity/simlex999", "simlex999")):
        totals = {row.scores[key]["total"] for row in rows}
        assert len(totals) == 1, key  # the same items for every model...
        common = totals.pop()
        assert all(row.scores[key]["seen"] == common for row in rows)  # ...all of them covered
        assert common <= min(row.scores[key]["seen"] for row in own)
        assert rows[0].scores[key]["common"] == {"items": common, "of": own[0].scores[key]["total"]}
    # Scored exactly as the evaluators on that subset: the questions all three models know.
    google = read_analogies("google")
    known = [{w.upper() for w in e.words[:1500]} for e in emb]
    shared = [q for q in google.questions
              if all({q.a.upper(), q.b.upper(), q.c.upper(), q.expected.upper()} <= k for k in known)]
    assert rows[0].scores["analogy/google/3cosadd"]["total"] == len(shared)
    assert any(line.startswith(f"common to 3 models: {len(shared)}/19544 Google questions") for line in logs)
    assert "Common subset (--common)" in markdown_table(rows, 1500)
    # Scores on a subset never pass for the full ones: nothing stored.
    assert {n: store.read_meta(two_models / n).get("evaluation") for n in names} == before
    assert main(["compare", *names, "--common", "-o", str(tmp_path / "out"), "--restrict", "1500",
                 "--models", str(two_models)]) == 0
    captured = capsys.readouterr()
    assert f"common to 3 models: {len(shared)}/19544" in captured.err
    assert "Common subset (--common)" in captured.out


def test_evaluate_and_compare_share_the_default_restrict():
    from analysis.analogy import DEFAULT_RESTRICT
    from analysis.report import COMPARE_RESTRICT
    from wordspace.cli import build_parser

    parser = build_parser()
    defaults = {parser.parse_args(argv).restrict for argv in (
        ["evaluate", "analogy", "m"], ["evaluate", "similarity", "m"], ["compare", "-o", "x"])}
    assert defaults == {DEFAULT_RESTRICT} == {COMPARE_RESTRICT} == {300_000}


def test_evaluate_reads_a_csv_with_a_header_and_notes_it(two_models, tmp_path, capsys):
    path = tmp_path / "pairs.csv"
    path.write_text("Word 1,Word 2,Human (mean)\n" + "".join(
        f"{a},{b},{s}\n" for a, b, s in [("athens", "greece", 9), ("paris", "france", 8.5), ("king", "queen", 8)]),
        encoding="utf-8")
    assert main(["evaluate", "similarity", "alpha", "--dataset", str(path), "--no-save", "--json",
                 "--models", str(two_models)]) == 0
    captured = capsys.readouterr()
    assert "wordspace: note: " in captured.err and "read as a header line" in captured.err
    assert "separated by commas" in captured.err
    assert "fewer than 10" in captured.err
    doc = json.loads(captured.out)
    assert doc["result"]["total"] == 3 and len(doc["result"]["notes"]) == 2
