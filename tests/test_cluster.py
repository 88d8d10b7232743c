"""The cluster module: specs, the environment variable, `map_tasks` on a real
LocalCluster, and the one-line errors for a bad spec or an unreachable scheduler."""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings import cluster
from embeddings.cluster import (CLUSTER_ENV, ClusterError, check_workers, connect, iter_tasks, map_tasks,
                                parse_spec, resolve_spec, using, worker_count)
from wordspace.cli import main

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """A local TCP port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("spec, expected", [
    ("local", ("local", len(os.sched_getaffinity(0)))),
    ("local:3", ("local", 3)),
    (" local:1 ", ("local", 1)),
    ("tcp://10.0.0.5:8786", ("address", "tcp://10.0.0.5:8786")),
    ("tls://scheduler.example:8786", ("address", "tls://scheduler.example:8786")),
])
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "local:0", "local:257", "local:two", "localhost:8786",
                                  "spark://host:7077", "tcp://", "8786"])
def test_a_bad_spec_is_a_cluster_error(spec):
    with pytest.raises(ClusterError, match="--cluster") as info:
        parse_spec(spec)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_resolve_spec_prefers_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    assert resolve_spec(None) is None
    assert resolve_spec("  ") is None
    assert resolve_spec(" local:2 ") == "local:2"
    monkeypatch.setenv(CLUSTER_ENV, " tcp://h:8786 ")
    assert resolve_spec(None) == "tcp://h:8786"
    assert resolve_spec("") == "tcp://h:8786"
    assert resolve_spec("local:1") == "local:1"
    monkeypatch.setenv(CLUSTER_ENV, "")
    assert resolve_spec(None) is None


def test_using_passes_none_and_clients_through():
    with using(None) as client:
        assert client is None
    marker = object()
    with using(marker) as client:
        assert client is marker


def test_map_tasks_keeps_input_order_and_reports_progress(dask_client):
    assert worker_count(dask_client) == 2
    items = list(range(40, 0, -1))
    calls = []
    assert map_tasks(dask_client, math.factorial, items, on_done=lambda d, t: calls.append((d, t))) == \
        [math.factorial(n) for n in items]
    assert calls[0] == (0, 40) and calls[-1] == (40, 40) and len(calls) == 41
    assert [d for d, _ in calls] == list(range(41))

    weighted = []
    weights = [5, 1, 3, 2]
    assert map_tasks(dask_client, abs, [-1, 2, -3, 4], weights=weights,
                     on_done=lambda d, t: weighted.append((d, t))) == [1, 2, 3, 4]
    assert weighted[0] == (0, 11) and weighted[-1] == (11, 11) and len(weighted) == 5
    assert all(a[0] < b[0] for a, b in zip(weighted, weighted[1:]))
    assert map_tasks(dask_client, abs, []) == []


def test_iter_tasks_yields_each_index_once_as_tasks_finish(dask_client):
    items = [-5, 3, -1, 0, 7]
    assert sorted(iter_tasks(dask_client, abs, items)) == [(k, abs(x)) for k, x in enumerate(items)]


def test_map_tasks_raises_the_task_error(dask_client):
    with pytest.raises(ValueError, match="math domain error"):
        map_tasks(dask_client, math.sqrt, [4.0, -1.0], retries=0)


def test_check_workers_names_the_worker_without_the_package(dask_client):
    check_workers(dask_client)  # the real workers import the package

    class Workers:
        def run(self, function):
            return {"tcp://w1:1": None, "tcp://w2:2": "ModuleNotFoundError: No module named 'embeddings'"}

    with pytest.raises(ClusterError, match=r"missing on 1 worker\(s\) \(tcp://w2:2: ModuleNotFoundError"):
        check_workers(Workers())


def test_an_unreachable_scheduler_is_one_clear_error():
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at {address} within 1 s") as info:
        with connect(address, timeout=1.0):
            pass
    assert "\n" not in str(info.value)


def test_the_cli_reports_an_unreachable_scheduler_in_one_line(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("some words\n", encoding="utf-8")
    address = f"tcp://127.0.0.1:{closed_port()}"
    # A real process (real stderr, logging included); the connect timeout shortened to 1 s.
    code = ("import sys; import embeddings.cluster as c; c.CONNECT_TIMEOUT_S = 1.0; "
            "from wordspace.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(CLUSTER_ENV, None)
    done = subprocess.run([sys.executable, "-c", code, "corpus", "prepare", str(raw), "--out",
                           str(tmp_path / "out"), "--cluster", address],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"wordspace: error: cannot reach the Dask scheduler at {address}")
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_a_bad_spec(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw.txt"
    raw.write_text("some words\n", encoding="utf-8")
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    args = ["corpus", "prepare", str(raw), "--out", str(tmp_path / "out")]
    assert main(args + ["--cluster", "locale:2"]) == 1
    assert capsys.readouterr().err == ("wordspace: error: --cluster 'locale:2': expected local, local:N or a "
                                       "scheduler address such as tcp://HOST:8786\n")
    monkeypatch.setenv(CLUSTER_ENV, "local:0")
    assert main(args) == 1
    assert capsys.readouterr().err == ("wordspace: error: --cluster local:0: the number of local workers "
                                       "must be 1-256\n")
    assert not (tmp_path / "out").exists()


def test_the_connect_timeout_is_read_when_connecting(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 0.5)
    with pytest.raises(ClusterError, match="within 0.5 s"):
        with connect(f"tcp://127.0.0.1:{closed_port()}"):
            pass


def test_the_python_api_trains_on_a_cluster_and_word2vec_says_it_stays_local(dask_client, tmp_path, capsys):
    """`wordspace.train(..., cluster=client)`: svd counts and decomposes on the cluster (recorded in
    meta); cbow prepares there but trains here, and says so."""
    import wordspace

    words = [f"w{i}" for i in range(40)]
    raw = tmp_path / "tiny.txt"
    raw.write_text("".join(" ".join(words[(j * 7 + k) % 40] for k in range(30)) + "\n" for j in range(200)))
    model = wordspace.train("svd", raw, name="tiny-svd", models_dir=tmp_path / "models", data_dir=tmp_path / "data",
                            cluster=dask_client, dim=5, min_count=1, progress=False)
    assert model.meta["cluster"]["workers"] == 2 and model.meta["cluster"]["counted_on_cluster"] is True
    assert len(model) == 40 and model.vectors.shape == (40, 5)
    wordspace.train("cbow", raw, name="tiny-cbow", models_dir=tmp_path / "models", data_dir=tmp_path / "data",
                    cluster=dask_client, vector_size=5, min_count=1, epochs=1, workers=1)
    assert "cbow trains on this machine" in capsys.readouterr().err


def test_the_readme_local_cluster_example_runs(tmp_path):
    """The README's "Scaling out" Python example, as written, in a fresh interpreter."""
    import re

    root = Path(__file__).resolve().parents[1]
    section = (root / "README.md").read_text(encoding="utf-8").split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "local:" in b]
    env = {**os.environ, "WORDSPACE_MODELS": str(tmp_path / "models"), "WORDSPACE_DATA": str(tmp_path / "data"),
           "PYTHONPATH": str(root)}
    env.pop(CLUSTER_ENV, None)
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'workers': 2" in result.stdout and "'counted_on_cluster': True" in result.stdout
