"""Hostile and clumsy models (issue 16): one bad model never stops the others, nothing
read from disk reaches a response as NaN, the models directory is the boundary, and an
index always belongs to its vectors. Each case is a hand-made bad model directory; the
availability cases also run a real `wordspace serve`. RELIABILITY.md, "Models on disk"."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from embeddings import store
from embeddings.atomic import sha256_file
from embeddings.index import INDEX_FILE, build_faiss, load_or_build, save_index
from embeddings.query import WordIndex
from embeddings.store import ModelError
from embeddings.vectors import Embeddings
from service.app import create_app
from tests.test_bad_requests import request, running_server
from tests.test_faults_store import _rewrite_checksums as reseal
from wordspace.cli import main

ROOT = Path(__file__).resolve().parents[1]
N, DIM = 40, 6


def random_model(seed: int = 0, n: int = N, dim: int = DIM, prefix: str = "w") -> Embeddings:
    rng = np.random.default_rng(seed)
    return Embeddings([f"{prefix}{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32),
                      np.arange(n, 0, -1) * 5, {"method": "random", "seed": seed})


def saved(models_dir: Path, name: str, seed: int = 0, **kwargs) -> Path:
    """Save a random model `name`; return its (resolved) version directory."""
    store.save_model(models_dir, name, random_model(seed, **kwargs))
    return store.resolve_model(models_dir, name)


def settled(host: str, port: int, timeout: float = 60.0) -> tuple[int, dict]:
    """/readyz once loading is over: no model and no worker still loading or starting."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(host, port, "GET", "/readyz")
        states = body.get("models") or body.get("error", {}).get("models", {})
        workers = body.get("workers") or body.get("error", {}).get("workers") or []
        busy = any(s["status"] == "loading" for s in states.values()) or \
            any(w["status"] in ("loading", "not running") for w in workers)
        if status == 200 or not busy or time.monotonic() > deadline:
            return status, body
        time.sleep(0.05)


def strict_json(text: str | bytes):
    """Parse JSON as the standard defines it: NaN and Infinity are errors."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


# -- surprises behind valid checksums ------------------------------------------------------------
def _huge_count(path: Path) -> None:
    """The issue's OverflowError: a count of thirty 9s, checksums re-sealed."""
    lines = (path / "vocab.txt").read_text().splitlines()
    lines[3] = lines[3].split("\t")[0] + "\t" + "9" * 30
    (path / "vocab.txt").write_text("\n".join(lines) + "\n")
    reseal(path)


def _unicode_digit_count(path: Path) -> None:
    lines = (path / "vocab.txt").read_text().splitlines()
    lines[0] = lines[0].split("\t")[0] + "\t\u0661\u0662"  # Arabic-Indic "12": str.isdigit() says yes
    (path / "vocab.txt").write_text("\n".join(lines) + "\n")
    reseal(path)


def _meta_update(**changes) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        meta = json.loads((path / "meta.json").read_text())
        for key, value in changes.items():
            if key == "files_vocab":
                meta["files"]["vocab.txt"] = value
            elif key == "files_extra":
                meta["files"].update(value)
            else:
                meta[key] = value
        (path / "meta.json").write_text(json.dumps(meta))
    return change


def _nested_meta(path: Path) -> None:
    """The issue's RecursionError: a meta.json of 100,000 nested '['."""
    (path / "meta.json").write_text("[" * 100_000)


def _deep_inside_meta(path: Path) -> None:
    """Valid JSON a few hundred levels deep inside an otherwise good meta.json."""
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(meta)[:-1] + ', "x": ' + "[" * 500 + "]" * 500 + "}")


