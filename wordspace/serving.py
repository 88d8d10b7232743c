"""`wordspace serve --workers N`: one listening socket, N pre-forked worker processes.

The supervisor binds the port, creates the shared `WorkerBoard`, then forks the
workers before loading anything itself (no model, no FAISS index, no native thread
pool exists in it: forking is safe). Each worker inherits the listening socket
(the kernel hands every new connection to one of the processes blocked on it),
builds its own app and loads the models itself: the vectors (`np.load(mmap_mode="r")`)
and the persisted `index.faiss` (read memory-mapped) are file pages shared by every
worker through the page cache, so N workers hold one copy.

The supervisor then only watches: SIGHUP is forwarded to every worker (each reloads
on the side and records the reload generation on the board), a worker that dies is
replaced, SIGTERM/SIGINT stop every worker (SIGKILL after a grace period), and a
worker whose supervisor dies gets SIGTERM from the kernel (no orphans). When a
configured model has no persisted index yet, worker 0 loads (builds and persists
it) first and the others follow, so the index is built once, not once per worker.
"""
from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Mapping

from embeddings import store
from embeddings.index import INDEX_FILE
from service.app import create_app, resolve_config
from service.registry import Registry, registry
from service.workers import EMPTY, LOADING, MAX_WORKERS, WorkerBoard, attach

#: Seconds a stopping worker gets to finish before SIGKILL.
STOP_GRACE_S = 10.0
#: A worker that dies younger than this is restarted after a growing delay (a crash loop
#: does not spin); an older one is replaced at once.
MIN_UPTIME_S = 5.0
MAX_RESTART_DELAY_S = 30.0
POLL_S = 0.05
_HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_PR_SET_PDEATHSIG = 1


def listen_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket that the forked workers inherit."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


def models_to_build(config: Mapping[str, Any]) -> list[str]:
    """Configured models whose index is not persisted yet (their first load builds it)."""
    settings = resolve_config(config)
    if not settings["PERSIST_INDEX"]:
        return []
    missing = []
    for name in Registry(settings["MODELS_DIR"], settings["MODELS"], settings).configured_names():
        try:
            if INDEX_FILE not in store.read_meta(store.model_path(settings["MODELS_DIR"], name).resolve())["files"]:
                missing.append(name)
        except (store.ModelError, OSError, ValueError):
            pass  # the model fails to load in the workers, which report why
    return missing


