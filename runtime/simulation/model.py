"""What a scenario is: the checked, frozen description a simulation run drives.

Built by :func:`runtime.simulation.scenario.load_scenario`; the driver draws every random
quantity from these values with the run's one generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from infra.config import Settings

__all__ = [
    "AgentGroup",
    "Arrivals",
    "Customers",
    "Distribution",
    "Fault",
    "IntRange",
    "ReportWindow",
    "Scenario",
]


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution of durations in seconds; ``draw`` takes the run's one generator."""

    kind: str  # fixed, exponential, uniform, lognormal
    a: float  # fixed: value; exponential: mean; uniform: min; lognormal: mean
    b: float = 0.0  # uniform: max; lognormal: sd
    cap: float | None = None

    def draw(self, rng: Any) -> float:
        kind = self.kind
        if kind == "exponential":
            value = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        elif kind == "fixed":
            value = self.a
        elif kind == "uniform":
            value = rng.uniform(self.a, self.b)
        else:  # lognormal from its mean and standard deviation
            sigma2 = math.log(1.0 + (self.b / self.a) ** 2)
            value = rng.lognormvariate(math.log(self.a) - sigma2 / 2.0, math.sqrt(sigma2))
        if self.cap is not None and value > self.cap:
            value = self.cap
        return value

    def draw_ms(self, rng: Any) -> int:
        return round(self.draw(rng) * 1000)

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int

    def draw(self, rng: Any) -> int:
        return self.low if self.low == self.high else int(rng.randint(self.low, self.high))


@dataclass(frozen=True, slots=True)
class Arrivals:
    #: piecewise-constant rate: (from second, customers per hour), sorted, the first at 0
    profile: tuple[tuple[float, float], ...]
    limit: int | None

    def rate_at(self, second: float) -> float:
        rate = 0.0
        for start, per_hour in self.profile:
            if start > second:
                break
            rate = per_hour
        return rate


@dataclass(frozen=True, slots=True)
class Customers:
    bot_resolves: float
    messages_to_bot: IntRange
    exchanges: IntRange
    think_time: Distribution
    patience: Distribution | None  # None: never gives up
    retry_after_no_agent: float
    silent_leave: float
    queues: tuple[tuple[str, float], ...]  # (queue, weight), in the file's order


@dataclass(frozen=True, slots=True)
class AgentGroup:
    name: str
    count: int
    queues: tuple[str, ...]
    max_conversations: int
    reply_time: Distribution
    accept_time: Distribution
    leave_after: Distribution
    ends_chat: float
    hold_probability: float
    hold_seconds: Distribution  # what the agent asks for (capped at timers.hold.max_seconds)
    hold_duration: Distribution  # how long it actually stays away
    wrap_up_time: Distribution
    wrap_up_forget: float  # lets the wrap-up timer expire instead of applying
    recover: Distribution  # back to READY after the engine made it NOT_READY
    shift_start: float
    shift_end: float | None
    break_every: float | None
    break_length: float
    #: the time from the answer to the agent's leaving, drawn once per answer; the chat's
    #: delays (replies, the customer's answers, leaving, wrap-up) share it evenly. None: each
    #: delay is drawn from its own distribution.
    handling_time: Distribution | None = None
    #: the share of its chats an agent transfers to ``transfer_queue`` at its first reply
    transfer_share: float = 0.0
    transfer_queue: str = "default"
    #: the share of its chats an agent asks ``consult_queue`` for help in at its first reply
    #: (if it does not transfer them); once the consulted agent has joined, the consult ends
    #: at the agent's next reply in a consult-transfer (share ``consult_transfer``) or not
    consult_share: float = 0.0
    consult_queue: str = "default"
    consult_transfer: float = 0.0


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """What the planner's figures cover (seconds since the start of the run).

    Requests made from ``warm_up`` (or ``window_start`` if later) until ``window_end`` (the end
    of the arrivals if None) are counted, in intervals of ``interval`` aligned on the start of
    the run; ``service_levels`` are the answer-time thresholds of the service level.
    """

    interval: float = 1800.0
    service_levels: tuple[float, ...] = (20.0,)
    warm_up: float = 0.0
    window_start: float = 0.0
    window_end: float | None = None

    def window(self, duration: float, total: float) -> tuple[float, float]:
        """The measured stretch of a run of ``duration`` seconds of arrivals, ``total`` in all."""
        start = max(self.warm_up, self.window_start)
        end = duration if self.window_end is None else min(self.window_end, total)
        return min(start, end), end


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault a run injects (``faults[]`` of a scenario; :mod:`runtime.simulation.faults`).

    ``kind`` is one of :data:`FAULT_KINDS`. ``at``: seconds since the start of the run, or None
    for a time drawn from the faults' own random stream within ``window`` (start, end; end None:
    the end of the arrivals). ``target``: which host or Router (an index), None for one drawn
    at the time. ``lasts``: how long the archive refuses writes. ``share``: the share of
    customer messages delivered twice.
    """

    kind: str
    at: float | None = None
    window: tuple[float, float | None] = (0.0, None)
    target: int | None = None
    lasts: float = 0.0
    share: float = 0.0


#: What ``faults[].kind`` may be.
FAULT_KINDS = (
    "host_crash",
    "agent_host_crash",
    "router_restart",
    "archive_refuses",
    "duplicate_deliveries",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    source: str
    seed: int
    duration: float  # seconds of arrivals
    drain: float  # seconds after the arrivals stop
    resolution: float  # seconds: customers and agents act on this grid (engine timers do not)
    arrivals: Arrivals
    channels: tuple[tuple[str, float], ...]
    second_channel: float
    customers: Customers
    bot_closes: float
    agents: tuple[AgentGroup, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None  # the engine settings the config gives (storage aside)
    report: ReportWindow = field(default_factory=ReportWindow)
    #: arrivals, and each customer's plan, patience and handling time, from streams of their
    #: own: variants that differ in their agents meet the same customers
    common_random_numbers: bool = False
    faults: tuple[Fault, ...] = ()

    @property
    def total_seconds(self) -> float:
        return self.duration + self.drain

    @property
    def agent_count(self) -> int:
        return sum(group.count for group in self.agents)

    def with_overrides(
        self, *, seed: int | None = None, duration: float | None = None, drain: float | None = None
    ) -> Scenario:
        """The same scenario with another seed, duration or drain (tests, the command line)."""
        return replace(
            self,
            seed=self.seed if seed is None else seed,
            duration=self.duration if duration is None else duration,
            drain=self.drain if drain is None else drain,
        )
