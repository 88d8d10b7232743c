"""The FAISS boundary: nearest-neighbour back ends over the L2-normalised rows of an
`Embeddings`, and their persistence as `index.faiss` inside a model directory.

Back ends share one interface, `search(queries, k) -> (scores, ids)`:

- `FaissBackend` over an exact `IndexFlatIP` (default up to `FLAT_MAX_WORDS`
  words) or an `IndexHNSWFlat` with inner product (default above that), whose
  `efSearch` is passed per call (the shared index is never mutated);
- `BruteForceBackend`: a NumPy matrix product, the test oracle.

Word queries (neighbours, analogies, odd-one-out) are answered on top of a back
end by `embeddings.query.WordIndex`.

The index is persisted as `index.faiss` inside the model directory via
`store.add_model_file` (atomic, sha256 in meta.json) and read back with
`faiss.read_index` on that verified path; nothing is ever unpickled.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import faiss
import numpy as np

from . import store
from .topk import as_queries, top_k
from .vectors import Embeddings

INDEX_FILE = "index.faiss"
#: Above this many words the default back end is HNSW instead of the exact flat index.
FLAT_MAX_WORDS = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128

class Backend(Protocol):
    """What `WordIndex` needs from a nearest-neighbour back end."""

    kind: str
    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` inner products of unit `queries` (m x d) with the unit rows."""
        ...


