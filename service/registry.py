"""The served models: each loaded `Embeddings` with its index (and contextual encoder),
or the reason it failed. One immutable snapshot, replaced by one reference swap.

Loading never stops at a broken model: any exception while loading one model (a
corrupt or truncated file, a surprise in its meta.json, a bug) records that model as
failed with its reason, and the others serve. `reload()` builds a whole new
snapshot on the side and swaps it in; requests already holding the old
snapshot finish on it.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app

from embeddings import in_context, store
from embeddings.index import INDEX_FILE, IndexReport, load_or_build, read_index_file
from embeddings.query import WordIndex
from embeddings.vectors import Embeddings

log = logging.getLogger("wordspace.service")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to answer queries (read-only while served)."""

    name: str
    path: Path
    meta: Mapping[str, Any]
    index: WordIndex
    index_report: IndexReport
    contextual: Any = None  # a ContextualModel for contextual models, else None

    @property
    def emb(self) -> Embeddings:
        return self.index.emb


@dataclass(frozen=True)
class Snapshot:
    """What is served right now: loaded models, failures (name -> reason), names still loading."""

    models: Mapping[str, LoadedModel] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    loading: frozenset[str] = frozenset()
    configured: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """Every configured model and its index is loaded."""
        return not self.loading and not self.failed


class ModelUnavailable(Exception):
    """The model exists in the configuration but is loading or failed."""

    def __init__(self, name: str, state: str, reason: str | None = None) -> None:
        super().__init__(reason or state)
        self.name, self.state, self.reason = name, state, reason


def _timed_read(path: Path) -> tuple[Any, float]:
    started = time.perf_counter()
    index = read_index_file(path)
    return index, time.perf_counter() - started


