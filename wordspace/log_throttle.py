"""A logging filter that lets one record through per interval and counts the rest.

waitress warns "Task queue depth is N" on every request that finds no idle thread: under
a steady load that is hundreds of lines a second (measured: ~460/s at 1,400 requests/s),
a flooded log and a few percent of the server's CPU spent formatting and writing them.
The first warning still shows at once; later ones are summarised once per interval.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

#: waitress's logger for the queue-depth warning.
WAITRESS_QUEUE_LOGGER = "waitress.queue"
DEFAULT_INTERVAL_S = 30.0


class ThrottleFilter(logging.Filter):
    """Pass the first record, then at most one per `interval` seconds; a passed record
    says how many were held back since the previous one."""

    def __init__(self, interval: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = float(interval)
        self.clock = clock
        self._next = float("-inf")
        self._held = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        with self._lock:
            if now < self._next:
                self._held += 1
                return False
            held, self._held = self._held, 0
            self._next = now + self.interval
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.interval:g} s)"
        return True


def throttle_logger(name: str = WAITRESS_QUEUE_LOGGER, interval: float = DEFAULT_INTERVAL_S) -> ThrottleFilter:
    """Install a `ThrottleFilter` on logger `name` (once; the installed one is returned)."""
    logger = logging.getLogger(name)
    for existing in logger.filters:
        if isinstance(existing, ThrottleFilter):
            return existing
    throttle = ThrottleFilter(interval)
    logger.addFilter(throttle)
    return throttle
