"""Streamed CSV exports: rows are written as the database cursor yields them; times and durations
in the forms the pages show."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from django.http import StreamingHttpResponse

from events.common.times import format_duration

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class _Echo:
    def write(self, value):
        return value


def safe_cell(value) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value.startswith(FORMULA_PREFIXES) and not NUMBER.fullmatch(value):
            return "'" + value
        return value
    return str(value)


def moment_cell(moment: datetime | None) -> str:
    """A time in UTC, ISO 8601, to the second: the second every page, CSV and email shows."""
    return "" if moment is None else moment.astimezone(UTC).replace(microsecond=0).isoformat()


def duration_cell(seconds: float | None) -> str:
    """A duration in the one form every page shows (`2 h 57 min`)."""
    return "" if seconds is None else format_duration(seconds)


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff"  # BOM: spreadsheets then read UTF-8 correctly
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([safe_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
