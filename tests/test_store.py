"""Embeddings store: the in-memory class, atomic saves, validation on load, names."""
from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest

from embeddings import store
from embeddings.store import ModelError
from embeddings.vectors import Embeddings


def make(n=6, d=4, seed=0, method="test"):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n - 1)] + ["naïve"]
    return Embeddings(words, rng.normal(size=(n, d)), np.arange(n, 0, -1), {"method": method, "seed": seed})


# -- Embeddings -------------------------------------------------------------------
def test_lookup_and_readonly_arrays():
    emb = make()
    assert len(emb) == 6 and emb.dim == 4 and "naïve" in emb and "nope" not in emb and 3 not in emb
    assert emb.index_of("w2") == 2
    np.testing.assert_array_equal(emb.vector("w2"), emb.vectors[2])
    with pytest.raises(KeyError):
        emb.vector("nope")
    with pytest.raises(KeyError):
        emb.index_of(0)  # an int is never a row index by accident
    for array in (emb.vectors, emb.normalized, emb.counts, emb.vector("w1")):
        with pytest.raises(ValueError):
            array[0] = 1
    np.testing.assert_allclose(np.linalg.norm(emb.normalized, axis=1), 1.0, rtol=1e-6)
    assert emb.missing(["w1", "x", "y", "x"]) == ["x", "y"]


def test_normalized_leaves_zero_rows_zero():
    emb = Embeddings(["a", "b"], np.array([[0, 0], [3, 4]], dtype=np.float32))
    np.testing.assert_allclose(emb.normalized, [[0, 0], [0.6, 0.8]], rtol=1e-6)


@pytest.mark.parametrize(
    "words, vectors, message",
    [
        (["a", "a"], np.zeros((2, 2)), "duplicate word 'a'"),
        (["a"], np.zeros((2, 2)), "mismatch"),
        (["a", ""], np.zeros((2, 2)), "empty"),
        (["a", "b\tc"], np.zeros((2, 2)), "tab or newline"),
        (["a"], np.zeros(2), "2-D"),
    ],
)
def test_invalid_embeddings_are_rejected(words, vectors, message):
    with pytest.raises(ValueError, match=message):
        Embeddings(words, vectors)


# -- save / load ----------------------------------------------------------------------
def test_save_load_round_trip_exact(models_dir):
    emb = make()
    path = store.save_model(models_dir, "m", emb)
    loaded = store.load_model(models_dir, "m")
    assert loaded.words == emb.words
    np.testing.assert_array_equal(loaded.vectors, emb.vectors)
    np.testing.assert_array_equal(loaded.counts, emb.counts)
    assert loaded.meta["method"] == "test" and loaded.meta["dim"] == 4 and loaded.meta["vocab_size"] == 6
    base = loaded.vectors
    while not isinstance(base, (np.memmap, type(None))):
        base = base.base
    assert isinstance(base, np.memmap)  # memory-mapped, not read into memory
    meta = json.loads((path / "meta.json").read_text())
    assert set(meta["files"]) == {"vectors.npy", "vocab.txt"}
    # vectors.npy is a plain .npy that numpy reads without pickle
    np.testing.assert_array_equal(np.load(path / "vectors.npy", allow_pickle=False), emb.vectors)


def test_save_without_counts_and_with_extra_files(models_dir):
    emb = Embeddings(["a", "b"], np.eye(2))

    def extra(directory):
        (directory / "encoder").mkdir()
        (directory / "encoder" / "weights.bin").write_bytes(b"\x00\x01")

    path = store.save_model(models_dir, "e", emb, write_extra=extra)
    loaded = store.load_model(models_dir, "e")
    assert loaded.counts is None
    assert "encoder/weights.bin" in store.read_meta(path)["files"]
    (path / "encoder" / "weights.bin").write_bytes(b"\x00\x02")
    with pytest.raises(ModelError, match="weights.bin: checksum mismatch"):
        store.load_model(models_dir, "e")