def _vectors(values: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        np.save(path / "vectors.npy", values, allow_pickle=False)
        reseal(path)
    return write


def _with_value(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        vectors = np.load(path / "vectors.npy")
        vectors[7, 2] = value
        _vectors(vectors)(path)
    return write


def _empty(path: Path) -> None:
    """A model with 0 rows, every file consistent with meta.json."""
    np.save(path / "vectors.npy", np.zeros((0, DIM), np.float32), allow_pickle=False)
    (path / "vocab.txt").write_text("")
    reseal(path)
    _meta_update(vocab_size=0)(path)


def _lying_npy_header(path: Path) -> None:
    """vectors.npy whose header claims 10^6 rows (meta.json agrees), checksums re-sealed."""
    data = (path / "vectors.npy").read_bytes()
    header = data[:128].replace(f"({N}, {DIM})".encode(), f"(1000000, {DIM})".encode().ljust(len(f"({N}, {DIM})")))
    (path / "vectors.npy").write_bytes(header[:128] + data[128:])
    reseal(path)
    _meta_update(vocab_size=1_000_000)(path)


def _vectors_link_outside(path: Path) -> None:
    outside = path.parent.parent / "outside-vectors.npy"
    shutil.copy(path / "vectors.npy", outside)
    (path / "vectors.npy").unlink()
    (path / "vectors.npy").symlink_to(outside)
    reseal(path)


#: case -> (damage, the file the error must name)
SURPRISES: dict[str, tuple[Callable[[Path], None], str]] = {
    "count-of-thirty-9s": (_huge_count, "vocab.txt"),
    "count-in-arabic-digits": (_unicode_digit_count, "vocab.txt"),
    "files-entry-is-an-int": (_meta_update(files_vocab=5), "meta.json"),
    "meta-100000-nested-brackets": (_nested_meta, "meta.json"),
    "meta-500-levels-deep": (_deep_inside_meta, "meta.json"),
    "vocab-size-10e40": (_meta_update(vocab_size=10**40), "meta.json"),
    "dim-as-a-string": (_meta_update(dim=str(DIM)), "meta.json"),
    "checksum-table-escapes": (_meta_update(files_extra={"../../../etc/hostname": {
        "sha256": "0" * 64, "bytes": 1}}), "meta.json"),
    "nan-vector": (_with_value(float("nan")), "vectors.npy"),
    "infinite-vector": (_with_value(float("-inf")), "vectors.npy"),
    "zero-rows": (_empty, "meta.json"),
    "npy-header-claims-a-million-rows": (_lying_npy_header, "vectors.npy"),
    "vectors-link-out-of-the-model": (_vectors_link_outside, "vectors.npy"),
}


def bad_models_dir(root: Path) -> Path:
    """A models directory with a good model and one bad model per surprise."""
    models_dir = root / "models"
    saved(models_dir, "good", seed=1)
    for i, (case, (damage, _file)) in enumerate(SURPRISES.items()):
        damage(saved(models_dir, case, seed=10 + i))
    return models_dir


@pytest.fixture(scope="module")
def surprises(tmp_path_factory) -> Path:
    return bad_models_dir(tmp_path_factory.mktemp("surprises"))


@pytest.mark.parametrize("case", sorted(SURPRISES))
def test_surprise_is_a_model_error_naming_model_and_file(surprises, case):
    """load_model raises ModelError (a ValueError) naming the model and the file, for every
    surprise: never OverflowError, AttributeError, RecursionError or MemoryError."""
    with pytest.raises(ModelError) as info:
        store.load_model(surprises, case)
    message = str(info.value)
    assert f"model {case!r}" in message and SURPRISES[case][1] in message, message
    with pytest.raises(ModelError):
        store.load_model(surprises, case, verify=False, mmap=False)


def test_list_models_lists_every_surprise_as_failed(surprises):
    infos = {info.name: info for info in store.list_models(surprises)}
    assert set(infos) == set(SURPRISES) | {"good"}
    assert infos["good"].error is None
    for case in SURPRISES:
        if case not in ("nan-vector", "infinite-vector", "count-of-thirty-9s", "count-in-arabic-digits",
                        "npy-header-claims-a-million-rows"):  # only a full load reads the data
            assert infos[case].error is not None, case


@pytest.mark.parametrize("command", [
    ["export", "{case}", "--format", "word2vec", "--out", "{tmp}/out.txt"],
    ["evaluate", "similarity", "{case}", "--dataset", "simlex999"],
    ["neighbors", "{case}", "w1"],
])
@pytest.mark.parametrize("case", sorted(SURPRISES))
def test_cli_on_a_surprise_is_one_error_line(surprises, tmp_path, capsys, command, case):
    """`wordspace export/evaluate/neighbors` on a bad model: exit 1 and exactly one
    `wordspace: error:` line naming the model and the file (no traceback)."""
    args = [part.format(case=case, tmp=tmp_path) for part in command] + ["--models", str(surprises)]
    assert main(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wordspace: error: "), lines
    assert f"'{case}'" in lines[0] and SURPRISES[case][1] in lines[0], lines[0]


def test_wordspace_models_lists_surprises_in_a_subprocess(surprises):
    result = subprocess.run([sys.executable, "-m", "wordspace.cli", "models", "--models", str(surprises)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows["good"].rstrip().endswith("ok") and "failed: " in rows["meta-100000-nested-brackets"]


def test_app_serves_the_good_model_beside_every_surprise(surprises):
    """In process: each surprise is failed with a reason naming its file; the good model answers."""
    client = create_app({"MODELS_DIR": surprises, "TESTING": True}).test_client()
    rows = {row["name"]: row for row in client.get("/models").get_json()}
    assert rows["good"]["status"] == "ready"
    for case, (_damage, file) in SURPRISES.items():
        assert rows[case]["status"] == "failed" and file in rows[case]["error"], rows[case]
    response = client.get("/models/good/neighbors?word=w1&k=3")
    assert response.status_code == 200 and len(response.get_json()["neighbors"]) == 3


def test_a_bug_while_loading_one_model_fails_that_model_only(tmp_path, monkeypatch):
    """Any exception (here a planted AttributeError, a programming error) fails that model
    with its reason; the loader goes on and the others serve."""
    models_dir = tmp_path / "models"
    saved(models_dir, "good", seed=1)
    saved(models_dir, "cursed", seed=2)
    real = store.read_vocab

    def cursed(path: Path):
        if ".cursed@" in str(path):
            raise AttributeError("'int' object has no attribute 'get'")
        return real(path)

    monkeypatch.setattr(store, "read_vocab", cursed)
    snapshot = create_app({"MODELS_DIR": models_dir, "TESTING": True}).extensions["wordspace"].snapshot
    assert set(snapshot.models) == {"good"} and not snapshot.loading
    assert snapshot.failed["cursed"].startswith("AttributeError: ")


def test_real_server_with_every_surprise_becomes_ready_for_the_good_model(surprises):
    """`wordspace serve` on the directory of surprises: loading finishes (no model stays
    'loading'), /readyz names each failure, the good model answers, no body holds NaN."""
    with running_server(surprises, threads=2) as (host, port):
        status, body = settled(host, port)
        assert status == 503, body
        states = body["error"]["models"]
        assert states["good"] == {"status": "ready"}
        assert all(states[case]["status"] == "failed" for case in SURPRISES), states
        status, body = request(host, port, "GET", "/models/good/neighbors?word=w1&k=3")
        assert status == 200 and len(body["neighbors"]) == 3
        status, body = request(host, port, "POST", "/models/good/similarity", {"pairs": [["w1", "w2"]]})
        assert status == 200 and isinstance(body["results"][0]["similarity"], float)
        status, body = request(host, port, "POST", "/models/nan-vector/similarity", {"pairs": [["w1", "w7"]]})
        assert status == 503 and "vectors.npy" in body["error"]["message"]


def test_meta_with_nan_is_served_as_null_never_as_nan(tmp_path):
    """NaN/Infinity in a meta.json (e.g. a NaN evaluation score) reach no response: null."""
    models_dir = tmp_path / "models"
    path = saved(models_dir, "m")
    text = (path / "meta.json").read_text()
    (path / "meta.json").write_text(text[:-2] + ', "evaluation": {"simlex": NaN, "ws": -Infinity}}\n')
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    body = strict_json(client.get("/models/m").get_data())
    assert body["evaluation"] == {"simlex": None, "ws": None}
    store.update_meta(models_dir, "m", {"evaluation": {"x": float("nan")}})  # written as null, valid JSON
    strict_json((store.resolve_model(models_dir, "m") / "meta.json").read_text())


def test_json_provider_writes_no_nan():
    app = create_app({"MODELS_DIR": "/nonexistent", "TESTING": True})
    assert app.json.dumps({"a": [1.0, float("nan"), float("inf")], "b": 2}) == '{"a": [1.0, null, null], "b": 2}'


# -- numbers: import, save, train ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e39", "NaN"])
@pytest.mark.parametrize("fmt", ["word2vec", "glove"])
def test_import_of_non_finite_values_saves_nothing(tmp_path, capsys, value, fmt):
    source = tmp_path / "v.txt"
    lines = [f"w{i} 0.1 0.2 {value if i == 2 else '0.3'}" for i in range(4)]
    source.write_text(("4 3\n" if fmt == "word2vec" else "") + "\n".join(lines) + "\n")
    models_dir = tmp_path / "models"
    assert main(["import", str(source), "--format", fmt, "--name", "m", "--models", str(models_dir)]) == 1
    lines = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    errors = [line for line in lines if line.startswith("wordspace:")]  # beside the cleared progress bar
    assert len(errors) == 1 and errors[0] == lines[-1] and "'w2'" in errors[0] and "NaN" in errors[0], lines
    assert "Traceback" not in "\n".join(lines)
    assert store.model_names(models_dir) == []


def _binary(path: Path, entries: list[tuple[bytes, np.ndarray]], header: bytes | None = None) -> Path:
    dim = len(entries[0][1])
    with open(path, "wb") as handle:
        handle.write(header if header is not None else f"{len(entries)} {dim}\n".encode())
        for word, vector in entries:
            handle.write(word + b" " + np.asarray(vector, "<f4").tobytes() + b"\n")
    return path


def test_binary_header_larger_than_the_file_is_refused_before_allocating(tmp_path, capsys):
    """10^12 x 300 claimed by a 2 KB file: refused at once from the file size (no MemoryError)."""
    rows = [(f"w{i}".encode(), np.full(300, 0.5)) for i in range(1)]
    source = _binary(tmp_path / "v.bin", rows, header=b"1000000000000 300\n")
    assert main(["import", str(source), "--format", "word2vec-bin", "--name", "m",
                 "--models", str(tmp_path / "models")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error:") and "header announces" in err and "\n" not in err


@pytest.mark.parametrize("word, message", [
    (b"new york", "misaligned"),           # a space inside a word shifts everything after it
    (b"caf\xe9", "not valid UTF-8"),        # Latin-1, not UTF-8
    (b"tab\x01x", "control characters"),
])
def test_binary_words_that_cannot_be_read_are_refused(tmp_path, word, message):
    from embeddings.formats import import_embeddings

    rng = np.random.default_rng(0)
    entries = [(b"first", rng.standard_normal(4)), (word, rng.standard_normal(4)), (b"last", rng.standard_normal(4))]
    with pytest.raises(ValueError, match=message):
        import_embeddings(_binary(tmp_path / "v.bin", entries), "word2vec-bin")


def test_text_words_that_are_not_utf8_are_refused_with_the_line(tmp_path):
    from embeddings.formats import import_embeddings

    (tmp_path / "v.txt").write_bytes(b"good 0.1 0.2\ncaf\xe9 0.3 0.4\n")
    with pytest.raises(ValueError, match=r"v\.txt:2: not valid UTF-8"):
        import_embeddings(tmp_path / "v.txt", "glove")


def test_import_limit_must_be_positive(tmp_path, capsys):
    from embeddings.formats import import_embeddings

    source = tmp_path / "v.txt"
    source.write_text("a 0.1 0.2\nb 0.3 0.4\n")
    with pytest.raises(SystemExit):
        main(["import", str(source), "--format", "glove", "--name", "m", "--limit", "0",
              "--models", str(tmp_path / "models")])
    assert "must be a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="limit"):
        import_embeddings(source, "glove", limit=0)
    assert store.model_names(tmp_path / "models") == []


def test_save_refuses_empty_and_non_finite_models(tmp_path):
    with pytest.raises(ValueError, match="no words"):
        store.save_model(tmp_path, "empty", Embeddings([], np.zeros((0, 3), np.float32)))
    vectors = np.ones((3, 2), np.float32)
    emb = Embeddings(["a", "b", "c"], vectors)
    vectors[1, 0] = np.inf  # the caller's array, changed after the Embeddings was built
    with pytest.raises(ValueError, match="'b'.*NaN or infinity"):
        store.save_model(tmp_path, "inf", emb)
    assert store.model_names(tmp_path) == []


def test_every_trainer_saves_through_the_finite_check(tmp_path, monkeypatch):
    """Trainer.save, which every trainer family inherits, refuses diverged vectors (here SVD
    made to overflow) with one clear error; nothing is saved. --eig far out is refused upfront."""
    from embeddings import svd
    from embeddings.trainers import TRAINERS
    from embeddings.training import Trainer

    assert all(cls.save is Trainer.save for cls in TRAINERS.values())
    monkeypatch.setattr(svd, "svd_embed", lambda matrix, dim, *args, **kwargs: np.full(
        (matrix.shape[0], dim), np.inf, np.float32))
    sentences = [["a", "b", "c", "d"], ["b", "c", "d", "a"], ["c", "a", "d", "b"]] * 20
    trainer = svd.SVDTrainer(dim=2, window=2, min_count=1).fit(sentences)
    with pytest.raises(ValueError, match="svd training produced vectors holding NaN or infinity.*nothing was saved"):
        trainer.save(tmp_path, "diverged")
    assert store.model_names(tmp_path) == []
    for eig in (1000.0, -5.0):
        with pytest.raises(ValueError, match="eig"):
            svd.SVDTrainer(eig=eig).check_params()


def test_train_svd_eig_1000_is_one_error_line(tmp_path, capsys):
    assert main(["train", "svd", "--corpus", "sample", "--name", "m", "--eig", "1000",
                 "--models", str(tmp_path / "m"), "--data", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error:") and "eig" in err and "\n" not in err
    assert store.model_names(tmp_path / "m") == []


# -- the models directory is the boundary ----------------------------------------------------------
def _outside_dir(root: Path) -> Path:
    """A directory outside the models directory holding a valid model copy and precious files."""
    outside = root / "outside"
    scratch = root / "scratch"
    path = saved(scratch, "template", seed=3)
    shutil.copytree(path, outside)
    (outside / ".precious.tmp").write_text("keep me")
    (outside / ".meta.json.abcd1234.tmp").write_text("keep me too")  # even one named like our temp files
    return outside


def test_cleaning_never_follows_a_link_out_of_the_models_dir(tmp_path, capsys):
    """The issue's data loss: a model entry `linked -> /outside` and an ordinary import must
    not delete /outside/.precious.tmp. Nor is anything not named and owned as our own removed."""
    outside = _outside_dir(tmp_path)
    models_dir = tmp_path / "models"
    saved(models_dir, "good")
    (models_dir / "linked").symlink_to(outside)
    (models_dir / ".hidden-link").symlink_to(outside)
    (models_dir / ".precious.tmp").write_text("user file")
    (models_dir / ".notes@home").mkdir()
    (models_dir / ".good@20200101T000000-deadbeef.tmp").mkdir()  # no pid: not our temp name
    (models_dir / ".x@20200101T000000-cafebabe").symlink_to(outside)  # a version name, but a link
    source = tmp_path / "v.txt"
    source.write_text("a 0.1 0.2\nb 0.3 0.4\n")
    assert main(["import", str(source), "--format", "glove", "--name", "fresh", "--models", str(models_dir)]) == 0
    store.clean_stale(models_dir)
    assert (outside / ".precious.tmp").read_text() == "keep me"
    assert (outside / ".meta.json.abcd1234.tmp").exists()
    for kept in (".precious.tmp", ".notes@home", ".good@20200101T000000-deadbeef.tmp",
                 ".x@20200101T000000-cafebabe", "linked", ".hidden-link"):
        assert os.path.lexists(models_dir / kept), kept
    assert sorted(outside.iterdir()) == sorted(outside.iterdir())  # still there, untouched
    assert store.load_model(models_dir, "fresh").words == ("a", "b")


def test_a_model_link_out_of_the_models_dir_is_refused_everywhere(tmp_path, capsys):
    """Decision: a model must be a directory inside the models directory. A link elsewhere
    (even to a valid model, or into /proc) is listed failed, never loaded, never served."""
    outside = _outside_dir(tmp_path)
    models_dir = tmp_path / "models"
    saved(models_dir, "good")
    (models_dir / "linked").symlink_to(outside)
    (models_dir / "proc").symlink_to("/proc/1/cwd")
    (models_dir / "loop").symlink_to("loop")
    (models_dir / "dangling").symlink_to(".dangling@20200101T000000-00000000")
    infos = {info.name: info for info in store.list_models(models_dir)}
    assert infos["good"].error is None
    assert "outside the models directory" in infos["linked"].error
    assert "/proc/1/cwd" in infos["proc"].error and "refused" in infos["proc"].error
    assert infos["loop"].error and infos["dangling"].error
    for name in ("linked", "proc", "loop", "dangling"):
        with pytest.raises(ModelError):
            store.load_model(models_dir, name)
    assert main(["models", "--models", str(models_dir)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["good"].rstrip().endswith("ok") and "failed:" in rows["linked"] and "failed:" in rows["proc"]
    snapshot = create_app({"MODELS_DIR": models_dir, "TESTING": True}).extensions["wordspace"].snapshot
    assert set(snapshot.models) == {"good"} and set(snapshot.failed) == {"linked", "proc", "loop", "dangling"}
    assert "outside the models directory" in snapshot.failed["linked"]


def test_server_start_removes_only_our_own_leftovers(tmp_path):
    """A real `wordspace serve` start removes an unreferenced version and a dead save's temp
    directory (the README's promise) and keeps everything else."""
    models_dir = tmp_path / "models"
    good = saved(models_dir, "good")
    ghost = models_dir / ".ghost@20200101T000000-deadbeef"
    shutil.copytree(good, ghost)
    dead_tmp = models_dir / f"{good.name}.999999.tmp"
    shutil.copytree(good, dead_tmp)
    (models_dir / ".precious.tmp").write_text("user file")
    (models_dir / "notes.txt").write_text("user file")
    with running_server(models_dir, threads=2) as (host, port):
        assert settled(host, port)[0] == 200
        assert not ghost.exists() and not dead_tmp.exists()
        assert (models_dir / ".precious.tmp").exists() and (models_dir / "notes.txt").exists()
        assert request(host, port, "GET", "/models/good/neighbors?word=w1&k=2")[0] == 200


# -- an index always belongs to its vectors ---------------------------------------------------------
def brute_neighbors(emb: Embeddings, word: str, k: int = 5) -> list[str]:
    return [n.word for n in WordIndex.brute_force(emb).neighbors(word, k=k)]


def test_index_copied_from_another_model_is_rebuilt_at_load(tmp_path):
    """The issue's case: another model's index.faiss (same shape), checksum re-sealed in
    meta.json, is detected at load (rows compared with the stored vectors), rebuilt with the
    reason, and the neighbours are the model's own."""
    models_dir = tmp_path / "models"
    a, b = random_model(1), random_model(2)
    store.save_model(models_dir, "a", a)
    store.save_model(models_dir, "b", b)
    for name, emb in (("a", a), ("b", b)):
        load_or_build(models_dir, name, emb)
    path_a, path_b = store.resolve_model(models_dir, "a"), store.resolve_model(models_dir, "b")
    (path_a / INDEX_FILE).unlink()
    shutil.copy(path_b / INDEX_FILE, path_a / INDEX_FILE)
    meta = json.loads((path_a / "meta.json").read_text())
    meta["files"][INDEX_FILE] = {"sha256": sha256_file(path_a / INDEX_FILE),
                                 "bytes": (path_a / INDEX_FILE).stat().st_size}  # re-sealed, no tie
    (path_a / "meta.json").write_text(json.dumps(meta))
    client = create_app({"MODELS_DIR": models_dir, "TESTING": True}).test_client()
    row = {r["name"]: r for r in client.get("/models").get_json()}["a"]
    assert row["status"] == "ready" and "does not match the vectors" in row["index"]["rebuild_reason"], row
    served = [n["word"] for n in client.get("/models/a/neighbors?word=w0&k=5").get_json()["neighbors"]]
    assert served == brute_neighbors(a, "w0")


def test_index_records_the_vectors_it_was_built_from(tmp_path):
    models_dir = tmp_path / "models"
    emb = random_model(1)
    store.save_model(models_dir, "a", emb)
    load_or_build(models_dir, "a", emb)
    files = store.read_meta(store.resolve_model(models_dir, "a"))["files"]
    assert files[INDEX_FILE]["vectors_sha256"] == files["vectors.npy"]["sha256"]


def test_a_build_whose_model_was_replaced_is_not_persisted(tmp_path, monkeypatch):
    """The issue's race: B's index is being built when C (same shape, same name) is saved.
    The build must not be recorded for C; C then gets its own index, never B's."""
    from embeddings import index as index_mod

    models_dir = tmp_path / "models"
    b, c = random_model(1), random_model(2)
    store.save_model(models_dir, "m", b)
    b_dir = store.resolve_model(models_dir, "m")
    build = index_mod.build_faiss

    def build_while_c_is_saved(*args, **kwargs):
        store.save_model(models_dir, "m", c)  # `wordspace import ... --name m --overwrite` meanwhile
        return build(*args, **kwargs)

    monkeypatch.setattr(index_mod, "build_faiss", build_while_c_is_saved)
    backend, report = load_or_build(models_dir, "m", b, model_dir=b_dir, kind="hnsw")
    monkeypatch.setattr(index_mod, "build_faiss", build)
    assert report.source.startswith("built (not persisted")
    assert INDEX_FILE not in store.read_meta(store.resolve_model(models_dir, "m"))["files"]
    assert [n.word for n in WordIndex(b, backend).neighbors("w0", k=5)] == brute_neighbors(b, "w0")
    loaded = store.load_model(models_dir, "m")
    backend, report = load_or_build(models_dir, "m", loaded)
    assert report.source == "built (persisted)"
    assert [n.word for n in WordIndex(loaded, backend).neighbors("w0", k=5)] == brute_neighbors(c, "w0")
    with pytest.raises(store.ModelReplaced):
        save_index(models_dir, "m", build_faiss(b, "flat"), version=b_dir)


KILLED_INDEX_WRITE = textwrap.dedent("""
    import os, signal, sys
    from embeddings import store
    from wordspace.cli import main

    def killed(*args, **kwargs):  # the moment the new index.faiss is complete, before anything points at it
        os.kill(os.getpid(), signal.SIGKILL)

    store._point_at = killed
    sys.exit(main(["index", "m", "--rebuild", "--kind", "flat", "--models", sys.argv[1]]))
""")


def test_kill9_between_the_new_index_and_the_swap_keeps_the_old_pair(tmp_path):
    """`wordspace index m --rebuild` killed right after the new index file is written: the
    model still loads verified with its old index; `serve` is ready and cleans the leftover."""
    models_dir = tmp_path / "models"
    emb = random_model(1)
    store.save_model(models_dir, "m", emb)
    load_or_build(models_dir, "m", emb)
    before = store.resolve_model(models_dir, "m")
    result = subprocess.run([sys.executable, "-c", KILLED_INDEX_WRITE, str(models_dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    # The new version is complete (renamed into place) but nothing points at it.
    leftovers = [p for p in models_dir.iterdir() if p.name.startswith(".m@") and p.name != before.name]
    assert any((p / INDEX_FILE).is_file() and p.stat().st_mtime >= before.stat().st_mtime for p in leftovers)
    assert store.resolve_model(models_dir, "m") == before
    store.load_model(models_dir, "m")  # every checksum, index.faiss included
    with running_server(models_dir, threads=2) as (host, port):
        status, body = settled(host, port)
        assert status == 200, body
        status, body = request(host, port, "GET", "/models/m/neighbors?word=w0&k=5")
        assert [n["word"] for n in body["neighbors"]] == brute_neighbors(emb, "w0")
        assert not any(p.exists() for p in leftovers)


def test_add_model_file_is_a_new_version_sharing_the_old_files(tmp_path):
    models_dir = tmp_path / "models"
    old = saved(models_dir, "m")
    store.add_model_file(models_dir, "m", "extra.bin", lambda handle: handle.write(b"x" * 10))
    new = store.resolve_model(models_dir, "m")
    assert new != old and (new / "extra.bin").read_bytes() == b"x" * 10 and not (old / "extra.bin").exists()
    assert os.path.samefile(new / "vectors.npy", old / "vectors.npy")  # a hard link, not a copy
    store.load_model(models_dir, "m")
    with pytest.raises(ValueError):
        store.add_model_file(models_dir, "m", "../escape", lambda handle: None)
