"""The queue-depth log throttle: one line per interval with a count of the held-back
ones (fake clock), and a real `wordspace serve` under more concurrent requests than
threads writing waitress's warning once instead of once per queued request."""
from __future__ import annotations

import logging
import signal
import threading
import http.client

import pytest

from embeddings import store
from tests.conftest import planted_embeddings
from tests.test_workers import serving
from wordspace.log_throttle import WAITRESS_QUEUE_LOGGER, ThrottleFilter, throttle_logger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _capture(logger: logging.Logger) -> list[str]:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return lines


def test_one_record_per_interval_with_the_count_held_back():
    clock = Clock()
    logger = logging.getLogger("wordspace.test.throttle")
    lines = _capture(logger)
    logger.addFilter(ThrottleFilter(10, clock))
    for depth in range(1, 6):
        logger.warning("Task queue depth is %d", depth)
    assert lines == ["Task queue depth is 1"]
    clock.now += 9.9
    logger.warning("Task queue depth is %d", 6)
    assert len(lines) == 1
    clock.now += 0.1
    logger.warning("Task queue depth is %d", 7)
    assert lines[1] == "Task queue depth is 7 (and 5 more like it in the last 10 s)"
    clock.now += 60
    logger.warning("Task queue depth is %d", 8)
    assert lines[2] == "Task queue depth is 8"  # nothing was held back since the last one


def test_interval_must_be_positive_and_install_is_idempotent():
    with pytest.raises(ValueError, match="interval"):
        ThrottleFilter(0)
    first = throttle_logger("wordspace.test.idempotent")
    assert throttle_logger("wordspace.test.idempotent") is first
    assert logging.getLogger("wordspace.test.idempotent").filters == [first]


def test_a_busy_server_logs_the_queue_depth_once(tmp_path):
    """24 clients at once on 2 request threads: waitress would warn for most requests."""
    store.save_model(tmp_path, "p", planted_embeddings())
    with serving(tmp_path, workers=1) as (proc, port):
        errors: list[BaseException] = []

        def client() -> None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                for _ in range(15):
                    conn.request("GET", "/models/p/neighbors?word=king&k=5")
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
                conn.close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log = proc.stderr.read()
    assert not errors
    warnings = [line for line in log.splitlines() if "Task queue depth" in line]
    assert len(warnings) == 1, log[-2000:]
    assert WAITRESS_QUEUE_LOGGER in warnings[0]