def test_replacing_a_model_swaps_versions_and_cleans_up(models_dir):
    store.save_model(models_dir, "m", make(seed=1))
    store.save_model(models_dir, "m", make(seed=2))
    assert store.load_model(models_dir, "m").meta["seed"] == 2
    hidden = [p.name for p in models_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert len(hidden) == 1  # only the live version directory remains


def _save_forever(models_dir):
    emb = make(n=20_000, d=50, seed=7)
    while True:
        store.save_model(models_dir, "m", emb)


def test_killed_save_leaves_the_old_model(models_dir):
    store.save_model(models_dir, "m", make(seed=1))
    ctx = multiprocessing.get_context("fork")
    for delay in (0.05, 0.12, 0.2):
        proc = ctx.Process(target=_save_forever, args=(models_dir,))
        proc.start()
        proc.join(delay)
        proc.kill()
        proc.join()
        loaded = store.load_model(models_dir, "m")  # verifies every checksum
        assert loaded.meta["seed"] in (1, 7)
    store.clean_stale(models_dir)
    leftovers = [p for p in models_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_add_model_file_and_update_meta(models_dir):
    store.save_model(models_dir, "m", make())
    store.add_model_file(models_dir, "m", "index.bin", lambda h: h.write(b"abc"))
    meta = store.update_meta(models_dir, "m", {"evaluation": {"ws353": {"spearman": 0.5}}})
    meta = store.update_meta(models_dir, "m", {"evaluation": {"simlex999": {"spearman": 0.3}}})
    assert set(meta["evaluation"]) == {"ws353", "simlex999"}
    assert store.load_model(models_dir, "m").meta["evaluation"]["ws353"]["spearman"] == 0.5
    path = store.model_path(models_dir, "m")
    assert store.verify_file(path, "index.bin").read_bytes() == b"abc"


# -- corruption ---------------------------------------------------------------------------
def _corrupt(path, case):
    vectors = path / "vectors.npy"
    if case == "truncated":
        data = vectors.read_bytes()
        vectors.write_bytes(data[: len(data) // 2])
    elif case == "flipped":
        data = bytearray(vectors.read_bytes())
        data[-3] ^= 0xFF
        vectors.write_bytes(bytes(data))
    elif case == "missing_vocab":
        (path / "vocab.txt").unlink()
    elif case == "count_mismatch":
        (path / "vocab.txt").write_text("a\t1\n", encoding="utf-8")
    elif case == "duplicate_words":
        lines = (path / "vocab.txt").read_text().splitlines()
        (path / "vocab.txt").write_text("\n".join([lines[0]] * len(lines)) + "\n")
    elif case == "garbage_meta":
        (path / "meta.json").write_text("{not json")


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", r"vectors\.npy: size"),
        ("flipped", r"vectors\.npy: checksum mismatch"),
        ("missing_vocab", r"vocab\.txt: missing"),
        ("count_mismatch", r"vocab\.txt"),
        ("duplicate_words", r"vocab\.txt"),
        ("garbage_meta", r"meta\.json: not valid JSON"),
    ],
)
def test_corrupt_models_fail_with_the_file_named(models_dir, case, message):
    path = store.save_model(models_dir, "m", make()).resolve()
    store.save_model(models_dir, "ok", make())
    _corrupt(path, case)
    with pytest.raises(ModelError, match=message):
        store.load_model(models_dir, "m")
    infos = {info.name: info for info in store.list_models(models_dir)}
    assert infos["ok"].error is None
    if case == "garbage_meta":
        assert "not valid JSON" in infos["m"].error


@pytest.mark.parametrize("case", ["count_mismatch", "duplicate_words"])
def test_inconsistencies_are_caught_without_checksums(models_dir, case):
    path = store.save_model(models_dir, "m", make()).resolve()
    _corrupt(path, case)
    with pytest.raises(ModelError, match="vocab.txt"):
        store.load_model_dir(path, verify=False)


def test_unknown_model_is_a_key_error(models_dir):
    with pytest.raises(KeyError):
        store.load_model(models_dir, "absent")


# -- names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", ".hidden", "a..b", "x" * 65, "a b", "é", None, 3])
def test_invalid_model_names(models_dir, name):
    with pytest.raises(ValueError, match="invalid model name"):
        store.save_model(models_dir, name, make())
    assert not any(p for p in models_dir.iterdir() if p.name not in (".lock",))


@pytest.mark.parametrize("name", ["glove-6b-50d", "a", "Model_1.v2", "9" * 64])
def test_valid_model_names(models_dir, name):
    store.save_model(models_dir, name, make())
    assert [info.name for info in store.list_models(models_dir)] == [name]


def test_legacy_plain_directory_is_replaced_safely(models_dir, tmp_path):
    path = store.save_model(tmp_path / "other", "m", make(seed=3)).resolve()
    os.rename(path, models_dir / "m")  # a plain directory, e.g. copied by hand
    assert store.load_model(models_dir, "m").meta["seed"] == 3
    store.save_model(models_dir, "m", make(seed=4))
    assert store.load_model(models_dir, "m").meta["seed"] == 4