class BruteForceBackend:
    """Exact search by a NumPy matrix product over the unit rows (the test oracle)."""

    kind = "brute"

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit
        self.ntotal = int(unit.shape[0])
        self.dim = int(unit.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` cosines of each unit query, best first."""
        queries = as_queries(queries, self.dim)
        # (n x d) @ (d x m): matrix-vector for one query, far faster than (1 x d) @ (d x n) in OpenBLAS.
        if len(queries) == 1:
            return top_k((self.unit @ queries[0])[None, :], k)
        return top_k((self.unit @ queries.T).T, k)


class FaissBackend:
    """A FAISS inner-product index over the unit rows (flat or HNSW)."""

    def __init__(self, index: faiss.Index, ef_search: int = HNSW_EF_SEARCH) -> None:
        self.index = index
        self.kind = index_kind(index)
        self.ntotal = int(index.ntotal)
        self.dim = int(index.d)
        self.ef_search = int(ef_search)
        # One read-only SearchParametersHNSW per efSearch value, shared by every request
        # thread (creating one per call cost ~8 us of a ~60 us search; FAISS never writes it).
        self._hnsw_params: dict[int, Any] = {}

    def _params_for(self, ef: int) -> Any:
        """The shared search parameters for `ef` (at most 64 values kept; others made per call)."""
        params = self._hnsw_params.get(ef)
        if params is None:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            if len(self._hnsw_params) < 64:
                params = self._hnsw_params.setdefault(ef, params)
        return params

    def unit_view(self) -> np.ndarray:
        """The unit rows stored inside the index, as a read-only (n x d) view (no copy).

        Valid while this backend (which owns the index) is alive."""
        flat = self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)
        view = faiss.rev_swig_ptr(flat.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)
        view.flags.writeable = False
        return view

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` inner products; ids may contain -1 where FAISS found fewer."""
        queries = as_queries(queries, self.dim)
        k = min(int(k), self.ntotal)
        if k <= 0:
            return top_k(np.empty((len(queries), 0), dtype=np.float32), 0)
        if self.kind == "hnsw":
            # Per-call parameters: the shared index is never mutated while serving.
            return self.index.search(queries, k, params=self._params_for(max(self.ef_search, k)))
        return self.index.search(queries, k)


def index_kind(index: faiss.Index) -> str:
    """'flat' or 'hnsw' for the index types this module builds; ValueError otherwise."""
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexFlatIP):
        return "flat"
    raise ValueError(f"unsupported FAISS index type {type(index).__name__}")


def default_kind(n_words: int, flat_max: int = FLAT_MAX_WORDS) -> str:
    """Exact flat search for small vocabularies, HNSW above `flat_max` words."""
    return "flat" if n_words <= flat_max else "hnsw"


def build_faiss(
    emb: Embeddings,
    kind: str | None = None,
    *,
    flat_max: int = FLAT_MAX_WORDS,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
) -> faiss.Index:
    """Build a FAISS inner-product index over a contiguous float32 copy of the unit rows."""
    kind = kind or default_kind(len(emb), flat_max)
    # Normalise a private copy (as Embeddings.normalized does) without caching a second copy on `emb`.
    unit = np.array(emb.vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(unit, axis=1)
    norms[norms == 0] = 1.0
    unit /= norms[:, None]
    if kind == "flat":
        index = faiss.IndexFlatIP(emb.dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(emb.dim, int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
    else:
        raise ValueError(f"unknown index kind {kind!r}: use 'flat' or 'hnsw'")
    index.add(unit)
    return index


def save_index(models_dir: str | os.PathLike, name: str, index: faiss.Index, *,
               version: str | os.PathLike | None = None, vectors_sha256: str | None = None) -> Path:
    """Persist `index` as `index.faiss` in model `name` (atomic like a save, checksum in
    meta.json), tied to the vectors it was built from: `vectors_sha256`, by default the
    sha256 of the `vectors.npy` of `version` (the model directory the vectors were loaded
    from; default: the current one), is recorded with it. `store.ModelReplaced` if the
    model is no longer `version`."""
    model_dir = Path(version) if version is not None else store.resolve_model(models_dir, name)
    if store.resolve_model(models_dir, name) != Path(os.path.realpath(model_dir)):
        raise store.ModelReplaced(f"model {name!r} was replaced after its index was built from {model_dir}")
    if vectors_sha256 is None:
        vectors_sha256 = store.read_meta(model_dir)["files"].get(store.VECTORS_FILE, {}).get("sha256")

    def write(handle) -> None:
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))

    record = {"vectors_sha256": vectors_sha256} if vectors_sha256 else None
    return store.add_model_file(models_dir, name, INDEX_FILE, write, version=model_dir, record=record)


def read_index_file(model_dir: str | os.PathLike) -> faiss.Index:
    """Verify `index.faiss` against meta.json, then read it; `store.ModelError` if it is
    missing, unlisted, corrupt or of a type this module does not build."""
    path = store.verify_file(Path(model_dir), INDEX_FILE)
    try:
        # Memory-mapped (flat codes and the HNSW graph): worker processes share the file's
        # pages through the page cache instead of each holding a copy. Saves are atomic
        # renames, so a mapped file is never rewritten in place.
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError as exc:
        raise store.ModelError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    try:
        index_kind(index)
    except ValueError as exc:
        raise store.ModelError(f"{path}: {exc}") from None
    return index


class IndexMismatch(store.ModelError):
    """A readable index that does not belong to the model's vectors (rebuilt, not served)."""


#: Rows of a loaded index compared with the model's own unit vectors.
CHECK_ROWS = 64


def check_fits(index: faiss.Index, emb: Embeddings, path: str | os.PathLike, *,
               vectors_sha256: str | None = None, built_from: str | None = None) -> faiss.Index:
    """`IndexMismatch` unless `index` belongs to `emb`: one row per word, the same
    dimension, built from these vectors (`built_from`, the vectors' sha256 recorded with
    the index, equals `vectors_sha256` when both are known), and `CHECK_ROWS` rows spread
    over the index equal to the model's unit vectors."""
    if index.ntotal != len(emb) or index.d != emb.dim:
        raise IndexMismatch(f"{path}: index has {index.ntotal} x {index.d}, the model {len(emb)} x {emb.dim}")
    if built_from and vectors_sha256 and built_from != vectors_sha256:
        raise IndexMismatch(f"{path}: built from other vectors (vectors.npy sha256 {built_from[:12]}..., "
                            f"the model's is {vectors_sha256[:12]}...)")
    rows = np.unique(np.linspace(0, len(emb) - 1, min(len(emb), CHECK_ROWS)).round().astype(np.int64))
    stored = np.vstack([index.reconstruct(int(row)) for row in rows]).astype(np.float64)
    expected = np.asarray(emb.vectors[rows], dtype=np.float64)
    norms = np.linalg.norm(expected, axis=1)
    norms[norms == 0] = 1.0
    expected /= norms[:, None]
    wrong = np.abs(stored - expected).max(axis=1) > 1e-4
    if wrong.any():
        row = int(rows[int(np.argmax(wrong))])
        raise IndexMismatch(f"{path}: row {row} ({emb.words[row]!r}) of the index is not the model's vector "
                            f"({int(wrong.sum())} of {len(rows)} rows checked differ): it belongs to other vectors")
    return index


@dataclass
class IndexReport:
    """How an index came to be: loaded from disk or built (and why), with timings."""

    kind: str
    source: str  # "loaded" | "built" | "built (persisted)"
    seconds: float
    reason: str | None = None
    ef_search: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for GET /models."""
        out = {"kind": self.kind, "source": self.source, "seconds": round(self.seconds, 3)}
        if self.ef_search is not None:
            out["ef_search"] = self.ef_search
        if self.reason:
            out["rebuild_reason"] = self.reason
        return out


def load_or_build(
    models_dir: str | os.PathLike,
    name: str,
    emb: Embeddings,
    *,
    model_dir: str | os.PathLike | None = None,
    kind: str | None = None,
    flat_max: int = FLAT_MAX_WORDS,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    ef_search: int = HNSW_EF_SEARCH,
    persist: bool = True,
    rebuild: bool = False,
    preloaded: Callable[[], faiss.Index] | None = None,
) -> tuple[FaissBackend, IndexReport]:
    """Load model `name`'s persisted index, or build it (and persist it) when it is
    missing, unrecorded, of the wrong kind, not the index of these vectors (`check_fits`),
    or `rebuild` is set. A recorded index that fails its checksum raises
    `store.ModelError` (the model is reported failed). A build whose model was saved again
    meanwhile is served but not persisted (`save_index` refuses it).

    `preloaded()` may return the index file already read (e.g. in a thread while the
    vectors loaded) or raise `store.ModelError`; by default `read_index_file` is called."""
    want = kind or default_kind(len(emb), flat_max)
    model_dir = Path(model_dir) if model_dir is not None else store.resolve_model(models_dir, name)
    started = time.perf_counter()
    reason = "rebuild requested" if rebuild else None
    files = store.read_meta(model_dir)["files"]  # read now: the directory may be replaced during a build
    vectors_sha256 = files.get(store.VECTORS_FILE, {}).get("sha256")
    if not rebuild:
        try:
            index = check_fits((preloaded or (lambda: read_index_file(model_dir)))(), emb,
                               model_dir / INDEX_FILE, vectors_sha256=vectors_sha256,
                               built_from=files.get(INDEX_FILE, {}).get("vectors_sha256"))
            if index_kind(index) == want:
                report = IndexReport(want, "loaded", time.perf_counter() - started,
                                     ef_search=ef_search if want == "hnsw" else None)
                return FaissBackend(index, ef_search), report
            reason = f"persisted index is {index_kind(index)}, configured {want}"
        except IndexMismatch as exc:
            # Readable but of other vectors (a copied index, an interrupted swap): never serve it.
            reason = f"the persisted index does not match the vectors ({exc})"
        except store.ModelError as exc:
            if INDEX_FILE in files:
                # A recorded index that fails its checksum is corruption: report the model as
                # failed (issue 8) instead of silently serving a rebuilt one.
                raise store.ModelError(
                    f"{exc}; rebuild it with: wordspace index {name} --rebuild") from None
            # Never built, or a build killed before meta.json recorded it: build now.
            reason = None if not (model_dir / INDEX_FILE).exists() else "unrecorded index file from an interrupted build"
    index = build_faiss(emb, want, flat_max=flat_max, m=m, ef_construction=ef_construction)
    source = "built"
    if persist:
        try:
            save_index(models_dir, name, index, version=model_dir, vectors_sha256=vectors_sha256)
            source = "built (persisted)"
        except store.ModelReplaced:
            # The model was saved again during the build: this index belongs to the vectors
            # loaded before, which it serves with; it must not be recorded for the new ones.
            source = "built (not persisted: the model was replaced during the build)"
    report = IndexReport(want, source, time.perf_counter() - started, reason,
                         ef_search=ef_search if want == "hnsw" else None)
    return FaissBackend(index, ef_search), report
