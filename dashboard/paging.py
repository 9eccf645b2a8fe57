"""Keyset pagination, the one way a dashboard list is cut into pages: newest first by (time, id).

A cursor is an opaque, URL-safe token of the boundary row; page 1,000 costs what page 1
costs because the query seeks to the boundary in the index instead of counting rows.
`keyset_page()` is what a page calls; `paginate()` and `Cursor` under it are pure Python.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib import messages

PAGE_SIZE = 50
BAD_CURSOR_MESSAGE = "That page link is not valid any more; showing the newest rows."


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    at: datetime
    pk: int

    def encode(self) -> str:
        raw = f"{self.at.astimezone(UTC).isoformat()}|{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
            at_text, pk_text = raw.split("|")
            at = datetime.fromisoformat(at_text)
            pk = int(pk_text)
            at.astimezone(UTC)  # as the query will need it: no overflow at the ends of time
        except (ValueError, UnicodeError, OverflowError) as exc:
            raise BadCursor("this page link is not valid") from exc
        if at.tzinfo is None or not 0 <= pk < 2**63:
            raise BadCursor("this page link is not valid")
        return cls(at, pk)


@dataclass
class Page:
    rows: list
    newer: str | None  # cursor for the page of newer rows, None on the first page
    older: str | None  # cursor for the page of older rows, None on the last page


def paginate(fetch_older, fetch_newer, *, before: str | None, after: str | None, size: int, key) -> Page:
    """Fetch one page. `fetch_older(cursor|None, limit)` returns rows newest first below the cursor;
    `fetch_newer(cursor, limit)` returns rows oldest first above it. `key(row)` gives its Cursor."""
    if after:
        rows = list(fetch_newer(Cursor.decode(after), size + 1))
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        older = key(rows[-1]).encode() if rows else before
        newer = key(rows[0]).encode() if rows and more_newer else None
        return Page(rows, newer, older)
    cursor = Cursor.decode(before) if before else None
    rows = list(fetch_older(cursor, size + 1))
    more_older = len(rows) > size
    rows = rows[:size]
    older = key(rows[-1]).encode() if rows and more_older else None
    newer = key(rows[0]).encode() if rows and cursor is not None else None
    return Page(rows, newer, older)


def keyset_page(request, queryset, *, field: str = "received_at", size: int = PAGE_SIZE) -> Page:
    """The page of `queryset` that the request's `before` or `after` cursor asks for, ordered by
    (`field`, id). A cursor that does not decode gives the newest page, with a message saying so."""
    try:
        return _keyset(queryset, field, request.GET.get("before"), request.GET.get("after"), size)
    except BadCursor:
        messages.warning(request, BAD_CURSOR_MESSAGE)
        return _keyset(queryset, field, None, None, size)


def _keyset(queryset, field: str, before: str | None, after: str | None, size: int) -> Page:
    """Rows older or newer than the boundary (time, id), written as two conditions the (…, time)
    indexes serve: no later than its time, and not at its time with an id on the wrong side."""

    def older(cursor, limit):
        rows = queryset.order_by(f"-{field}", "-id")
        if cursor is not None:
            rows = rows.filter(**{f"{field}__lte": cursor.at}).exclude(**{field: cursor.at, "id__gte": cursor.pk})
        return rows[:limit]

    def newer(cursor, limit):
        rows = queryset.filter(**{f"{field}__gte": cursor.at}).exclude(**{field: cursor.at, "id__lte": cursor.pk})
        return rows.order_by(field, "id")[:limit]

    def key(row) -> Cursor:
        return Cursor(getattr(row, field), row.pk)

    return paginate(older, newer, before=before, after=after, size=size, key=key)
