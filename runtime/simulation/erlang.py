"""Erlang C (M/M/c) and Erlang A (M/M/c+M): the queueing theory a staffing plan starts from.

Pure functions of the arrival rate, the mean handling time, the number of agents and (Erlang A)
the mean patience, all in seconds. Nothing here overflows at a few hundred agents: Erlang B
comes from its recursion ``B(n) = a B(n-1) / (n + a B(n-1))`` (every term between 0 and 1),
Erlang C from Erlang B, and the M/M/c+M state probabilities from ratios to the state with every
agent busy. Figures, as the simulation's summary gives them:

* ``p_wait``: probability that an arriving customer waits (finds every agent busy);
* ``service_level``: probability of being answered within T, over all arrivals;
* ``asa_seconds``: mean wait of the answered customers;
* ``abandonment_rate``: probability of giving up before an answer (0 for Erlang C);
* ``occupancy``: mean share of the agents busy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_WAITING", "erlang_a", "erlang_b", "erlang_c", "erlang_c_probability"]

#: The M/M/c+M queue is cut where the remaining states weigh less than this.
_TAIL = 1e-13
#: Longer queues than this (overload with patience of days) are refused: ValueError.
MAX_WAITING = 20_000


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of ``servers`` servers offered ``load`` Erlangs (M/M/c/c)."""
    if servers < 0 or load < 0:
        raise ValueError(f"servers and load must be >= 0, got {servers} and {load}")
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def erlang_c_probability(servers: int, load: float) -> float:
    """Probability of waiting in M/M/c with ``load`` Erlangs; 1 when ``load >= servers``."""
    if load >= servers:
        return 1.0
    blocking = erlang_b(servers, load)
    return servers * blocking / (servers - load * (1.0 - blocking))


def _check(rate: float, handling: float, servers: int) -> None:
    if rate < 0 or handling <= 0 or servers < 1:
        raise ValueError(
            f"need rate >= 0, handling > 0 and servers >= 1, got {rate}, {handling}, {servers}"
        )


def erlang_c(
    rate: float, handling: float, servers: int, thresholds: Sequence[float]
) -> dict[str, Any]:
    """M/M/c: Poisson arrivals at ``rate`` per second, exponential handling of mean
    ``handling`` seconds, ``servers`` agents, customers who never give up. Unstable (load at
    or above the agents): nobody is answered within any time, the mean wait is None."""
    _check(rate, handling, servers)
    load = rate * handling
    if load >= servers:
        return {
            "p_wait": 1.0,
            "service_level": {f"{t:g}s": 0.0 for t in thresholds},
            "asa_seconds": None,
            "abandonment_rate": 0.0,
            "occupancy": 1.0,
        }
    waiting = erlang_c_probability(servers, load)
    drain = servers / handling - rate  # how fast a queue empties
    return {
        "p_wait": waiting,
        "service_level": {f"{t:g}s": 1.0 - waiting * math.exp(-drain * t) for t in thresholds},
        "asa_seconds": waiting / drain,
        "abandonment_rate": 0.0,
        "occupancy": load / servers,
    }


def _queue_weights(rate: float, service: float, patience_rate: float) -> list[float]:
    """Weights of 1, 2, ... customers waiting, relative to the state with every agent busy and
    nobody waiting (each the one before times rate / (c mu + k theta)), cut at the tail."""
    weights: list[float] = []
    weight, total, waiting = 1.0, 1.0, 0
    while True:
        waiting += 1
        weight *= rate / (service + waiting * patience_rate)
        weights.append(weight)
        total += weight
        if waiting > MAX_WAITING:
            raise ValueError(f"the queue grows beyond {MAX_WAITING} customers waiting")
        if rate < service + waiting * patience_rate and weight < _TAIL * total:
            return weights


def _served_within(positions: int, service: float, theta: float, seconds: float) -> list[float]:
    """P(answered within ``seconds``) for a customer at each position 0..positions of the queue
    (0: being answered): it moves up at rate ``service + (position - 1) theta`` (an answer, or
    one ahead giving up) and gives up at rate ``theta``. Uniformised at the fastest rate, the
    Poisson sum over jumps cut where its weights vanish."""
    uniform = service + positions * theta
    mean = uniform * seconds
    steps = int(mean + 12 * math.sqrt(mean) + 20)
    up = [0.0] + [(service + (m - 1) * theta) / uniform for m in range(1, positions + 1)]
    stay = [0.0] + [1.0 - u - theta / uniform for u in up[1:]]
    served = [1.0] + [0.0] * positions  # answered within n jumps, from each position
    within = [0.0] * (positions + 1)
    for n in range(steps + 1):
        log_weight = -mean + (n * math.log(mean) if n else 0.0) - math.lgamma(n + 1)
        if log_weight > -745:
            weight = math.exp(log_weight)
            within = [w + weight * s for w, s in zip(within, served, strict=True)]
        served = [1.0] + [
            up[m] * served[m - 1] + stay[m] * served[m] for m in range(1, positions + 1)
        ]
    return within


def erlang_a(
    rate: float, handling: float, servers: int, patience: float, thresholds: Sequence[float]
) -> dict[str, Any]:
    """M/M/c+M: as :func:`erlang_c`, with customers who give up after an exponential patience
    of mean ``patience`` seconds (always stable)."""
    _check(rate, handling, servers)
    if patience <= 0:
        raise ValueError(f"patience must be > 0, got {patience}")
    mu, theta = 1.0 / handling, 1.0 / patience
    load, service = rate * handling, servers / handling
    if rate == 0:
        return erlang_c(rate, handling, servers, thresholds)
    waiting = _queue_weights(rate, service, theta)
    below = 1.0 / erlang_b(servers, load) - 1.0  # states 0..c-1, relative to state c
    full = 1.0 / (below + 1.0 + sum(waiting))  # P(every agent busy, nobody waiting)
    arrivals = [full, *(full * w for w in waiting)]  # what an arrival finds: 0, 1, ... waiting
    # a customer arriving at position m is answered with probability prod q_i, after a mean
    # time sum 1/(r_i + theta) if so (r_i = c mu + (i-1) theta)
    answered = 0.0
    wait_if_answered = 0.0
    reach, time_spent = 1.0, 0.0
    for found, share in enumerate(arrivals):
        up = service + found * theta
        reach *= up / (up + theta)
        time_spent += 1.0 / (up + theta)
        answered += share * reach
        wait_if_answered += share * reach * time_spent
    p_wait = sum(arrivals)
    gave_up = p_wait - answered
    served_total = 1.0 - gave_up
    levels: dict[str, float] = {}
    for t in thresholds:
        within = _served_within(len(arrivals), service, theta, t) if t > 0 else []
        levels[f"{t:g}s"] = (1.0 - p_wait) + sum(
            share * within[found + 1] for found, share in enumerate(arrivals) if within
        )
    return {
        "p_wait": p_wait,
        "service_level": levels,
        "asa_seconds": wait_if_answered / served_total if served_total > 0 else None,
        "abandonment_rate": gave_up,
        "occupancy": rate * served_total / (servers * mu),
    }