def run_worker(config: Mapping[str, Any], board: WorkerBoard, slot: int,
               make_server: Callable[[Any], Any], on_loaded: Callable[[Any], None] | None = None) -> int:
    """The body of one worker process: build the app (loading in the background), serve
    on the inherited socket until SIGTERM/SIGINT, reload on SIGHUP."""
    publish_lock = threading.Lock()
    published = [-1]
    first_generation = board.generation
    board.write(slot, os.getpid(), LOADING, first_generation)
    app = create_app({**config, "LOAD_IN_BACKGROUND": True})
    attach(app, board, slot)
    reg = registry(app)

    def publish(generation: int) -> None:
        with publish_lock:  # never record an older reload over a newer one
            if generation >= published[0]:
                board.publish(slot, reg.snapshot, generation)
                published[0] = generation

    def publish_when_loaded() -> None:
        while reg.snapshot.loading:
            time.sleep(0.02)
        gc.freeze()  # see Supervisor.run: the loaded models' objects leave the collector's scans
        if on_loaded is not None:
            on_loaded(reg.snapshot)
        publish(first_generation)

    def reload() -> None:
        generation = board.generation
        reg.reload()  # builds the new snapshot on the side, then swaps one reference
        gc.freeze()
        publish(generation)

    def reload_on_hup(_signum, _frame) -> None:
        threading.Thread(target=reload, name="wordspace-reload", daemon=True).start()

    server = make_server(app)
    signal.signal(signal.SIGHUP, reload_on_hup)
    if board.generation != first_generation:  # a SIGHUP came before the handler: it was ignored
        reload_on_hup(signal.SIGHUP, None)
    threading.Thread(target=publish_when_loaded, name="wordspace-ready", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


class Supervisor:
    """Forks `n` workers running `body(slot)` and keeps them running (see the module doc)."""

    def __init__(self, board: WorkerBoard, body: Callable[[int], int],
                 leader_first: Callable[[], bool] = lambda: False, log=sys.stderr, out=sys.stdout) -> None:
        self.board = board
        self.body = body
        self.leader_first = leader_first
        self.log, self.out = log, out
        self.pids: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> monotonic start
        self.restart_at: dict[int, float] = {}  # slot -> when to (re)start it
        self.delay: dict[int, float] = {}  # slot -> next crash-loop delay
        self.hup_waiting: set[int] = set()  # slots to signal once worker 0 reloaded
        self.hup_generation = 0
        self.stopping = False
        self.hups = 0
        self.announced = False  # every worker ready, as last printed

    # -- signals ---------------------------------------------------------------------------
    def _on_stop(self, _signum, _frame) -> None:
        self.stopping = True

    def _on_hup(self, _signum, _frame) -> None:
        self.hups += 1

    # -- workers ---------------------------------------------------------------------------
    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        # Signals wait until the child has its own handlers (not the supervisor's flags).
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, _exit_on_signal)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's own handler is set
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
                _die_with(parent)
                code = self.body(slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except KeyboardInterrupt:
                code = 0
            except BaseException:  # noqa: BLE001 - a worker reports and exits, never returns to the caller
                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        self.pids[pid] = slot
        self.started[slot] = time.monotonic()
        self.restart_at.pop(slot, None)

    def _reap(self) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.pids.pop(pid, None)
            if slot is None:
                continue
            self.board.write(slot, 0, EMPTY, 0)
            if self.stopping:
                continue
            how = (f"signal {signal.Signals(-os.waitstatus_to_exitcode(status)).name}"
                   if os.WIFSIGNALED(status) else f"exit code {os.waitstatus_to_exitcode(status)}")
            lived = time.monotonic() - self.started.get(slot, 0.0)
            delay = 0.0
            if lived < MIN_UPTIME_S:
                delay = self.delay.get(slot, 0.5)
                self.delay[slot] = min(2 * delay, MAX_RESTART_DELAY_S)
            else:
                self.delay.pop(slot, None)
            print(f"wordspace: worker {slot} (pid {pid}) ended ({how}) after {lived:.1f} s; "
                  f"starting a new one{f' in {delay:.1f} s' if delay else ''}", file=self.log, flush=True)
            self.restart_at[slot] = time.monotonic() + delay

    def _slot_pid(self, slot: int) -> int | None:
        return next((pid for pid, s in self.pids.items() if s == slot), None)

    def _signal(self, slots, signum: int) -> None:
        for slot in slots:
            pid = self._slot_pid(slot)
            if pid is not None:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass

    def _forward_hups(self) -> None:
        if self.hups:
            self.hups = 0
            self.hup_generation = self.board.next_generation()  # before the signal: workers read it
            everyone = range(self.board.n_workers)
            if self.board.n_workers > 1 and self.leader_first():
                self._signal([0], signal.SIGHUP)
                self.hup_waiting = set(everyone) - {0}
            else:
                self._signal(everyone, signal.SIGHUP)
                self.hup_waiting = set()
        if self.hup_waiting:
            leader = self.board.read(0)
            if leader.pid and leader.state != LOADING and leader.generation >= self.hup_generation:
                self._signal(sorted(self.hup_waiting), signal.SIGHUP)
                self.hup_waiting = set()

    def _start_due(self, leader_pending: bool) -> None:
        now = time.monotonic()
        for slot in sorted(self.restart_at):
            if self.restart_at[slot] <= now and not (leader_pending and slot != 0):
                self._spawn(slot)

    def _announce(self) -> None:
        """Print a line each time every worker becomes ready (start, reload, replacement)."""
        ready = self.board.all_ready()
        if ready and not self.announced:
            generation = self.board.generation
            pids = ", ".join(str(w.pid) for w in self.board.states())
            what = "ready" if generation == 0 else f"ready (reload {generation})"
            print(f"wordspace: all {self.board.n_workers} worker(s) {what} (pids {pids})", file=self.out, flush=True)
        self.announced = ready

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Fork the workers and supervise them until SIGTERM/SIGINT; returns the exit code."""
        handlers = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, self._on_stop), (signal.SIGINT, self._on_stop), (signal.SIGHUP, self._on_hup))}
        try:
            # Worker 0 first when it has an index to build; the others once it is loaded.
            leader_pending = self.board.n_workers > 1 and self.leader_first()
            # The imported modules' ~240k objects go to the permanent generation: a full
            # collection in a worker scans only what requests allocate (100 ms with the GIL
            # held otherwise, a p99 spike), and never writes to the pages shared after fork.
            gc.freeze()
            for slot in range(self.board.n_workers):
                self.restart_at[slot] = 0.0
            while not self.stopping:
                self._reap()
                if leader_pending:
                    leader = self.board.read(0)
                    leader_pending = not (leader.pid and leader.state != LOADING)
                self._start_due(leader_pending)
                self._forward_hups()
                self._announce()
                time.sleep(POLL_S)
            return 0
        finally:
            self._stop()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _stop(self) -> None:
        self.stopping = True
        self._signal(range(self.board.n_workers), signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.pids and time.monotonic() < deadline:
            self._reap()
            time.sleep(POLL_S)
        for pid in list(self.pids):
            print(f"wordspace: worker pid {pid} did not stop within {STOP_GRACE_S:.0f} s; killing it",
                  file=self.log, flush=True)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pids.pop(pid, None)


def _exit_on_signal(_signum, _frame) -> None:
    raise SystemExit(0)


def _die_with(parent: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux), and exit if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:
        raise SystemExit(0)


__all__ = ["MAX_WORKERS", "Supervisor", "WorkerBoard", "listen_socket", "models_to_build", "run_worker"]
