"""`wordspace serve` (the REST API under waitress, in pre-forked worker processes: see
`wordspace.serving`) and `wordspace index` (build and persist FAISS indexes ahead of serving)."""
from __future__ import annotations

import argparse
import logging
import os
import sys

import faiss
from threadpoolctl import threadpool_limits
from waitress import create_server

from embeddings import store
from embeddings.index import HNSW_EF_CONSTRUCTION, HNSW_M, INDEX_FILE, load_or_build
from embeddings.training import cpu_count
from service.app import resolve_config
from service.workers import MAX_WORKERS, WorkerBoard

from .cli_common import UserError, models_dir
from .log_throttle import throttle_logger
from .serving import Supervisor, listen_socket, models_to_build, run_worker

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_THREADS = 8
#: waitress buffers whole request bodies before the app sees them; bodies between the
#: app's limit and this many times it get the JSON 413, larger ones waitress's own 413.
WAITRESS_BODY_FACTOR = 16
#: Open connections each worker process keeps (waitress's default is 100). A connection that
#: sends its request slowly holds a slot, not a request thread; past the limit new clients
#: wait in the listen backlog, so 100 slow senders starved everyone. poll() instead of
#: select() (limited to 1,024 descriptors) lets one process hold this many; the number is
#: capped by the open-files limit. Past it, put a reverse proxy (nginx) in front: it
#: buffers whole requests before they reach waitress.
CONNECTION_LIMIT = 1000
#: Seconds an idle connection (no byte in or out) is kept; waitress's default is 120.
CHANNEL_TIMEOUT = 30


