"""Named points where the crash-safety tests kill the process, deterministically.

``FLOWPORT_CRASH_AT="after-answer:3"`` kills this process with SIGKILL the third time it reaches
the point ``after-answer``; ``in-flight:2:0.2`` kills it 0.2 s after the second request left, while
the answer is still on its way. Unset, as in every normal run, a point costs one comparison.
The points are where a crash is most costly: between the checkpoint's intent and the send, while
a request is in flight, between Webflow's answer and the checkpoint's commit, around publishing.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POINTS", "reach", "reach_in_flight"]

POINTS = (
    "before-send",
    "in-flight",
    "after-answer",
    "before-publish",
    "after-publish",
    # The assets stage: the intent committed, before the create; the create answered, before
    # its asset id is recorded; recorded, before the upload; uploaded, before that is recorded.
    "asset-intent",
    "asset-answered",
    "asset-created",
    "asset-uploaded",
)


def _parse(spec: str | None) -> tuple[str, int, float] | None:
    if not spec:
        return None
    name, _, rest = spec.partition(":")
    count, _, delay = rest.partition(":")
    if name not in POINTS:
        raise ValueError(f"FLOWPORT_CRASH_AT names an unknown point {name!r}; known: {POINTS}")
    return name, int(count or "1"), float(delay or "0.1")


_target = _parse(os.environ.get("FLOWPORT_CRASH_AT"))
_reached: dict[str, int] = {}


def _due(point: str) -> bool:
    if _target is None or _target[0] != point:
        return False
    _reached[point] = _reached.get(point, 0) + 1
    return _reached[point] == _target[1]


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def reach(point: str) -> None:
    if _due(point):
        _kill()


def reach_in_flight(point: str) -> None:
    """Arm a kill that fires while the request about to be sent is still unanswered."""
    if _due(point) and _target is not None:
        timer = threading.Timer(_target[2], _kill)
        timer.daemon = True
        timer.start()
