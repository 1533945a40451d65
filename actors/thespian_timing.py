"""A correction to Thespian's timers, made once on import by every process that runs actors or
a gateway (:mod:`actors.base`, :mod:`runtime.gateway_link`).

Thespian's TCP transport waits in ``select`` for the smallest of its delays, the time left to
the current run among them, and drops every delay that is false (``filter(None, ...)``) before
taking the smallest. The time left is a ``timedelta``, rounded to the microsecond: with less
than half a microsecond left it is ``timedelta(0)``, false, and dropped; with no other delay
pending the transport then waits with no timeout at all, until a message arrives, for ever if
none does. A gateway taking in what has arrived (``listen`` for 0.2 ms) was seen blocked that
way for minutes while the engine, waiting for it, sent nothing; an actor would wait past its
own wakeup the same way. Here the time left of a timer that has not expired is never less than
one microsecond: the transport's ``select`` then returns, and the run ends as it should.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from thespian.system.timing import ExpirationTimerView

#: The least time left that a timer not yet expired reports.
LEAST_LEFT = timedelta(microseconds=1)

_rounded = ExpirationTimerView.remaining


def _remaining(self: ExpirationTimerView, forever: Any = None) -> Any:
    left = _rounded(self, forever)
    if left is not None and not left and not self.expired():
        return LEAST_LEFT
    return left


ExpirationTimerView.remaining = _remaining
