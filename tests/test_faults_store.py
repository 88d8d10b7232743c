"""Faults in the model store: kill -9 during saves, corrupt files, a full disk,
planted pickle payloads. Each test provokes the fault for real (subprocesses
killed with SIGKILL, bytes flipped on disk, RLIMIT_FSIZE) and then checks
what a loader sees (RELIABILITY.md, "Models on disk")."""
from __future__ import annotations

import inspect
import json
import os
import pickle
import random
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
from embeddings.store import ModelError
from embeddings.vectors import Embeddings

ROOT = Path(__file__).resolve().parents[1]
N_WORDS, DIM = 16_000, 48  # about 3 MiB of vectors: a save takes tens of milliseconds


def make_model(generation: int, n: int = N_WORDS, dim: int = DIM) -> Embeddings:
    """A deterministic model whose every number depends on `generation`."""
    rng = np.random.default_rng(generation)
    words = [f"g{generation}w{i}" for i in range(n)]
    counts = np.arange(n, 0, -1, dtype=np.int64)
    return Embeddings(words, rng.standard_normal((n, dim), dtype=np.float32), counts,
                      {"method": "fault-test", "generation": generation})


def write_extra_for(generation: int) -> Callable[[Path], None]:
    """Extra artefacts (an index-like file and an encoder/ directory) tied to `generation`."""
    def write(directory: Path) -> None:
        (directory / "index.faiss").write_bytes(np.full(200_000, generation % 251, np.uint8).tobytes())
        (directory / "encoder").mkdir()
        (directory / "encoder" / "config.json").write_text(json.dumps({"generation": generation}))
    return write


def check_generation(emb: Embeddings, path: Path) -> int:
    """Assert a loaded model is exactly the one its meta.json says; return its generation."""
    generation = emb.meta["generation"]
    expected = make_model(generation)
    assert emb.words == expected.words
    np.testing.assert_array_equal(emb.vectors, expected.vectors)
    config = json.loads((path / "encoder" / "config.json").read_text())
    assert config["generation"] == generation
    assert (path / "index.faiss").read_bytes()[:10] == bytes([generation % 251]) * 10
    return generation


def leftovers(models_dir: Path) -> list[str]:
    """Hidden entries no model link points at (temp dirs, orphan versions, temp links)."""
    live = {os.readlink(e) for e in models_dir.iterdir() if e.is_symlink() and not e.name.startswith(".")}
    return sorted(e.name for e in models_dir.iterdir()
                  if e.name.startswith(".") and e.name not in live and e.name != ".lock")


def stray_files_in_versions(models_dir: Path) -> list[str]:
    """Temp files left inside live model directories (e.g. by an interrupted add_model_file)."""
    stray = []
    for info in store.list_models(models_dir):
        for path in info.path.resolve().rglob(".*"):
            stray.append(str(path.relative_to(models_dir.resolve())))
    return stray


# -- kill -9 while saving ---------------------------------------------------------
SAVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from typing import Callable
    import numpy as np
    from embeddings import store
    from embeddings.vectors import Embeddings
    {helpers}
    models_dir, generation, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print("ready", flush=True)
    while True:
        store.save_model(models_dir, "m", make_model(generation), write_extra_for(generation))
        print(generation, flush=True)
        if mode == "index":
            store.add_model_file(models_dir, "m", "index.faiss",
                                 lambda h, g=generation: h.write(bytes([g % 251]) * 200_000))
            print("index", flush=True)
        generation += 1
""")


def _child_script(template: str) -> str:
    """`template` with this module's model helpers pasted in (the child does not import pytest)."""
    helpers = f"N_WORDS, DIM = {N_WORDS}, {DIM}\n" + "\n".join(
        inspect.getsource(f) for f in (make_model, write_extra_for))
    return template.replace("{helpers}", helpers)


