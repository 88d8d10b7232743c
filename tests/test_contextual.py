"""Contextual encoders: MiniLM context sensitivity, word-piece pooling against the raw
model, static pooling against a naive loop, WordSim353, storage, lookup API, CLI."""
from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from embeddings import store
from wordspace.cli import main
from embeddings.corpus import prepare_corpus, tokenize
from embeddings.datasets import benchmark_path
from embeddings.encoders import MINILM, HFEncoder, set_torch_threads
from embeddings.in_context import ContextualModel, WordNotInText, embed_in_context, is_contextual, load_contextual
from embeddings.pooling import build_contextual_model, make_windows, pool_static, save_contextual, select_windows
from embeddings.vectors import Embeddings
from tests.helpers import to_keyed_vectors

SENSES = {
    "bank": (["we sat on the river bank", "the boat drifted toward the muddy bank of the stream"],
             ["she deposited money at the bank", "the bank approved his loan application"]),
    "bat": (["a bat flew out of the dark cave", "the bat hunts insects at night"],
            ["he swung the baseball bat hard", "the cricket player picked up his bat"]),
    "spring": (["flowers bloom in the spring", "the days grow longer every spring after winter"],
               ["the mattress has a broken spring", "the metal spring in the pen snapped"]),
    "plant": (["water the plant in the pot on the windowsill", "this plant needs more sunlight to grow"],
              ["the power plant produces electricity", "workers at the car plant went on strike"]),
}


@pytest.fixture(scope="module")
def minilm():
    before = torch.get_num_threads()
    set_torch_threads()
    yield HFEncoder(MINILM, source=MINILM)
    torch.set_num_threads(before)


@pytest.fixture
def minilm_fp32(minilm):
    """The shared encoder switched to float32 for exact comparisons."""
    before = minilm.precision
    minilm.precision = "fp32"
    yield minilm
    minilm.precision = before


@pytest.fixture(scope="module")
def model(minilm) -> ContextualModel:
    return ContextualModel(minilm)


