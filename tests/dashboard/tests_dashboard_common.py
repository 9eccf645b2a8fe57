from datetime import UTC, datetime

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()
