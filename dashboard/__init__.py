"""The dashboard: the pages publisher staff read, built on what `events` stores and counts.

Pages live in `views/` (one module per page family), their URLs in `urls.py`. Beside them: who
may see what (`access`), keyset pages (`paging`), the filter forms (`filters`), CSV exports
(`exports`), periods, money, charts and folded totals (`periods`, `money`, `charts`, `folding`,
pure Python), the display zone (`timezones`), the banner's alert counts (`context_processors`)
and the template filters and rows (`templatetags/dashboard.py`). `events` never imports it.
"""