@pytest.fixture(scope="module")
def pooled(minilm, sample_corpus) -> Embeddings:
    """MiniLM static vectors from a 150k-word budget of the sample corpus (shared: ~25 s)."""
    return build_contextual_model(minilm, sample_corpus, min_count=5, max_tokens=150_000, seed=0)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    lines = [s for pair in SENSES.values() for sense in pair for s in sense]
    lines += ["the unbelievably photosynthesizing plant grew near the riverbank"] * 3
    (root / "small.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prepare_corpus(root / "small.txt", root / "prepared")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("word", sorted(SENSES))
def test_minilm_vectors_depend_on_the_sense(model, word):
    static = Embeddings(["x"], np.ones((1, model.dim)))
    senses = [[np.asarray(embed_in_context(model, static, s, word)["vector"]) for s in sense]
              for sense in SENSES[word]]
    same = np.mean([_cos(*senses[0]), _cos(*senses[1])])
    cross = np.mean([_cos(a, b) for a in senses[0] for b in senses[1]])
    assert same > cross, (word, same, cross)


def test_word_pieces_are_mean_pooled_like_the_raw_model(minilm_fp32):
    minilm = minilm_fp32
    from transformers import AutoModel, AutoTokenizer

    words = tokenize("the unbelievably photosynthesizing plant grew near the riverbank")
    ours = minilm.encode_words([words]).numpy()
    tok = AutoTokenizer.from_pretrained(minilm.path, local_files_only=True)
    raw = AutoModel.from_pretrained(minilm.path, local_files_only=True).eval()
    enc = tok(" ".join(words), return_tensors="pt")
    with torch.inference_mode():
        hidden = raw(**enc).last_hidden_state[0].numpy()
    pieces = [tok.tokenize(w) for w in words]
    assert max(len(p) for p in pieces) > 2  # the test covers multi-piece words
    position = 1  # after [CLS]
    for i, word_pieces in enumerate(pieces):
        expected = hidden[position : position + len(word_pieces)].mean(axis=0)
        np.testing.assert_allclose(ours[i], expected, atol=2e-4)
        position += len(word_pieces)


def test_padded_batches_equal_one_at_a_time(minilm_fp32):
    minilm = minilm_fp32
    batch = [tokenize(s) for s in ("a", "she deposited money at the bank", "the bat hunts insects at night x y")]
    together = minilm.encode_words(batch, layers="last4").numpy()
    alone = np.vstack([minilm.encode_words([s], layers="last4").numpy() for s in batch])
    np.testing.assert_allclose(together, alone, atol=2e-4)


def test_bf16_is_close_to_fp32(minilm):
    words = tokenize("the power plant produces electricity for the whole valley")
    before = minilm.precision
    try:
        minilm.precision = "fp32"
        exact = minilm.encode_words([words]).numpy()
        minilm.precision = "bf16"
        fast = minilm.encode_words([words]).numpy()
        minilm.precision = "fp32"
        again = minilm.encode_words([words]).numpy()
    finally:
        minilm.precision = before
    assert min(_cos(a, b) for a, b in zip(exact, fast)) > 0.995
    assert not np.array_equal(exact, fast)  # bf16 really ran
    np.testing.assert_array_equal(again, exact)  # the float32 weights were not cast in place


def test_pooling_equals_a_naive_loop(minilm_fp32, small_corpus):
    minilm = minilm_fp32
    vocab = small_corpus.vocabulary()
    result = pool_static(minilm, small_corpus, vocab, max_contexts=2, seed=3, window=8, batch_tokens=64)
    # The naive reference: the same windows, one at a time, a dict of lists per word.
    index = {w: i for i, w in enumerate(vocab.words)}
    windows = list(make_windows(small_corpus.sentences(), minilm, 8))
    chosen = select_windows(windows, index, 2, None, 3)
    occurrences: dict[str, list[np.ndarray]] = {}
    for window in chosen:
        vectors = minilm.encode_words([window.words]).numpy()
        for word, target, vector in zip(window.words, window.targets, vectors):
            if target >= 0:
                occurrences.setdefault(word, []).append(vector)
    assert result.words == [w for w in vocab.words if w in occurrences]
    assert result.contexts.max() <= 2
    assert result.contexts.tolist() == [len(occurrences[w]) for w in result.words]
    expected = np.vstack([np.mean(occurrences[w], axis=0) for w in result.words])
    np.testing.assert_allclose(result.vectors, expected, atol=2e-4)
    # Deterministic for a seed.
    again = pool_static(minilm, small_corpus, vocab, max_contexts=2, seed=3, window=8, batch_tokens=64)
    np.testing.assert_array_equal(again.vectors, result.vectors)


def test_pooled_minilm_wordsim353(pooled):
    stats = pooled.meta["contextual"]["stats"]
    assert 150_000 <= stats["tokens_encoded"] < 150_000 + 130
    assert stats["words_pooled"] == len(pooled) > 5000
    kv = to_keyed_vectors(pooled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gensim logs OOV pairs; the ratio is checked below
        _pearson, spearman, oov = kv.evaluate_word_pairs(str(benchmark_path("ws353")))
    assert oov < 40
    assert spearman.statistic >= 0.65


def test_save_and_load_round_trip(pooled, minilm, models_dir):
    path = save_contextual(models_dir, "ctx", pooled, minilm)
    meta = store.read_meta(path)
    assert is_contextual(meta) and not is_contextual({"method": "svd"})
    assert meta["contextual"]["encoder"]["kind"] == "hf"
    assert "encoder/model.safetensors" in meta["files"]
    loaded = store.load_model(models_dir, "ctx")
    np.testing.assert_array_equal(loaded.vectors, pooled.vectors)
    ctx = load_contextual(path)
    text = "the bank approved his loan application"
    a = embed_in_context(ctx, loaded, text, "bank", k=5)
    b = embed_in_context(ContextualModel(minilm), pooled, text, "bank", k=5)
    np.testing.assert_allclose(a["vector"], b["vector"], atol=1e-5)
    assert [n["word"] for n in a["neighbors"]] == [n["word"] for n in b["neighbors"]]
    # A corrupted encoder file is reported, naming the file.
    weights = path.resolve() / "encoder" / "config.json"
    weights.write_text(weights.read_text().replace("384", "385"))
    with pytest.raises(store.ModelError, match="config.json"):
        load_contextual(path)


def test_embed_in_context_neighbours_match_gensim(model, pooled):
    result = embed_in_context(model, pooled, "She deposited money at the Bank, didn't she?", "Bank", k=8)
    json.dumps(result)  # JSON-serializable
    assert [t["token"] for t in result["tokens"]] == tokenize("She deposited money at the Bank, didn't she?")
    assert result["word"] == "bank" and result["occurrences"] == [5] and not result["truncated"]
    assert len(result["vector"]) == model.dim == len(result["tokens"][0]["vector"])
    reference = to_keyed_vectors(pooled).similar_by_vector(np.asarray(result["vector"], dtype=np.float32), topn=9)
    reference = [(w, s) for w, s in reference if w != "bank"][:8]
    assert [n["word"] for n in result["neighbors"]] == [w for w, _ in reference]
    np.testing.assert_allclose([n["score"] for n in result["neighbors"]], [s for _, s in reference], atol=1e-5)
    expected = _cos(np.asarray(result["vector"]), pooled.vector("bank"))
    assert result["static_similarity"] == pytest.approx(expected, abs=1e-5)
    assert result["static_similarity"] > 0.5
    # A word of the text that the static vocabulary lacks: no static similarity, still neighbours.
    rare = embed_in_context(model, pooled, "the zzyzxq was here", "zzyzxq", k=3)
    assert rare["static_similarity"] is None and len(rare["neighbors"]) == 3


def test_embed_in_context_bad_input(model, pooled):
    for text, word in [("", None), ("the river bank", "")]:
        with pytest.raises(ValueError, match="empty"):
            embed_in_context(model, pooled, text, word)
    # A word that is not one token of the text: a KeyError (the REST API's 404 word_not_found).
    for text, word, message in [("the river bank", "money", "does not occur"),
                                ("the river bank", "river bank", "single token"),
                                ("the river bank", "  ", "single token"), ("?!", "bank", "does not occur")]:
        with pytest.raises(WordNotInText, match=message):
            embed_in_context(model, pooled, text, word)
    # A text without words has no tokens (not an error: nothing in it to look up).
    for text in ("   ", "?!"):
        result = embed_in_context(model, pooled, text)
        assert result["tokens"] == [] and result["n_tokens"] == result["n_encoded"] == 0
    for k in (0, -1, True, 1.5, "3"):
        with pytest.raises(ValueError, match="k must be"):
            embed_in_context(model, pooled, "the river bank", "bank", k=k)
    with pytest.raises(ValueError, match="dims"):
        embed_in_context(model, Embeddings(["a"], np.ones((1, 3))), "the river bank")


def test_long_text_is_truncated_with_a_flag(model, pooled):
    text = "the river " * 400 + "bank"
    result = embed_in_context(model, pooled, text)
    assert result["truncated"] and result["n_tokens"] == 801
    assert result["n_encoded"] == model.max_len - 2 == len(result["tokens"])
    with pytest.raises(WordNotInText, match="only after the first"):
        embed_in_context(model, pooled, text, "bank")
    assert not embed_in_context(model, pooled, "the river bank", "river")["truncated"]


def test_concurrent_lookups_match_sequential(model, pooled):
    texts = [s for pair in SENSES.values() for sense in pair for s in sense]
    words = [w for w, pair in SENSES.items() for sense in pair for _ in sense]
    sequential = [embed_in_context(model, pooled, t, w, k=3)["vector"] for t, w in zip(texts, words)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda tw: embed_in_context(model, pooled, *tw, k=3)["vector"],
                                 zip(texts, words)))
    np.testing.assert_allclose(parallel, sequential, atol=1e-5)


def test_cli_contextual_errors_are_one_line(tmp_path, capsys):
    common = ["--models", str(tmp_path / "m"), "--data", str(tmp_path / "d")]
    assert main(["train", "contextual", "--encoder", str(tmp_path / "nope"), "--corpus", "sample",
                 "--name", "c"] + common) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wordspace: error: encoder directory not found") and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    assert main(["train", "contextual", "--encoder", str(empty), "--corpus", "sample", "--name", "c"] + common) == 1
    err = capsys.readouterr().err.strip()
    assert "no *.safetensors" in err and "\n" not in err
    (empty / "model.safetensors").write_bytes(b"\x10\x00garbage")  # truncated/corrupt weights
    assert main(["train", "contextual", "--encoder", str(empty), "--corpus", "sample", "--name", "c"] + common) == 1
    # Loading the weights comes after the corpus is prepared: ignore that step's (cleared) progress bar.
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
             if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("wordspace: error: cannot load the encoder"), lines


def test_cli_contextual_minilm_small_corpus(small_corpus, tmp_path, capsys):
    models = tmp_path / "models"
    argv = ["train", "contextual", "--encoder", "minilm", "--corpus", str(small_corpus.directory),
            "--name", "ctx", "--min-count", "1", "--max-tokens", "40", "--threads", "2",
            "--models", str(models), "--data", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    emb = store.load_model(models, "ctx")
    info = emb.meta["contextual"]
    assert info["max_tokens"] == 40 and info["encoder"]["source"] == "minilm" and emb.dim == 384
    assert info["stats"]["words_pooled"] + info["stats"]["words_without_context"] == len(small_corpus.vocabulary())
    meta = emb.meta  # the common record: the encoder spec is a parameter, pooling is the training time
    assert meta["params"]["encoder"] == "minilm" and meta["params"]["max_tokens"] == 40
    assert meta["corpus"]["sha256"] == small_corpus.sha256 and meta["epochs"] is None
    assert meta["train_seconds"] == info["stats"]["seconds"]


def test_cli_transformer_trains_pools_and_serves_lookups(tmp_path, capsys):
    import random

    rng = random.Random(1)
    lines = [" ".join(f"w{(s + i) % 12}" for i in range(rng.randrange(6, 12)))
             for s in (rng.randrange(12) for _ in range(120))]
    raw = tmp_path / "grammar.txt"
    raw.write_text("\n".join(lines) + "\n")
    models = tmp_path / "models"
    argv = ["train", "transformer", "--corpus", str(raw), "--name", "tiny", "--d-model", "16", "--heads", "2",
            "--layers", "1", "--max-len", "16", "--epochs", "2", "--batch-size", "16", "--min-count", "1",
            "--threads", "1", "--models", str(models), "--data", str(tmp_path / "data")]
    assert main(argv) == 0, capsys.readouterr().err
    assert "held-out masked-token perplexity" in capsys.readouterr().out
    path = store.model_path(models, "tiny")
    emb = store.load_model(models, "tiny")
    assert emb.meta["method"] == "transformer" and len(emb) == 12 and emb.dim == 16
    assert len(emb.meta["training"]["history"]) == 2
    assert emb.meta["epochs"] == 2 and emb.meta["params"]["d_model"] == 16 and emb.meta["params"]["d_ff"] == 64
    assert emb.meta["train_seconds"] >= sum(h["seconds"] for h in emb.meta["training"]["history"])
    ctx = load_contextual(path)
    result = embed_in_context(ctx, emb, "w3 w4 w5 unknownword", "w4", k=3)
    assert [t["token"] for t in result["tokens"]] == ["w3", "w4", "w5", "unknownword"]
    assert len(result["neighbors"]) == 3 and result["static_similarity"] is not None
    # The finished run removed its checkpoints; the name is taken until --overwrite.
    assert not (models / ".checkpoints" / "tiny").exists()
    assert main(argv + ["--resume"]) == 1
    assert "a model named 'tiny' already exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0  # retrained from scratch: same seed, one thread, same vectors
    assert np.allclose(store.load_model(models, "tiny").vectors, emb.vectors, atol=1e-6)
