"""Turning per-window predictions into a stable state: majority vote and hysteresis."""

from __future__ import annotations

from collections import Counter, deque


class MajorityVote:
    """The most common label over the last ``n`` windows (ties go to the most recent)."""

    def __init__(self, n: int = 5) -> None:
        if n < 1:
            raise ValueError("majority vote needs n >= 1")
        self.window: deque[str] = deque(maxlen=n)

    def update(self, label: str, score: float = 1.0) -> str:
        self.window.append(label)
        counts = Counter(self.window)
        best = max(counts.values())
        for candidate in reversed(self.window):
            if counts[candidate] == best:
                return candidate
        return label  # unreachable: the window is never empty here


class Hysteresis:
    """Two-state presence with separate on/off thresholds and a hold count.

    The state turns on after ``hold`` consecutive windows with P(on) >= ``on``
    and off after ``hold`` consecutive windows with P(on) <= ``off``; between
    the thresholds it keeps its state, so it does not flicker.
    """

    def __init__(self, on_label: str, off_label: str, *, on: float = 0.7, off: float = 0.3, hold: int = 2) -> None:
        if not 0.0 <= off <= on <= 1.0:
            raise ValueError("hysteresis needs 0 <= off <= on <= 1")
        self.on_label, self.off_label = on_label, off_label
        self.on, self.off, self.hold = on, off, max(1, hold)
        self.state = off_label
        self._streak = 0

    def update(self, label: str, p_on: float) -> str:
        want_on = p_on >= self.on
        want_off = p_on <= self.off
        if (self.state == self.off_label and want_on) or (self.state == self.on_label and want_off):
            self._streak += 1
            if self._streak >= self.hold:
                self.state = self.on_label if want_on else self.off_label
                self._streak = 0
        else:
            self._streak = 0
        return self.state


class MedianCount:
    """Counting: the median of the last ``n`` rounded estimates."""

    def __init__(self, n: int = 5) -> None:
        self.window: deque[float] = deque(maxlen=max(1, n))

    def update(self, label: str, value: float) -> str:
        self.window.append(float(value))
        ordered = sorted(self.window)
        return str(int(round(max(0.0, ordered[len(ordered) // 2]))))