def connection_limit(wanted: int = CONNECTION_LIMIT) -> int:
    """`wanted`, or less when the soft open-files limit (minus 64 for the models' own files
    and the listening socket) is lower."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - 64))


def waitress_settings(max_body: int) -> dict[str, object]:
    """The waitress settings every worker serves with (beyond socket and threads), for
    a largest accepted request body of `max_body` bytes (see the constants above)."""
    return {"ident": "wordspace", "max_request_body_size": max_body * WAITRESS_BODY_FACTOR,
            "connection_limit": connection_limit(), "asyncore_use_poll": True,
            "channel_timeout": CHANNEL_TIMEOUT, "clear_untrusted_proxy_headers": True}


def limit_native_threads(n: int) -> None:
    """Pin BLAS (NumPy, FAISS's OpenBLAS), torch and the calling thread's OpenMP (FAISS)
    to `n` threads: request threads already use the cores, and nested native thread
    pools oversubscribe 2 cores (measured: a 400k exact search takes 6 ms on one thread,
    60 ms on two busy ones). OpenMP counts are per thread; see REQUEST_NATIVE_THREADS."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(n)
    threadpool_limits(limits=n)
    faiss.omp_set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    throttle_logger()  # waitress's "Task queue depth" warning: one line per 30 s, not one per request
    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    directory = models_dir(args)
    if not directory.is_dir():
        raise UserError(f"no models directory {directory} (train or import a model first)")
    config = {"MODELS_DIR": directory, "LOAD_IN_BACKGROUND": True,
              # Requests run one native thread each (the request threads already use the cores);
              # a missing index is built with every core by the loading thread.
              "REQUEST_NATIVE_THREADS": 1, "BUILD_THREADS": cpu_count()}
    if args.model:
        config["MODELS"] = args.model
    if args.ef_search is not None:
        config["HNSW_EF_SEARCH"] = args.ef_search
    workers = cpu_count() if args.workers is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"--workers must be in [1, {MAX_WORKERS}], got {workers}")
    try:
        resolve_config(config)  # here, not in each forked worker
    except ValueError as exc:
        raise UserError(str(exc)) from None
    limit_native_threads(1)
    try:  # the leftovers of interrupted saves go at server start (only this program's own)
        store.clean_stale(directory)
    except OSError as exc:  # e.g. a read-only models directory: serve anyway
        logging.getLogger("wordspace.service").warning("cannot clean %s: %s", directory, exc)
    try:
        sock = listen_socket(args.host, args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    board = WorkerBoard(workers)

    def make_server(app):
        return create_server(app, sockets=[sock], threads=args.threads,
                             **waitress_settings(app.config["MAX_CONTENT_LENGTH"]))

    def report_when_loaded(snap) -> None:
        if "torch" in sys.modules:  # a contextual encoder was loaded: one intra-op thread per request
            sys.modules["torch"].set_num_threads(1)
        print(f"wordspace: worker pid {os.getpid()}: {len(snap.models)} model(s) ready"
              + (f", {len(snap.failed)} failed: {', '.join(snap.failed)}" if snap.failed else ""), flush=True)

    def worker(slot: int) -> int:
        limit_native_threads(1)
        return run_worker(config, board, slot, make_server, report_when_loaded)

    # The address is always the first line (scripts read it); "ready" lines follow once loaded.
    print(f"wordspace: serving {directory} on http://{args.host}:{sock.getsockname()[1]} "
          f"({workers} worker process(es) x {args.threads} threads; /readyz turns 200 when every "
          "worker has loaded every model)", flush=True)
    try:
        return Supervisor(board, worker, leader_first=lambda: bool(models_to_build(config))).run()
    finally:
        sock.close()


def _cmd_index(args: argparse.Namespace) -> int:
    limit_native_threads(cpu_count())
    directory = models_dir(args)
    names = args.names or [info.name for info in store.list_models(directory)]
    if not names:
        print(f"no models in {directory}")
        return 0
    failures = 0
    for name in names:
        try:
            # The index itself is checked by load_or_build (and skipped with --rebuild); it is
            # recorded for the version its vectors came from (not persisted if replaced meanwhile).
            path = store.resolve_model(directory, name)
            emb = store.load_model_dir(path, skip=(INDEX_FILE,))
            _, report = load_or_build(directory, name, emb, model_dir=path, kind=args.kind,
                                      rebuild=args.rebuild, m=args.m, ef_construction=args.ef_construction)
        except (store.ModelError, KeyError) as exc:
            failures += 1
            print(f"{name}: failed: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            continue
        why = f" ({report.reason})" if report.reason else ""
        print(f"{name}: {report.kind} index {report.source} in {report.seconds:.2f} s{why}")
    return 1 if failures else 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `wordspace serve` and `wordspace index`."""
    p = subparsers.add_parser(
        "serve", parents=[common], help="serve the REST API (waitress)",
        description="Serve every model in the models directory over the REST API under waitress "
                    "(never the Flask dev server). Missing FAISS indexes are built and persisted while "
                    "/readyz answers 503; a model with a corrupt file (index.faiss included: run "
                    "'wordspace index NAME --rebuild') is reported failed while the others serve. BLAS/OpenMP run one thread per request. "
                    "SIGHUP reloads the models directory (new models appear, changed ones are "
                    "swapped in once loaded; requests in flight finish on the old ones). --workers N "
                    "pre-forks N processes on one port; SIGHUP reaches each, /readyz is 200 only when "
                    "every worker has loaded every model of the latest reload, a dead worker is replaced, "
                    "and SIGTERM/SIGINT stop them all.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"bind address (default: {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"waitress request threads per worker (default: {DEFAULT_THREADS})")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes sharing the port and the memory-mapped vectors and indexes "
                        f"(default: the core count, {cpu_count()} here)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="serve only this model (repeatable; default: all models)")
    p.add_argument("--ef-search", type=int, default=None, metavar="N",
                   help="HNSW efSearch (default: 128; higher = better recall, slower)")
    p.set_defaults(func=_cmd_serve)

    p = subparsers.add_parser(
        "index", parents=[common], help="build and persist FAISS indexes",
        description="Build index.faiss for the named models (default: all) where it is missing, "
                    "corrupt or of the wrong kind: exact flat up to 100k words, HNSW above.")
    p.add_argument("names", nargs="*", metavar="NAME", help="models to index (default: all)")
    p.add_argument("--kind", choices=("flat", "hnsw"), default=None, help="force an index kind")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a valid index exists")
    p.add_argument("--m", type=int, default=HNSW_M, help=f"HNSW M (default: {HNSW_M})")
    p.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                   help=f"HNSW efConstruction (default: {HNSW_EF_CONSTRUCTION})")
    p.set_defaults(func=_cmd_index)
