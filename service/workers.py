"""What pre-forked server workers know about each other: a `WorkerBoard` in shared
memory (one slot per worker: pid, state, the reload generation it has loaded),
written by each worker and by the supervisor, read by every worker's /readyz.

The supervisor (`wordspace.serving`) creates the board before forking, so every
worker maps the same page; `attach(app, board, slot)` makes an app one worker of
it: /readyz then answers 200 only when every slot holds a live worker that has
loaded every model of the latest reload, and every response names the answering
worker's pid in `X-Wordspace-Worker`.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response

from .registry import Snapshot

#: Where `attach` keeps (board, slot): `app.extensions[EXTENSION]`.
EXTENSION = "wordspace.workers"
WORKER_HEADER = "X-Wordspace-Worker"
MAX_WORKERS = 64

# Slot states.
EMPTY, LOADING, READY, FAILED = 0, 1, 2, 3
STATE_NAMES = {EMPTY: "not running", LOADING: "loading", READY: "ready", FAILED: "not ready"}

_HEADER = struct.Struct("<qq")  # slot count, reload generation (SIGHUPs received by the supervisor)
_SLOT = struct.Struct("<qqqq")  # pid, state, generation loaded, models loaded


@dataclass(frozen=True)
class WorkerState:
    """One slot as read from the board."""

    slot: int
    pid: int
    state: int
    generation: int
    models: int


class WorkerBoard:
    """A fixed table in an anonymous shared mapping; create it before forking.

    Each field is one aligned 8-byte word, so a reader never sees a torn value; a
    reader may see one slot's fields from two successive writes, which only delays
    readiness by one poll."""

    def __init__(self, n_workers: int) -> None:
        if not 1 <= n_workers <= MAX_WORKERS:
            raise ValueError(f"the number of workers must be in [1, {MAX_WORKERS}], got {n_workers}")
        self.n_workers = n_workers
        self._map = mmap.mmap(-1, _HEADER.size + _SLOT.size * n_workers)  # MAP_SHARED | MAP_ANONYMOUS
        _HEADER.pack_into(self._map, 0, n_workers, 0)

    @property
    def generation(self) -> int:
        """How many reloads the supervisor has asked for."""
        return _HEADER.unpack_from(self._map, 0)[1]

    def next_generation(self) -> int:
        """Ask for one more reload (supervisor only); returns the new generation."""
        generation = self.generation + 1
        _HEADER.pack_into(self._map, 0, self.n_workers, generation)
        return generation

    def write(self, slot: int, pid: int, state: int, generation: int, models: int = 0) -> None:
        _SLOT.pack_into(self._map, _HEADER.size + _SLOT.size * slot, pid, state, generation, models)

    def read(self, slot: int) -> WorkerState:
        return WorkerState(slot, *_SLOT.unpack_from(self._map, _HEADER.size + _SLOT.size * slot))

    def states(self) -> list[WorkerState]:
        return [self.read(slot) for slot in range(self.n_workers)]

    def publish(self, slot: int, snapshot: Snapshot, generation: int) -> None:
        """Record this worker's `snapshot` as loaded for reload `generation`."""
        state = LOADING if snapshot.loading else READY if snapshot.ready else FAILED
        self.write(slot, os.getpid(), state, generation, len(snapshot.models))

    def all_ready(self) -> bool:
        """Every slot holds a ready worker at the latest generation."""
        generation = self.generation
        return all(w.state == READY and w.generation >= generation for w in self.states())


def attach(app: Flask, board: WorkerBoard, slot: int) -> None:
    """Make `app` worker `slot` of `board`: /readyz consults the board, and every
    response carries the worker's pid."""
    app.extensions[EXTENSION] = (board, slot)
    pid = str(os.getpid())

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        response.headers[WORKER_HEADER] = pid
        return response


def worker_report(app: Flask, own: Snapshot) -> list[dict[str, Any]] | None:
    """Each worker's state for /readyz (None when `app` is not a pre-forked worker).
    The answering worker's own entry comes from its `own` snapshot, not the board."""
    found = app.extensions.get(EXTENSION)
    if found is None:
        return None
    board, me = found
    generation = board.generation
    rows = []
    for w in board.states():
        if w.slot == me:
            state = LOADING if own.loading else READY if own.ready else FAILED
            w = WorkerState(me, os.getpid(), state, w.generation, len(own.models))
        status = STATE_NAMES[w.state]
        if w.state == READY and w.generation < generation:
            status = "reloading"
        rows.append({"slot": w.slot, "pid": w.pid or None, "status": status, "generation": w.generation})
    return rows