def run_and_kill(models_dir: Path, generation: int, delay: float, mode: str, reader: bool) -> tuple[int, int]:
    """Start a saver, optionally load the model in a loop meanwhile, SIGKILL it after
    `delay` s; return (last generation the saver reported as saved, loads done)."""
    proc = subprocess.Popen([sys.executable, "-c", _child_script(SAVER), str(models_dir), str(generation), mode],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + delay
        loads = 0
        while time.monotonic() < deadline:
            if reader:
                emb = store.load_model(models_dir, "m")
                np.testing.assert_array_equal(emb.vectors, make_model(emb.meta["generation"]).vectors)
                loads += 1
            else:
                time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    saved = [int(line) for line in out.split() if line.isdigit()]
    return (saved[-1] if saved else generation - 1), loads


@pytest.mark.parametrize("mode", ["save", "index"])
def test_kill9_during_save_leaves_old_or_new_model(tmp_path, mode):
    """20 savers killed at random moments: the model always loads, verified, as the
    last completed save or the one in flight; leftovers go at the next start."""
    models_dir = tmp_path / "models"
    store.save_model(models_dir, "m", make_model(0), write_extra_for(0))
    store.save_model(models_dir, "bystander", make_model(10_000, n=50))
    rng = random.Random(8 if mode == "save" else 9)
    generation, dirty_runs = 1, 0
    runs = 20 if mode == "save" else 6
    for run in range(runs):
        delay = rng.uniform(0.0, 0.12)
        committed, _ = run_and_kill(models_dir, generation, delay, mode, reader=False)
        infos = {info.name: info for info in store.list_models(models_dir)}
        assert set(infos) == {"m", "bystander"}
        assert all(info.error is None for info in infos.values()), infos
        path = store.model_path(models_dir, "m").resolve()
        loaded = check_generation(store.load_model(models_dir, "m"), path)
        assert loaded in (committed, committed + 1), (run, loaded, committed)
        assert store.load_model(models_dir, "bystander").meta["generation"] == 10_000
        if leftovers(models_dir) or stray_files_in_versions(models_dir):
            dirty_runs += 1
        # The next start cleans up: either an explicit clean_stale or the next save.
        if run % 2:
            store.clean_stale(models_dir)
        else:
            store.save_model(models_dir, "m", make_model(loaded), write_extra_for(loaded))
        assert leftovers(models_dir) == []
        generation = max(loaded, committed) + 1
    # Some kills must have hit saves in flight, else this test proved nothing.
    assert dirty_runs >= max(1, runs // 7), f"only {dirty_runs} of {runs} kills interrupted a save"


def test_kill9_during_add_model_file_leaves_no_stray_temp_file(tmp_path):
    """An interrupted index write (add_model_file) must not leave its temp file behind
    for ever inside the live model: the next start cleans it."""
    models_dir = tmp_path / "models"
    store.save_model(models_dir, "m", make_model(0, n=100))
    path = store.model_path(models_dir, "m").resolve()
    # Exactly the state a kill inside atomic_write leaves: a half-written sibling temp file
    # (mkstemp's 8 random characters).
    (path / ".meta.json.abc123_x.tmp").write_bytes(b"\0" * 1000)
    assert store.load_model(models_dir, "m").meta["generation"] == 0
    store.clean_stale(models_dir)
    assert stray_files_in_versions(models_dir) == []


def test_clean_stale_after_kill_between_symlink_and_swap(tmp_path):
    """A kill after the new version was renamed in and its temp link created, but
    before the link swap: one clean_stale removes both leftovers."""
    models_dir = tmp_path / "models"
    store.save_model(models_dir, "m", make_model(0, n=100))
    old = os.readlink(models_dir / "m")
    # Reproduce the crash point inside store._point_at by hand.
    new_version = ".m@20260101T000000-deadbeef"
    (models_dir / new_version).mkdir()
    store.write_model_dir(models_dir / new_version, make_model(1, n=100))
    os.symlink(new_version, models_dir / ".m.link-deadbeef")
    assert store.load_model(models_dir, "m").meta["generation"] == 0
    store.clean_stale(models_dir)
    assert os.readlink(models_dir / "m") == old
    assert leftovers(models_dir) == []


def test_a_load_in_progress_survives_a_concurrent_save(tmp_path):
    """A loader that resolved the model link (and is still verifying checksums) when
    another writer saves a new version must still get a whole model: the save must
    not delete the version directory under it. Deterministic: the load verifies a
    ~50 MB model while a small save completes."""
    import threading

    models_dir = tmp_path / "models"
    store.save_model(models_dir, "m", make_model(0, n=250_000, dim=50))
    outcome: list[object] = []

    def load() -> None:
        try:
            outcome.append(store.load_model(models_dir, "m").meta["generation"])
        except ModelError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load)
    reader.start()
    time.sleep(0.02)  # the reader is now hashing vectors.npy of generation 0
    store.save_model(models_dir, "m", make_model(1, n=10, dim=50))
    reader.join()
    assert outcome in ([0], [1]), f"a load racing a save failed: {outcome[0]}"


# -- corrupt models on disk ---------------------------------------------------------
def _rewrite_checksums(path: Path) -> None:
    """Make meta.json agree with the files again (a corruption that checksums cannot see)."""
    meta = json.loads((path / "meta.json").read_text())
    for rel in meta["files"]:
        target = path / rel
        if target.is_file():
            meta["files"][rel] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    (path / "meta.json").write_text(json.dumps(meta))


def _truncate(path: Path) -> None:
    vectors = path / "vectors.npy"
    os.truncate(vectors, vectors.stat().st_size // 2)


def _flip_byte(rel: str, offset_from_end: int = 100) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        target = path / rel
        data = bytearray(target.read_bytes())
        data[-offset_from_end] ^= 0x40
        target.write_bytes(bytes(data))
    return corrupt


def _missing(rel: str) -> Callable[[Path], None]:
    return lambda path: (path / rel).unlink()


def _drop_vocab_line(path: Path) -> None:
    vocab = path / "vocab.txt"
    lines = vocab.read_text().splitlines(keepends=True)
    vocab.write_text("".join(lines[:-1]))
    _rewrite_checksums(path)


def _garbage_meta(path: Path) -> None:
    (path / "meta.json").write_bytes(b"\x00\xffnot json{{{")


def _meta_not_an_object(path: Path) -> None:
    (path / "meta.json").write_text("[1, 2, 3]")


def _vocab_not_utf8(path: Path) -> None:
    (path / "vocab.txt").write_bytes(b"\xff\xfe\t1\n" * 100)
    _rewrite_checksums(path)


def _duplicate_words(path: Path) -> None:
    (path / "vocab.txt").write_text("same\t1\n" * 100)
    _rewrite_checksums(path)


def _vectors_float64(path: Path) -> None:
    np.save(path / "vectors.npy", np.zeros((100, 8), dtype=np.float64), allow_pickle=False)
    _rewrite_checksums(path)


def _vectors_wrong_shape(path: Path) -> None:
    np.save(path / "vectors.npy", np.zeros((100, 9), dtype=np.float32), allow_pickle=False)
    _rewrite_checksums(path)


def _truncated_but_consistent(path: Path) -> None:
    _truncate(path)
    _rewrite_checksums(path)


def _corrupt_npy_header(path: Path) -> None:
    vectors = path / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[10:40] = b"{'descr': '<f4', 'fortran_ord"[:30].replace(b"descr", b"dxscr")
    vectors.write_bytes(bytes(data))
    _rewrite_checksums(path)


# (corruption, the file the error must name, detectable from meta.json/sizes alone)
CORRUPTIONS = {
    "truncated-vectors": (_truncate, "vectors.npy", True),
    "flipped-byte-vectors": (_flip_byte("vectors.npy"), "vectors.npy", False),
    "flipped-byte-vocab": (_flip_byte("vocab.txt", 3), "vocab.txt", False),
    "missing-vocab": (_missing("vocab.txt"), "vocab.txt", True),
    "missing-vectors": (_missing("vectors.npy"), "vectors.npy", True),
    "missing-meta": (_missing("meta.json"), "meta.json", True),
    "garbage-meta": (_garbage_meta, "meta.json", True),
    "meta-not-an-object": (_meta_not_an_object, "meta.json", True),
    "garbage-index": (_flip_byte("index.faiss", 5), "index.faiss", False),
    "missing-index": (_missing("index.faiss"), "index.faiss", True),
    "vocab-vector-count-mismatch": (_drop_vocab_line, "vocab.txt", False),
    "vocab-not-utf8": (_vocab_not_utf8, "vocab.txt", False),
    "duplicate-words": (_duplicate_words, "vocab.txt", False),
    "vectors-float64": (_vectors_float64, "vectors.npy", False),
    "vectors-wrong-shape": (_vectors_wrong_shape, "vectors.npy", False),
    "truncated-consistent-meta": (_truncated_but_consistent, "vectors.npy", False),
    "corrupt-npy-header": (_corrupt_npy_header, "vectors.npy", False),
}


def _small_index(directory: Path) -> None:
    (directory / "index.faiss").write_bytes(bytes(range(256)) * 8)


def corrupt_model(models_dir: Path, name: str, corruption: str) -> None:
    """Save a small model `name` and damage it the way `CORRUPTIONS[corruption]` says."""
    store.save_model(models_dir, name, make_model(5, n=100, dim=8), _small_index)
    CORRUPTIONS[corruption][0](store.model_path(models_dir, name).resolve())


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_model_raises_model_error_naming_the_file(models_dir, corruption):
    """Each damage makes load_model raise ModelError naming the damaged file; the
    healthy neighbour keeps loading."""
    store.save_model(models_dir, "good", make_model(1, n=100, dim=8))
    corrupt_model(models_dir, "bad", corruption)
    with pytest.raises(ModelError) as info:
        store.load_model(models_dir, "bad")
    assert CORRUPTIONS[corruption][1] in str(info.value)
    assert store.load_model(models_dir, "good").meta["generation"] == 1


@pytest.mark.parametrize("corruption", sorted(c for c, spec in CORRUPTIONS.items() if spec[2]))
def test_list_models_reports_corrupt_model(models_dir, corruption):
    """list_models (what `wordspace models` shows) flags a model whose files are
    missing, truncated or whose meta.json is unreadable, with the file named."""
    store.save_model(models_dir, "good", make_model(1, n=100, dim=8))
    corrupt_model(models_dir, "bad", corruption)
    infos = {info.name: info for info in store.list_models(models_dir)}
    assert set(infos) == {"good", "bad"}
    assert infos["good"].error is None
    assert infos["bad"].error is not None and CORRUPTIONS[corruption][1] in infos["bad"].error


@pytest.mark.parametrize("corruption", ["truncated-consistent-meta", "vocab-vector-count-mismatch",
                                        "vectors-float64", "corrupt-npy-header", "vocab-not-utf8",
                                        "truncated-vectors", "missing-vocab", "garbage-meta"])
def test_unverified_load_of_corrupt_model_still_raises_model_error(models_dir, corruption):
    """verify=False (fast start) skips checksums but must still fail cleanly."""
    corrupt_model(models_dir, "bad", corruption)
    with pytest.raises(ModelError, match=CORRUPTIONS[corruption][1].replace(".", r"\.")):
        store.load_model(models_dir, "bad", verify=False)


def test_wordspace_models_cli_reports_failed_model(models_dir):
    """`wordspace models` lists a broken model as failed with the reason, exit 0."""
    store.save_model(models_dir, "good", make_model(1, n=100, dim=8))
    corrupt_model(models_dir, "bad", "garbage-meta")
    result = subprocess.run([sys.executable, "-m", "wordspace.cli", "models", "--models", str(models_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "failed:" in lines["bad"] and "meta.json" in lines["bad"]
    assert lines["good"].rstrip().endswith("ok")


# -- disk full while saving --------------------------------------------------------------
FULL_DISK_SAVER = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from typing import Callable
    import numpy as np
    from embeddings import store
    from embeddings.vectors import Embeddings
    {helpers}
    models_dir, limit, n, dim, extra = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    emb = make_model(7, n=n, dim=dim)
    write_extra = (lambda d: (d / "index.faiss").write_bytes(b"x" * extra)) if extra else None
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        store.save_model(models_dir, "m", emb, write_extra)
    except OSError as exc:
        print(json.dumps({"type": type(exc).__name__, "errno": exc.errno, "message": str(exc)}))
    else:
        print(json.dumps({"type": None}))
""")


@pytest.mark.parametrize("where", ["vectors", "vocab", "extra"])
def test_disk_full_while_saving_keeps_old_model(models_dir, where):
    """A file-size limit hit while writing vectors, vocab or an extra file: the save
    raises OSError, the old model still loads verified, nothing is left behind."""
    store.save_model(models_dir, "m", make_model(0, n=200, dim=8))
    # (limit, n, dim, extra bytes): vectors of 2000x64 floats = 512 KB; vocab of 20000 words > 200 KB.
    n, dim, limit, extra = {"vectors": (2000, 64, 100_000, 0),
                            "vocab": (20_000, 1, 200_000, 0),
                            "extra": (100, 8, 100_000, 300_000)}[where]
    result = subprocess.run([sys.executable, "-c", _child_script(FULL_DISK_SAVER), str(models_dir), str(limit),
                             str(n), str(dim), str(extra)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["type"] is not None, "the save should have hit the size limit"
    emb = store.load_model(models_dir, "m")
    assert emb.meta["generation"] == 0 and len(emb) == 200
    assert leftovers(models_dir) == []
    assert [info.name for info in store.list_models(models_dir)] == ["m"]


def test_disk_full_in_cli_import_is_one_clear_line(models_dir, tmp_path):
    """`wordspace import` under a file-size limit: exit 1, one `wordspace: error:` line,
    no traceback, the old model intact."""
    store.save_model(models_dir, "m", make_model(0, n=200, dim=8))
    source = tmp_path / "vectors.txt"
    rng = np.random.default_rng(0)
    with open(source, "w") as handle:
        for i in range(3000):
            handle.write(f"word{i} " + " ".join(f"{x:.5f}" for x in rng.standard_normal(50)) + "\n")
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY)); "
            "from wordspace.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "import", str(source), "--format", "glove",
                             "--name", "m", "--overwrite", "--models", str(models_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("wordspace:")]
    assert len(errors) == 1 and errors[0] == lines[-1] and errors[0].startswith("wordspace: error:")
    # Clear: names the model being saved and the cause, whichever file hit the limit
    # (numpy's own write error, "N requested and M written", has no errno to say so).
    hints = ("file too large", "no space", "disk full", "disk is full")
    assert "'m'" in errors[0] and any(h in errors[0].lower() for h in hints), errors[0]
    assert store.load_model(models_dir, "m").meta["generation"] == 0
    assert leftovers(models_dir) == []


# -- planted pickle payloads ----------------------------------------------------------------
class Payload:
    """Unpickling this creates the sentinel file (what an attacker's code would do)."""

    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


#: Names a loader of this project might open, inside a model directory.
MODEL_FILE_NAMES = ("vectors.npy", "vocab.txt", "meta.json", "index.faiss", "cooccurrence.npz",
                    "context.npy", "vectors_context.npy", "counts.npy", "checkpoint.pt", "model.pt",
                    "encoder/pytorch_model.bin", "encoder/model.pt", "encoder/model.safetensors",
                    "encoder/config.json", "encoder/tokenizer.json", "encoder/vocab.txt",
                    "encoder/checkpoint.pt", "encoder/weights.pt")
#: Names under a model's training checkpoint directory.
CHECKPOINT_FILE_NAMES = ("checkpoint.pt", "checkpoint.npz", "state.json", "state.pt", "model.pt",
                         "optimizer.pt", "vectors.npy", "syn1neg.npy", "wv.npy", "word2vec.model",
                         "model.npz", "cooccurrence.npz", "epoch-1.pt", "epoch-1/checkpoint.pt",
                         "epoch-1/vectors.npy", "latest/checkpoint.pt", "latest/state.pt",
                         "epoch_1.npz", "meta.json", "vocab.txt")


def payload_bytes(name: str, sentinel: Path) -> bytes:
    """A file named `name` whose loading with pickle enabled runs the payload."""
    import io

    buffer = io.BytesIO()
    if name.endswith(".npy"):
        np.save(buffer, np.array([Payload(sentinel)], dtype=object), allow_pickle=True)
    elif name.endswith(".npz"):  # every member a scipy.sparse / np.load reader might open
        payload = np.array([Payload(sentinel)], dtype=object)
        np.savez(buffer, data=payload, format=payload, shape=payload, indices=payload, indptr=payload,
                 arr_0=payload)
    elif name.endswith((".pt", ".bin")):
        import torch

        torch.save({"model": Payload(sentinel), "state_dict": Payload(sentinel)}, buffer)
    else:  # protocol 0 is plain ASCII: it even passes for a text file
        pickle.dump(Payload(sentinel), buffer, protocol=0)
    return buffer.getvalue()


def plant_payloads(directory: Path, names: tuple[str, ...], sentinel: Path) -> None:
    """Write a payload under every name in `directory`."""
    for name in names:
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload_bytes(name, sentinel))


def plant_evil_model(models_dir: Path, name: str, sentinel: Path, listed: bool = True) -> Path:
    """A model directory made only of payloads; with `listed`, meta.json is valid and
    records their checksums, so checksum verification passes and parsing is reached."""
    directory = models_dir / name
    directory.mkdir(parents=True)
    plant_payloads(directory, MODEL_FILE_NAMES, sentinel)
    if listed:
        files = {p.relative_to(directory).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "meta.json"}
        meta = {"format_version": 1, "method": "word2vec", "vocab_size": 1, "dim": 1,
                "has_counts": True, "files": files}
        (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def test_payloads_are_live_when_unpickled(tmp_path):
    """Control: the planted files do run code when loaded with pickle enabled (so the
    tests below would notice a loader that unpickles). One subprocess for all kinds."""
    loaders = {
        "vectors.npy": "np.load(p, allow_pickle=True)",
        "cooccurrence.npz": "np.load(p, allow_pickle=True)['format']",
        "checkpoint.pt": "torch.load(p, weights_only=False)",
        "meta.json": "pickle.load(open(p, 'rb'))",
    }
    lines = ["import pickle, numpy as np, torch"]
    for name, load in loaders.items():
        path = tmp_path / name
        path.write_bytes(payload_bytes(name, tmp_path / f"pwned-{name}"))
        lines.append(f"p = {str(path)!r}; {load}")
    subprocess.run([sys.executable, "-c", "\n".join(lines)], check=True, cwd=ROOT, timeout=120)
    assert sorted(p.name for p in tmp_path.glob("pwned-*")) == sorted(f"pwned-{n}" for n in loaders)


@pytest.mark.parametrize("listed", [True, False])
def test_store_loaders_never_unpickle_planted_payloads(models_dir, tmp_path, listed):
    """load_model, list_models, read_meta, verify_file and `wordspace models` on a
    model made of pickle payloads: errors, and no payload ever runs."""
    sentinel = tmp_path / "pwned"
    store.save_model(models_dir, "good", make_model(1, n=100, dim=8))
    evil = plant_evil_model(models_dir, "evil", sentinel, listed)
    with pytest.raises(ModelError):
        store.load_model(models_dir, "evil")
    with pytest.raises(ModelError):
        store.load_model(models_dir, "evil", verify=False, mmap=False)
    infos = {info.name: info for info in store.list_models(models_dir)}
    assert infos["good"].error is None
    if listed:
        for rel in json.loads((evil / "meta.json").read_text())["files"]:
            store.verify_file(evil, rel)
    subprocess.run([sys.executable, "-m", "wordspace.cli", "models", "--models", str(models_dir)],
                   capture_output=True, cwd=ROOT, timeout=60)
    assert not sentinel.exists()
