"""The `wordspace` command line: help, import/export/models, one-line user errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embeddings import store
from wordspace.cli import build_parser, main
from embeddings.formats import export_embeddings
from embeddings.vectors import Embeddings


def run(*args):
    """Run the real console entry point in a subprocess."""
    return subprocess.run([sys.executable, "-m", "wordspace.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _subcommand_paths(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _subcommand_paths(sub, prefix + (name,))


def test_every_subcommand_has_help(capsys):
    paths = list(_subcommand_paths(build_parser()))
    assert ("corpus", "prepare") in paths and ("import",) in paths and ("models",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: wordspace " + " ".join(path)), path


def test_every_train_command_has_the_safety_options(capsys):
    """--overwrite everywhere; --resume and --restart wherever there are checkpoints, explained in --help."""
    from embeddings.trainers import FAMILIES

    for family in FAMILIES:
        with pytest.raises(SystemExit):
            main(["train", family, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--overwrite" in out and "replace an existing model" in out, family
        assert "--quiet" in out, family
        if family != "contextual":  # pooling a pretrained encoder keeps no checkpoints
            assert "--resume" in out and "--restart" in out and "delete the checkpoint" in out, family


def test_demo_trains_only_missing_models_and_resumes_killed_runs(tmp_path, capsys):
    """`make demo` skips models that exist, passes --resume to the trainers that checkpoint
    (a killed demo continues), and --overwrite only to retrain a broken model."""
    import argparse

    from wordspace.demo import run_demo

    models = tmp_path / "models"
    store.save_model(models, "cbow", Embeddings(["x", "y"], np.ones((2, 2))))
    store.save_model(models, "svd", Embeddings(["x", "y"], np.ones((2, 2))))
    (models / "svd" / store.VECTORS_FILE).write_bytes(b"truncated")
    calls: list[list[str]] = []
    args = argparse.Namespace(models=models, data=tmp_path / "data", host="127.0.0.1", port=0, no_report=True)
    assert run_demo(args, lambda argv: calls.append(list(argv)) or 0) == 0
    trained = {argv[argv.index("--name") + 1]: argv for argv in calls if argv[0] == "train"}
    assert set(trained) == {"skipgram", "svd", "contextual"}
    assert "--resume" in trained["skipgram"] and "--resume" in trained["svd"]
    assert "--overwrite" in trained["svd"] and "--overwrite" not in trained["skipgram"]
    parser = build_parser()
    for argv in trained.values():
        parser.parse_args(argv)  # every demo command line is valid


def test_import_export_models_round_trip(tmp_path, capsys):
    emb = Embeddings(["a", "b", "c"], np.arange(6, dtype=np.float32).reshape(3, 2) / 7)
    src = export_embeddings(emb, tmp_path / "in.txt", "word2vec")
    models = tmp_path / "models"
    assert main(["import", str(src), "--format", "word2vec", "--name", "small", "--models", str(models)]) == 0
    assert main(["models", "--models", str(models)]) == 0
    out = capsys.readouterr().out
    assert "small" in out and "imported" in out
    assert main(["export", "small", "--format", "glove", "--out", str(tmp_path / "out.txt"),
                 "--models", str(models)]) == 0
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["a", "b", "c"]
    np.testing.assert_array_equal(store.load_model(models, "small").vectors, emb.vectors)


def test_models_dir_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORDSPACE_MODELS", str(tmp_path / "envmodels"))
    store.save_model(tmp_path / "envmodels", "m", Embeddings(["x"], np.ones((1, 2))))
    assert main(["models"]) == 0
    assert "m " in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "nosuch", "--format", "glove", "--out", "x"], "no model named 'nosuch'"),
        (["import", "missing.txt", "--format", "glove", "--name", "m"], "no such file"),
        (["import", "in.txt", "--format", "glove", "--name", "../evil"], "invalid model name"),
        (["import", "in.txt"], "needs --format and --name"),
        (["corpus", "prepare", "empty.txt", "--out", "prep"], "empty"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "in.txt").write_text("a 1 2\n")
    (tmp_path / "empty.txt").write_text("...\n")
    result = subprocess.run([sys.executable, "-m", "wordspace.cli", *args, "--models", str(tmp_path / "m")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path.cwd())})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # A progress bar may have drawn (and cleared) itself before the error: ignore its lines.
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines()
             if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("wordspace: error:") and message in lines[0], result.stderr


def test_import_glove_6b_50d(tmp_path):
    result = run("import", "glove-6b-50d", "--models", tmp_path)
    assert result.returncode == 0, result.stderr
    emb = store.load_model(tmp_path, "glove-6b-50d")
    assert (len(emb), emb.dim) == (400_000, 50)
    assert emb.words[:4] == ("the", ",", ".", "of")
    assert emb.similarity("king", "queen") > emb.similarity("king", "carrot")


def test_corpus_sample_and_prepare(tmp_path):
    assert run("corpus", "sample", "--out", tmp_path / "s.txt").returncode == 0
    result = run("corpus", "prepare", tmp_path / "s.txt", "--out", tmp_path / "prep")
    assert result.returncode == 0, result.stderr
    assert "tokens" in result.stdout
    first = (tmp_path / "prep" / "corpus.txt").read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith("anarchism is a political philosophy")


def test_a_programming_error_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """Only user errors become one line: a bug (here a TypeError inside a command) propagates
    with its traceback instead of being reported as 'wordspace: error: ...'."""
    import wordspace.cli as cli

    def broken(args):
        raise TypeError("a bug, not a user error")

    monkeypatch.setattr(cli, "_cmd_models", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["models", "--models", str(tmp_path)])
    assert "wordspace: error" not in capsys.readouterr().err