class Registry:
    """Loads the configured models and serves immutable snapshots of them."""

    def __init__(self, models_dir: Path, names: list[str] | None, settings: Mapping[str, Any]) -> None:
        self.models_dir = Path(models_dir)
        self.names = names
        self.settings = dict(settings)
        self._snapshot = Snapshot()
        self._reload_lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot (one atomic reference read)."""
        return self._snapshot

    def get(self, name: str) -> LoadedModel:
        """The loaded model `name`; `KeyError` if unknown, `ModelUnavailable` if loading/failed."""
        snap = self._snapshot
        if name in snap.models:
            return snap.models[name]
        if name in snap.failed:
            raise ModelUnavailable(name, "failed", snap.failed[name])
        if name in snap.loading:
            raise ModelUnavailable(name, "loading")
        raise KeyError(name)

    def configured_names(self) -> list[str]:
        """The names to serve: the configured list, or every model in the directory."""
        if self.names is not None:
            return list(dict.fromkeys(self.names))
        # Names only, no link followed (as store.list_models selects them); load_one reads each
        # model, where a broken one (or a link out of the models directory) fails that model alone.
        return store.model_names(self.models_dir)

    def load_one(self, name: str) -> LoadedModel:
        """Load model `name` with its index (built and persisted when missing or corrupt)."""
        # A save may swap the link and clean the old version while it is read: retry on the new one.
        for attempt in range(3):
            resolved = self._resolve(name)
            try:
                return self._load_version(name, resolved)
            except store.ModelError:
                if attempt == 2 or self._resolve(name) == resolved:
                    raise
        raise AssertionError("unreachable")

    def _resolve(self, name: str) -> Path:
        try:
            return store.resolve_model(self.models_dir, name)
        except store.ModelNotFound:
            raise store.ModelError(f"no model named {name!r} in {self.models_dir}") from None

    def _load_version(self, name: str, resolved: Path) -> LoadedModel:
        s = self.settings
        with ThreadPoolExecutor(max_workers=4) as pool:
            emb, index_file = self._load_verified(resolved, pool)
            backend, report = load_or_build(
                self.models_dir, name, emb, model_dir=resolved, kind=s["INDEX_KIND"],
                flat_max=s["FLAT_MAX_WORDS"], m=s["HNSW_M"], ef_construction=s["HNSW_EF_CONSTRUCTION"],
                ef_search=s["HNSW_EF_SEARCH"], persist=s["PERSIST_INDEX"],
                preloaded=(lambda: index_file.result()[0]) if index_file is not None else None)
            if report.source == "loaded":
                report.seconds = index_file.result()[1]  # read in parallel with the vectors
        contextual = None
        if in_context.is_contextual(dict(emb.meta)):
            contextual = in_context.load_contextual(resolved)
        log.info("model %s: %d words x %d, index %s %s in %.2f s", name, len(emb), emb.dim,
                 report.kind, report.source, report.seconds)
        return LoadedModel(name, resolved, emb.meta, WordIndex(emb, backend), report, contextual)

    def _load_verified(self, path: Path, pool: ThreadPoolExecutor) -> tuple[Embeddings, Future | None]:
        """Load the vectors while pool threads check the files' sha256 and read the index
        file (hashlib and FAISS release the GIL). The index is only returned as a future:
        a corrupt index is rebuilt by `load_or_build`, it does not fail the model. Encoder
        files are left to `load_contextual`, which checks them itself."""
        meta = store.read_meta(path)
        index_file = pool.submit(_timed_read, path) if INDEX_FILE in meta["files"] else None
        if not self.settings["VERIFY_CHECKSUMS"]:
            return store.load_model_dir(path, verify=False, mmap=True), index_file
        skip_encoder = in_context.is_contextual(meta)
        rels = [rel for rel in meta["files"]
                if rel != INDEX_FILE and not (skip_encoder and rel.startswith("encoder/"))]
        checks = [pool.submit(store.verify_file, path, rel, meta) for rel in rels]
        emb = store.load_model_dir(path, verify=False, mmap=True)
        for check in checks:
            check.result()  # re-raises the ModelError naming the bad file
        return emb, index_file

    def reload(self) -> Snapshot:
        """Load every configured model into a new snapshot, then swap it in."""
        with self._reload_lock:
            if self.settings.get("BUILD_THREADS"):
                import faiss

                faiss.omp_set_num_threads(int(self.settings["BUILD_THREADS"]))  # this thread only
            try:
                names = self.configured_names()
            except OSError as exc:  # an unreadable models directory: nothing to serve, say why
                log.error("cannot list the models directory %s: %s", self.models_dir, exc)
                names = []
            models: dict[str, LoadedModel] = {}
            failed: dict[str, str] = {}
            # While the first load runs, report the names as loading (readyz -> 503).
            if not self._snapshot.models and not self._snapshot.failed:
                self._snapshot = Snapshot(loading=frozenset(names), configured=tuple(names))
            for name in names:
                started = time.perf_counter()
                try:
                    models[name] = self.load_one(name)
                except Exception as exc:  # noqa: BLE001 - one model's failure, whatever it is, is that model's
                    reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                    failed[name] = f"{type(exc).__name__}: {reason}"
                    # A broken file is the model's problem; anything else is also a bug: keep its traceback.
                    expected = isinstance(exc, (store.ModelError, OSError, ImportError))
                    log.error("model %s failed to load after %.2f s: %s", name, time.perf_counter() - started,
                              failed[name], exc_info=not expected)
            snapshot = Snapshot(models, failed, frozenset(), tuple(names))
            self._snapshot = snapshot
            return snapshot

    def start_background(self) -> threading.Thread:
        """Load in a daemon thread (readyz says 503 until it is done)."""
        try:
            names = self.configured_names()
        except OSError:
            names = []  # reload() reports it
        self._snapshot = Snapshot(loading=frozenset(names), configured=tuple(names))
        thread = threading.Thread(target=self.reload, name="wordspace-loader", daemon=True)
        thread.start()
        return thread


#: Where `create_app` keeps the registry: `app.extensions[EXTENSION]`.
EXTENSION = "wordspace"


def registry(app: Flask | None = None) -> Registry:
    """The model registry of `app` (default: the current app), as flaskr's `get_db`."""
    return (app or current_app).extensions[EXTENSION]
