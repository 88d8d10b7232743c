"""Corpus preparation on a Dask cluster writes exactly the serial run's files
(bytes and sha256), re-uses a prepared corpus, cleans up its part files, and
survives a worker killed with SIGKILL mid-job."""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import os
import signal
import socket
from pathlib import Path

import pytest

from embeddings import distributed_corpus
from embeddings.cluster import CLUSTER_ENV, connect
from embeddings.corpus import CORPUS_FILE, INFO_FILE, VOCAB_FILE, TokenizerConfig, input_files, prepare_corpus
from embeddings.distributed_corpus import newline_cuts, plan_shards, prepare_corpus_on_cluster
from embeddings.training import as_prepared
from wordspace.cli import main

FILES = (CORPUS_FILE, VOCAB_FILE, INFO_FILE)


def assert_identical(serial: Path, cluster: Path) -> None:
    """The three output files are byte-identical and nothing else is left in `cluster`."""
    for name in FILES:
        assert (cluster / name).read_bytes() == (serial / name).read_bytes(), name
    assert sorted(p.name for p in cluster.iterdir()) == sorted(FILES)


def unreachable() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def messy_corpus(root: Path) -> Path:
    """A directory with every reading edge case: line ends, bad bytes, CJK, compression."""
    src = root / "messy"
    (src / "sub").mkdir(parents=True)
    long_line = " ".join(f"w{i}" for i in range(23)).encode()
    (src / "a.txt").write_bytes(
        b"Windows line\r\nold Mac line\rmixed\r\r\n\n"      # \r\n, lone \r, an empty line
        b"caf\xe9 na\xc3\xafve \xff\xfe bad bytes\n"       # Latin-1 byte, valid UTF-8, junk
        + "我们学习词向量。東京はカタカナ 한국어\n".encode()
        + b"cut \xe6\x88\n"                                 # a truncated CJK character at a line end
        + long_line + b"\n   \n...!!!\n"
        + b"The Cat, the DOG; don't state-of-the-art 3.14 1,000\r\n" * 40
        + b"no final newline")
    with gzip.open(src / "b.txt.gz", "wb") as handle:
        handle.write(b"Gzip line one\r\nGzip \xe9 line two\r" + long_line + b"\n" * 3)
    with bz2.open(src / "c.txt.bz2", "wb") as handle:
        handle.write("bzip2 données\n".encode() * 30)
    (src / "d0.txt").write_bytes(b"tiny\n")
    (src / "d1.txt").write_bytes(b"")
    (src / "d2.txt").write_bytes(b"also tiny\r")
    (src / "sub" / "e.txt").write_bytes(
        b"".join(f"Line {i} \u00e9t\u00e9 {'x' * (i % 7)} 中文{i}".encode() + (b"\r\n", b"\n", b"\r")[i % 3]
                 for i in range(300)))
    (src / ".hidden").write_text("never read\n")
    return src


def test_newline_cuts_fall_just_after_newlines(tmp_path):
    path = tmp_path / "f.txt"
    data = b"".join(b"x" * (i % 13) + b"\r\n" for i in range(500)) + b"tail"
    path.write_bytes(data)
    cuts = newline_cuts(path, len(data), 100)
    assert len(cuts) > 10
    assert all(data[c - 1 : c] == b"\n" for c in cuts)
    assert all(b - a > 100 for a, b in zip([0, *cuts], cuts))
    path.write_bytes(b"y" * 1000)  # one line without a newline cannot be cut
    assert newline_cuts(path, 1000, 100) == []


def test_shards_cover_the_input_in_order(tmp_path):
    src = messy_corpus(tmp_path)
    files = input_files(src)
    shards = plan_shards(files, 64)
    pieces = [piece for group, _ in shards for piece in group]
    assert [Path(p.path) for p in pieces if p.start == 0] == files  # every file, in order
    assert any(len(group) > 1 for group, _ in shards)                # small files grouped
    assert sum(1 for p in pieces if p.path.endswith("e.txt")) > 10    # a big file in ranges
    assert all(p.end is None for p in pieces if p.path.endswith((".gz", ".bz2")))
    assert sum(size for _, size in shards) == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize("config", [
    TokenizerConfig(max_sentence_tokens=5),
    TokenizerConfig(lowercase=False, cjk_chars=False, max_sentence_tokens=7),
])
def test_a_messy_directory_prepares_identically(tmp_path, dask_client, config):
    src = messy_corpus(tmp_path)
    serial = prepare_corpus(src, tmp_path / "serial", config)
    seen = []
    cluster = prepare_corpus_on_cluster(src, tmp_path / "cluster", config, dask_client,
                                        progress=lambda done, total: seen.append((done, total)),
                                        shard_bytes=64)
    assert_identical(serial.directory, cluster.directory)
    assert cluster.sha256 == serial.sha256 and cluster.input_key == serial.input_key
    assert (cluster.n_sentences, cluster.n_tokens, cluster.n_types) == \
        (serial.n_sentences, serial.n_tokens, serial.n_types)
    total = sum(f.stat().st_size for f in input_files(src))
    assert seen[-1] == (total, total) and len(seen) > 10
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_a_large_file_in_many_byte_ranges_prepares_identically(sample_corpus, sample_corpus_file, tmp_path,
                                                              dask_client):
    shards = plan_shards([Path(sample_corpus_file)], 96 << 10)
    assert len(shards) > 20
    cluster = prepare_corpus_on_cluster(sample_corpus_file, tmp_path / "cluster", TokenizerConfig(),
                                        dask_client, shard_bytes=96 << 10)
    assert_identical(sample_corpus.directory, cluster.directory)
    assert cluster == dataclasses.replace(sample_corpus, directory=cluster.directory)


