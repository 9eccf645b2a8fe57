"""impact.com's Status words, and those of its older API, grouped by what they mean for the money."""

from __future__ import annotations

import pytest

from events.impact import status_group


@pytest.mark.parametrize(
    ("status", "group"),
    [
        ("PENDING", "pending"),
        ("DEFAULT", "pending"),
        ("APPROVED", "approved"),
        ("LOCKED", "approved"),
        ("CLEARED", "approved"),
        ("PAID", "approved"),
        ("REVERSED", "reversed"),
        ("REJECTED", "reversed"),
        ("DECLINED", "reversed"),
    ],
)
def test_each_status_word_belongs_to_its_group(status, group):
    assert status_group(status) == group


@pytest.mark.parametrize("status", ["rejected", "Declined", " reversed ", "dEfAuLt"])
def test_status_words_are_grouped_whatever_their_case(status):
    assert status_group(status) in ("pending", "reversed")


@pytest.mark.parametrize("status", ["", None, "ON_HOLD", "REVERSAL PENDING"])
def test_a_word_outside_the_list_belongs_to_no_group(status):
    assert status_group(status) == ""
