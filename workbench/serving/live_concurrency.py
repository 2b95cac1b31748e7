"""How many requests each endpoint's live versions have had in flight lately, for bounding its shadows.

The peak is kept per window of ``window_s`` (the current and the previous one), so a shadow may have as
many requests in flight as the live traffic had at its busiest moment in the last one to two windows: a
burst the live replicas absorbed is mirrored whole, and a shadow that falls behind sheds copies rather
than queue them. Mirroring happens after the live answer is sent, when the live count has already gone
down by one: the peak, not the current count, is what the shadow is allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    in_flight: int = 0
    started: float = 0.0
    peak: int = 0
    previous_peak: int = 0


class LiveConcurrency:
    def __init__(self, window_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._endpoints: dict[str, _Window] = {}

    def _roll(self, endpoint: str) -> _Window:
        now = self._clock()
        window = self._endpoints.get(endpoint)
        if window is None:
            window = self._endpoints[endpoint] = _Window(started=now)
        elapsed = now - window.started
        if elapsed >= self.window_s:
            # A quiet window in between leaves nothing of the older peak.
            window.previous_peak = window.peak if elapsed < 2 * self.window_s else window.in_flight
            window.peak = window.in_flight
            window.started = now
        return window

    def enter(self, endpoint: str) -> None:
        window = self._roll(endpoint)
        window.in_flight += 1
        window.peak = max(window.peak, window.in_flight)

    def leave(self, endpoint: str) -> None:
        window = self._roll(endpoint)
        window.in_flight -= 1
        if window.in_flight == 0 and window.peak == 0 and window.previous_peak == 0:
            del self._endpoints[endpoint]

    def recent_peak(self, endpoint: str) -> int:
        """At least 1: a request that was answered had a live request in flight, even if not this window."""
        if endpoint not in self._endpoints:
            return 1
        window = self._roll(endpoint)
        return max(1, window.peak, window.previous_peak, window.in_flight)
