"""The pacer alone: slots per channel, all-or-none reservations, Retry-After pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.notifications import DeliveryDeferred
from bot.pacing import Pacer


def test_one_message_per_second_per_channel(clock: ManualClock) -> None:
    pacer = Pacer(clock)
    pacer.reserve("C1")
    pacer.reserve("C2")  # another channel is not held up
    with pytest.raises(DeliveryDeferred) as deferred:
        pacer.reserve("C1")
    assert deferred.value.until == clock.now() + timedelta(seconds=1)
    assert deferred.value.reason == ""  # pacing is not an error worth recording
    clock.advance(timedelta(seconds=1))
    pacer.reserve("C1")


def test_several_channels_are_reserved_all_or_none(clock: ManualClock) -> None:
    pacer = Pacer(clock)
    pacer.reserve("U1")
    with pytest.raises(DeliveryDeferred):
        pacer.reserve("U2", "U1")
    pacer.reserve("U2")  # the refused reservation took no slot in U2


def test_a_pause_holds_every_channel_until_retry_after(clock: ManualClock) -> None:
    pacer = Pacer(clock)
    until = pacer.pause(30)
    assert pacer.pause(5) == until  # a shorter pause does not cut the longer one short
    for call in (pacer.check, lambda: pacer.reserve("C9")):
        with pytest.raises(DeliveryDeferred) as deferred:
            call()
        assert deferred.value.until == until and deferred.value.reason == "ratelimited"
    clock.advance(timedelta(seconds=30))
    pacer.check()
    pacer.reserve("C9")


def test_without_an_interval_only_pauses_apply(clock: ManualClock) -> None:
    pacer = Pacer(clock, interval=None)
    pacer.reserve("C1")
    pacer.reserve("C1")
    pacer.pause(1)
    with pytest.raises(DeliveryDeferred):
        pacer.reserve("C1")