def test_an_empty_corpus_is_refused_and_a_bad_file_cleans_up(tmp_path, dask_client):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n ... \r\n")
    with pytest.raises(ValueError, match="empty"):
        prepare_corpus_on_cluster(empty, tmp_path / "out", TokenizerConfig(), dask_client)
    assert not list((tmp_path / "out").glob(".parts-*"))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.txt").write_text("fine words\n")
    (broken / "b.txt.gz").write_bytes(b"this is not gzip data\n")
    with pytest.raises(OSError) as serial_error:
        prepare_corpus(broken, tmp_path / "serial")
    with pytest.raises(OSError) as cluster_error:
        prepare_corpus_on_cluster(broken, tmp_path / "out2", TokenizerConfig(), dask_client, shard_bytes=8)
    assert type(cluster_error.value) is type(serial_error.value)
    assert list((tmp_path / "out2").iterdir()) == []


def test_a_prepared_corpus_is_reused_without_touching_the_cluster(tmp_path, dask_client):
    src = messy_corpus(tmp_path)
    config = TokenizerConfig(max_sentence_tokens=5)
    first = prepare_corpus_on_cluster(src, tmp_path / "out", config, dask_client, shard_bytes=64)
    mtime = first.path.stat().st_mtime_ns
    # An unreachable scheduler proves the cluster is not contacted.
    again = prepare_corpus_on_cluster(src, tmp_path / "out", config, unreachable())
    assert again == first and again.path.stat().st_mtime_ns == mtime
    assert prepare_corpus(src, tmp_path / "out", config) == first  # the serial run re-uses it too
    (src / "d0.txt").write_bytes(b"changed words\n")
    changed = prepare_corpus_on_cluster(src, tmp_path / "out", config, dask_client, shard_bytes=64)
    assert changed.input_key != first.input_key
    assert_identical(prepare_corpus(src, tmp_path / "serial", config).directory, changed.directory)


def test_as_prepared_uses_the_cluster_for_raw_input_only(tmp_path, dask_client, monkeypatch):
    src = messy_corpus(tmp_path)
    monkeypatch.setattr(distributed_corpus, "SHARD_BYTES", 64)
    serial = as_prepared(src, tmp_path / "serial-data")
    events = []
    cluster = as_prepared(src, tmp_path / "cluster-data", progress=events.append, cluster=dask_client)
    assert_identical(serial.directory, cluster.directory)
    assert {e.stage for e in events} == {"prepare"} and events[-1].done == events[-1].total
    # Re-used: the prepared input, its directory and a PreparedCorpus never reach the cluster.
    assert as_prepared(src, tmp_path / "cluster-data", cluster=unreachable()) == cluster
    assert as_prepared(cluster.directory, cluster=unreachable()) == cluster
    assert as_prepared(cluster, cluster=unreachable()) is cluster


def test_the_cli_prepares_on_a_cluster(tmp_path, dask_client, monkeypatch, capsys):
    src = messy_corpus(tmp_path)
    monkeypatch.setattr(distributed_corpus, "SHARD_BYTES", 64)
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    common = ["corpus", "prepare", str(src), "--max-sentence-tokens", "5", "--keep-case"]
    assert main(common + ["--out", str(tmp_path / "serial")]) == 0
    address = dask_client.scheduler.address  # a running scheduler, reached over TCP
    assert main(common + ["--out", str(tmp_path / "option"), "--cluster", address]) == 0
    monkeypatch.setenv(CLUSTER_ENV, address)
    assert main(common + ["--out", str(tmp_path / "env")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and len({line.split(": ", 1)[1] for line in out}) == 1  # same counts and sha256
    assert_identical(tmp_path / "serial", tmp_path / "option")
    assert_identical(tmp_path / "serial", tmp_path / "env")


def test_a_killed_worker_costs_only_a_retry(sample_corpus, sample_corpus_file, tmp_path):
    """kill -9 of a busy worker process after the first finished shard: the scheduler re-runs
    its tasks (the nanny restarts it) and the output is still the serial run's."""
    with connect("local:2") as client:
        pids = client.run(os.getpid)  # {worker address: pid}
        killed: list[int] = []

        def kill_a_busy_worker(done: int, total: int) -> None:
            if killed or not 0 < done < total:
                return
            busy = [address for address, keys in client.processing().items() if keys and address in pids]
            pid = pids[(busy or sorted(pids))[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        result = prepare_corpus_on_cluster(sample_corpus_file, tmp_path / "out", TokenizerConfig(), client,
                                           progress=kill_a_busy_worker, shard_bytes=48 << 10)
        assert killed and killed[0] not in client.run(os.getpid).values()
    assert_identical(sample_corpus.directory, result.directory)
    assert result.sha256 == sample_corpus.sha256
