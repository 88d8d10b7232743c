"""Heavier fault runs than `make test` affords: schemathesis with more cases per
operation, many kill -9 during saves and
index writes, kill -9 during a FAISS index build then a server restart, several
kills in a row during training then --resume, and a genuinely full disk (a
small tmpfs, when this process may mount one). Counts runs, clean recoveries
and models lost.

    .venv/bin/python benchmarks/bench_faults.py [--fuzz-examples 500] [--save-runs 100] [--index-runs 8]
                                                [--train-kills 4]

Prints a markdown table. Exit status 1 if any run did not recover cleanly.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import store  # noqa: E402
from embeddings.vectors import Embeddings  # noqa: E402
from tests import test_faults_store as fs  # noqa: E402
from tests import test_faults_training as ft  # noqa: E402

Row = tuple[str, int, int, int, str]  # fault, runs, clean recoveries, models lost, notes


def save_kills(runs: int, mode: str, seed: int) -> Row:
    """Savers (or savers + index writers) killed at random moments; after each kill the
    model must load verified as the last saved or the in-flight generation."""
    clean = lost = dirty = 0
    notes: list[str] = []
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        store.save_model(models, "m", fs.make_model(0), fs.write_extra_for(0))
        generation = 1
        for _ in range(runs):
            committed, _ = fs.run_and_kill(models, generation, rng.uniform(0.0, 0.15), mode, reader=False)
            try:
                path = store.model_path(models, "m").resolve()
                loaded = fs.check_generation(store.load_model(models, "m"), path)
                ok = loaded in (committed, committed + 1)
                dirty += bool(fs.leftovers(models) or fs.stray_files_in_versions(models))
                store.clean_stale(models)
                ok = ok and fs.leftovers(models) == []
            except (store.ModelError, KeyError, AssertionError) as exc:
                ok, loaded = False, committed
                lost += 1
                notes.append(str(exc)[:120])
            clean += ok
            generation = max(loaded, committed) + 1
        stray = len(fs.stray_files_in_versions(models))
    label = "kill -9 during save" + (" + add_model_file(index.faiss)" if mode == "index" else "")
    note = f"{dirty} kills interrupted a write in flight"
    if stray:
        note += f"; {stray} temp file(s) of add_model_file left inside the live model (never cleaned)"
    return (label, runs, clean, lost, "; ".join([note, *notes[:2]]))


def loads_during_saves(seconds: float) -> Row:
    """A loader in a loop while another process saves in a loop: loads that failed."""
    failures = loads = 0
    first = ""
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        store.save_model(models, "m", fs.make_model(0), fs.write_extra_for(0))
        proc = subprocess.Popen([sys.executable, "-c", fs._child_script(fs.SAVER), str(models), "1", "save"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            proc.stdout.readline()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                loads += 1
                try:
                    store.load_model(models, "m")
                except store.ModelError as exc:
                    failures += 1
                    first = first or str(exc).rsplit("/", 1)[-1]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        lost = 0 if store.load_model(models, "m") is not None else 1
    return ("load while another process saves (reader race)", loads, loads - failures, lost,
            f"{failures} loads failed" + (f", e.g. '{first}'" if first else ""))


def index_build_kills(runs: int, seed: int) -> Row:
    """`wordspace index --kind hnsw` killed during the build, then a server start on the
    same directory: it must become ready with a verified model."""
    from tests.test_bad_requests import request, running_server

    rng = random.Random(seed)
    clean = lost = interrupted = 0
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        gen = np.random.default_rng(0)
        n = 60_000
        store.save_model(models, "big", Embeddings([f"w{i}" for i in range(n)],
                                                   gen.standard_normal((n, 50)).astype(np.float32)))
        for _ in range(runs):
            proc = subprocess.Popen([sys.executable, "-m", "wordspace.cli", "index", "big", "--kind", "hnsw",
                                     "--rebuild", "--models", str(models)], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5, 6.0))
            proc.send_signal(signal.SIGKILL)
            interrupted += proc.wait() == -signal.SIGKILL
            try:
                store.load_model(models, "big")  # verified, index.faiss included if listed
                with running_server(models, threads=2, env={"WORDSPACE_FLAT_MAX_WORDS": "1000"}) as (host, port):
                    status, body = request(host, port, "GET", "/readyz")
                    ok = status == 200
                    if ok:
                        status, body = request(host, port, "GET", "/models/big/neighbors?word=w1&k=5")
                        ok = status == 200 and len(body["neighbors"]) == 5
                    else:
                        notes.append(str(body)[:120])
                clean += ok
            except (store.ModelError, KeyError, AssertionError) as exc:
                lost += 1
                notes.append(str(exc)[:120])
    return ("kill -9 during HNSW index build, then server start", runs, clean, lost,
            "; ".join([f"{interrupted} builds killed before they finished", *notes[:2]]))


def training_kills(family: str, kills: int, tmp: Path) -> Row:
    """`kills` kills in a row at random moments, then --resume: equal to an uninterrupted run."""
    from wordspace.cli import main
    from embeddings.training import checkpoint_dir

    trainer = ft.TRAINERS[family]
    corpus = {"svd_corpus": lambda: ft.zipf_corpus(tmp / "svd", 1500, 4000, exponent=0.9),
              "micro_corpus": lambda: ft.zipf_corpus(tmp / "micro", 200, 500),
              "tiny_corpus": lambda: ft.zipf_corpus(tmp / "tiny", 300, 1200)}[trainer.corpus]()
    models = tmp / f"models-{family}"

    def cli(args: list[str]) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
        return code, err.getvalue()

    rng = random.Random(family)
    code, _ = cli(ft._args(trainer, corpus, tmp / f"reference-{family}", "reference"))
    ckpt = checkpoint_dir(models, "killed")
    args = ft._args(trainer, corpus, models, "killed")
    resumed_right = 0
    expected = None
    runs = kills if trainer.kills > 1 else 1
    for attempt in range(runs):
        try:
            err = ft._run_and_kill(args + (["--resume"] if attempt else []), ckpt, trainer, rng)
        except AssertionError:
            break  # the run finished before the kill: nothing more to interrupt
        if attempt:
            resumed_right += ft._resumed_from(trainer, err) == expected
        expected = max(trainer.completed(ckpt))
    code, err = cli(args + ["--resume"])
    resumed_right += code == 0 and ft._resumed_from(trainer, err) == expected
    same = code == 0 and np.array_equal(store.load_model(models, "killed").vectors,
                                        store.load_model(tmp / f"reference-{family}", "reference").vectors)
    lost = 0 if store.model_path(models, "killed").exists() else 1
    kills_done = attempt + 1
    return (f"kill -9 during training ({family}), then --resume", kills_done, resumed_right if same else 0, lost,
            f"{resumed_right} of {kills_done} resumes started at the newest complete checkpoint; "
            f"final model {'equals' if same else 'DIFFERS FROM'} an uninterrupted run")


def full_disk() -> Row:
    """A 4 MiB tmpfs: saving a bigger model fails with ENOSPC, the old model stays intact."""
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "small"
        mount.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            return ("disk full (tmpfs)", 0, 0, 0, f"not run: cannot mount a tmpfs ({result.stderr.strip()[:80]})")
        try:
            models = mount / "models"
            store.save_model(models, "m", fs.make_model(0, n=2000, dim=50))
            error = ""
            try:
                store.save_model(models, "m", fs.make_model(1, n=40_000, dim=50))
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            cli = subprocess.run([sys.executable, "-c", "import sys; from wordspace.cli import main; "
                                  "sys.exit(main(sys.argv[1:]))", "import", "glove-6b-50d", "--name", "m",
                                  "--models", str(models)], capture_output=True, text=True, cwd=ROOT)
            last = cli.stderr.strip().splitlines()[-1] if cli.stderr.strip() else ""
            intact = store.load_model(models, "m").meta["generation"] == 0
            clean = bool(error) and intact and fs.leftovers(models) == [] and cli.returncode == 1 \
                and "Traceback" not in cli.stderr
            return ("disk full while saving (4 MiB tmpfs)", 2, 2 if clean else 0, 0 if intact else 1,
                    f"save_model: {error[:90]}; CLI: {last[:90]}")
        finally:
            subprocess.run(["umount", str(mount)], capture_output=True)


def fuzz_table(examples: int) -> tuple[list[str], int]:
    """Schemathesis on every operation (as tests/test_fuzz_api.py, with more cases);
    markdown rows and the number of failed checks."""
    import schemathesis
    from schemathesis import GenerationMode

    from service.app import create_app
    from tests import test_fuzz_api as fz

    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"MODELS_DIR": fz.build_models_dir(Path(tmp)), "TESTING": True})
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
        for label in fz.operation_labels():
            modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if fz.has_inputs(label) \
                else [GenerationMode.POSITIVE]
            stats = [fz.fuzz_operation(schema, label, mode, examples) for mode in modes]
            statuses = sum((s.statuses for s in stats), Counter())
            failed = sum(len(s.failures) for s in stats)
            failures += failed
            cases = " + ".join(str(s.cases) for s in stats)
            seen = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
            rows.append(f"| `{label}` | {cases} | {seen} | {failed} |")
    return rows, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=500,
                        help="schemathesis cases per operation and mode (0: skip the fuzz table)")
    parser.add_argument("--save-runs", type=int, default=100)
    parser.add_argument("--index-runs", type=int, default=8)
    parser.add_argument("--train-kills", type=int, default=4)
    parser.add_argument("--reader-seconds", type=float, default=10.0)
    args = parser.parse_args()

    started = time.perf_counter()
    rows: list[Row] = [save_kills(args.save_runs, "save", 1), save_kills(args.save_runs // 2, "index", 2),
                       loads_during_saves(args.reader_seconds), index_build_kills(args.index_runs, 3)]
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("skipgram", "svd", "transformer"):
            rows.append(training_kills(family, args.train_kills, Path(tmp)))
    rows.append(full_disk())

    fuzz_rows, fuzz_failures = fuzz_table(args.fuzz_examples) if args.fuzz_examples else ([], 0)

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if fuzz_rows:
        print(f"\n### Schemathesis, every operation, positive + negative cases ({when})\n")
        print("| operation | cases (positive + negative) | statuses | failed checks |\n| --- | ---: | --- | ---: |")
        print("\n".join(fuzz_rows))
    print(f"\n### Faults ({when}, {os.cpu_count()} cores, {time.perf_counter() - started:.0f} s)\n")
    print("| fault | runs | clean recoveries | models lost | notes |\n| --- | ---: | ---: | ---: | --- |")
    failed = fuzz_failures > 0
    for fault, runs, clean, lost, notes in rows:
        print(f"| {fault} | {runs} | {clean} | {lost} | {notes} |")
        failed |= clean != runs or lost != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
