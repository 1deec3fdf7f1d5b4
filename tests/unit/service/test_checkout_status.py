"""The checkout status speaks of every state in words (a state missing here was a KeyError,
a 500, for a parked or blocked job)."""

from __future__ import annotations

from payretry.domain.models import JobState
from payretry.service.checkout_status import _STATES


def test_every_state_has_its_words() -> None:
    assert set(_STATES) == set(JobState)
    assert all(text.endswith(".") and "_" not in text for text in _STATES.values())
