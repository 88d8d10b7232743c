"""Dask clusters for the jobs that outgrow one machine: read a `--cluster` spec,
start or reach the cluster, and map tasks over it with progress and retries.

A spec is `local` / `local:N` (a `LocalCluster` of N worker processes on this
machine, one thread each; N defaults to the core count) or a scheduler address
`tcp://HOST:PORT` (a running cluster: `dask scheduler` + `dask worker`,
dask-jobqueue, dask-kubernetes...). `$WORDSPACE_CLUSTER` gives the spec when no
option does. Without a spec everything runs serially as before.

Dask is optional (`pip install -e '.[cluster]'` in a checkout; `make setup` installs it),
so it is imported only when a cluster is asked for. Tasks are plain functions of
this package, so every worker needs the package installed (checked when
connecting), and large inputs travel by path (shared storage), never through the
scheduler. A worker killed mid-job costs a retry: the scheduler re-runs its tasks
elsewhere (its `allowed-failures`), and `map_tasks` asks for `retries` more.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Callable, Iterator, Sequence, TypeVar

#: Environment variable holding the default cluster spec.
CLUSTER_ENV = "WORDSPACE_CLUSTER"
#: Seconds to wait for a scheduler (and its first worker) before giving up.
CONNECT_TIMEOUT_S = 10.0
#: Extra attempts per task beyond the scheduler's own re-runs after a lost worker.
TASK_RETRIES = 2
_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"(tcp|tls|ucx|inproc)://\S+")

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(ValueError):
    """A cluster that cannot be used: bad spec, unreachable scheduler, workers without the package."""


def parse_spec(spec: str) -> tuple[str, Any]:
    """("local", N) or ("address", "tcp://host:port") for a spec; `ClusterError` otherwise."""
    text = spec.strip()
    match = _LOCAL.fullmatch(text)
    if match:
        workers = int(match.group(1)) if match.group(1) else len(os.sched_getaffinity(0))
        if not 1 <= workers <= 256:
            raise ClusterError(f"--cluster {spec}: the number of local workers must be 1-256")
        return "local", workers
    if _ADDRESS.fullmatch(text):
        return "address", text
    raise ClusterError(f"--cluster {spec!r}: expected local, local:N or a scheduler address such as "
                       "tcp://HOST:8786")


def resolve_spec(spec: str | None) -> str | None:
    """The spec to use: `spec`, else `$WORDSPACE_CLUSTER`, else None (serial)."""
    if spec is not None and spec.strip():
        return spec.strip()
    env = os.environ.get(CLUSTER_ENV, "").strip()
    return env or None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError("a cluster needs Dask: pip install -e '.[cluster]' in the wordspace checkout "
                           "(dask[array] and distributed)") from None
    return distributed


def _package_importable() -> str | None:
    """Run on a worker: None if the wordspace core imports there, else the error."""
    try:
        import embeddings.cluster  # noqa: F401 - the check itself
    except Exception as exc:  # noqa: BLE001 - reported to the driver
        return f"{type(exc).__name__}: {exc}"
    return None


def check_workers(client: Any) -> None:
    """`ClusterError` naming the workers where this package does not import."""
    problems = {worker: error for worker, error in client.run(_package_importable).items() if error}
    if problems:
        listed = "; ".join(f"{worker}: {error}" for worker, error in sorted(problems.items()))
        raise ClusterError(f"the wordspace package is missing on {len(problems)} worker(s) ({listed}); "
                           "install it (pip install -e /path/to/wordspace) in every worker's environment, "
                           "the same version as here")


@contextlib.contextmanager
def connect(spec: str, timeout: float | None = None) -> Iterator[Any]:
    """A `distributed.Client` for `spec`, closed (and a local cluster stopped) at exit.

    `timeout` defaults to `CONNECT_TIMEOUT_S` (read at call time, so it can be tuned)."""
    kind, value = parse_spec(spec)
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    distributed = _import_distributed()
    if kind == "local":
        with contextlib.ExitStack() as stack:
            # The scheduler always serves HTTP; a free local port instead of the default 8787
            # (None) avoids "port in use" warnings when another cluster runs on this machine.
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=value, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                silence_logs=40))
            client = stack.enter_context(distributed.Client(cluster))
            yield client
        return
    try:
        client = distributed.Client(value, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {value} within {timeout:g} s "
                           f"({type(exc).__name__}: {exc}); is `dask scheduler` running there?") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {value} has no workers (waited {timeout:g} s); "
                               "start some with `dask worker " + value + "`") from None
        check_workers(client)
        yield client


@contextlib.contextmanager
def using(cluster: Any) -> Iterator[Any]:
    """None -> None (run serially); a spec string -> a client for it (closed at exit);
    a `distributed.Client` -> that client (left open)."""
    if cluster is None:
        yield None
    elif isinstance(cluster, str):
        with connect(cluster) as client:
            yield client
    else:
        yield cluster


def worker_count(client: Any) -> int:
    """Worker threads the cluster has now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def iter_tasks(client: Any, function: Callable[[T], R], items: Sequence[T], *,
               retries: int = TASK_RETRIES) -> Iterator[tuple[int, R]]:
    """`(index, function(items[index]))` for each task as it finishes on the cluster.

    Each result is released on the cluster once fetched, so neither the workers nor
    the caller need hold every result at once (the caller can merge as they come).
    A task whose worker died is re-run (the scheduler's re-runs plus `retries`);
    the first task error is raised as it is."""
    distributed = _import_distributed()
    futures = client.map(function, list(items), pure=False, retries=retries)
    position = {future.key: k for k, future in enumerate(futures)}
    try:
        for future in distributed.as_completed(futures):
            result = future.result()
            future.release()
            yield position[future.key], result
    finally:
        for future in futures:
            future.release()


def map_tasks(client: Any, function: Callable[[T], R], items: Sequence[T], *,
              on_done: Callable[[int, int], None] | None = None, weights: Sequence[int] | None = None,
              retries: int = TASK_RETRIES) -> list[R]:
    """`[function(item) for item in items]` on the cluster, results in order.

    After each finished task `on_done(done, total)` is called, counted in
    `weights` (e.g. bytes or tokens per item) or in tasks; a task whose worker
    died is re-run (the scheduler's re-runs plus `retries`). The first task
    error is raised as it is."""
    weights = list(weights) if weights is not None else [1] * len(items)
    total = sum(weights)
    results: list[Any] = [None] * len(items)
    done = 0
    if on_done is not None:
        on_done(0, total)
    for k, result in iter_tasks(client, function, items, retries=retries):
        results[k] = result
        done += weights[k]
        if on_done is not None:
            on_done(done, total)
    return results


def tree_reduce(client: Any, futures: Sequence[Any], combine: Callable[[Any, Any], Any], *,
                retries: int = TASK_RETRIES) -> Any:
    """The future of `combine` folded over `futures` on the workers, pairwise in a fixed binary tree.

    Submitted at once (the driver does not wait); the tree depends only on the order
    of `futures`, so float sums come out the same on every run."""
    if not futures:
        raise ValueError("nothing to reduce")
    level = list(futures)
    while len(level) > 1:
        pairs = [client.submit(combine, a, b, pure=False, retries=retries) for a, b in zip(level[::2], level[1::2])]
        level = pairs + level[len(pairs) * 2:]
    return level[0]
