"""Stop requests from the system: SIGTERM (service managers, containers, ``kill``) and SIGHUP (a closed
terminal) end a run the way Ctrl-C does, with every output flushed and closed.

The handler only notes the signal; the frame loop looks at :attr:`StopSignals.requested` between two frames
and ends there, so no frame is half written. A second signal while the first is being acted on raises
:class:`KeyboardInterrupt` at once (someone insists).
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class StopSignals:
    """A context manager that turns SIGTERM and SIGHUP into a stop request while it is entered (the previous
    handlers come back on exit). Outside the main thread it does nothing: Python only lets the main thread
    install handlers."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.requested: str | None = None  # the name of the signal that asked, e.g. "SIGTERM"
        self._previous: dict[int, object] = {}

    def _handle(self, number: int, frame) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.signals}
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
