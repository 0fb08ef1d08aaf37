"""Per-address limits on the forms anyone can post (login and appointment requests).

A sliding window in memory: at most ``limit`` posts per ``seconds`` from one client address. It keeps spam
out of the clinicians' inbox and slows password guessing across accounts (each account also locks itself
after repeated failures). The counts live in one server process; with several workers each has its own.
Behind a reverse proxy on the same host uvicorn takes the client address from X-Forwarded-For.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class SlidingWindow:
    """At most ``limit`` events per ``seconds`` per key; remembers at most ``max_keys`` keys."""

    def __init__(self, limit: int, seconds: float, max_keys: int = 10_000) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and a window > 0 s")
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> float:
        """0 if an event from ``key`` is allowed now (it is then counted), else the seconds until one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.pop(key, None) or deque()
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.limit:
                wait = events[0] + self.seconds - now
            else:
                events.append(now)
                wait = 0.0
            self._events[key] = events  # most recently seen last
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            return wait
