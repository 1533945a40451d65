"""Thespian's timers as corrected by actors.thespian_timing: a timer not yet expired never
reports no time left (the TCP transport would then wait in ``select`` with no timeout)."""

from __future__ import annotations

from datetime import timedelta

from actors import thespian_timing

ExpirationTimerView = thespian_timing.ExpirationTimerView  # the class corrected


def test_a_timer_with_under_half_a_microsecond_left_reports_one_microsecond() -> None:
    view = ExpirationTimerView(None, 100.0000004, 100.0)
    assert not view.expired()
    assert view.remaining() == thespian_timing.LEAST_LEFT


def test_an_expired_timer_reports_no_time_left() -> None:
    view = ExpirationTimerView(None, 100.0, 100.0)
    assert view.expired()
    assert view.remaining() == timedelta(0)


def test_a_timer_without_an_end_reports_what_it_is_given_for_ever() -> None:
    view = ExpirationTimerView(None, None, 100.0)
    assert view.remaining() is None
    assert view.remaining(forever="never") == "never"


def test_a_timer_with_time_left_reports_it_unchanged() -> None:
    view = ExpirationTimerView(None, 100.25, 100.0)
    assert view.remaining() == timedelta(seconds=0.25)


def test_the_gateway_and_the_actors_import_the_correction() -> None:
    import actors.base
    import runtime.gateway_link

    assert actors.base.thespian_timing is runtime.gateway_link.thespian_timing is thespian_timing
    assert ExpirationTimerView.remaining.__module__ == "actors.thespian_timing"
