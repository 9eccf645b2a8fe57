"""A small client for impact.com's REST API (the Mediapartners resources), standard library only.

- `https://api.impact.com/Mediapartners/{AccountSID}/{Resource}`, HTTP Basic auth (Account SID,
  Auth Token), `Accept: application/json` (impact.com answers XML otherwise).
- Paging: `Page` and `PageSize`; answers carry `@page`, `@numpages`, `@total` and `@nextpageuri`
  (numbers as strings). The next page is only followed on the same host (the credentials go with it).
- Rate limits: a request budget is taken before every request; `429` waits `Retry-After` through
  the injected `sleep` when it is short, and stops the run otherwise.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode, urljoin, urlsplit

DEFAULT_PAGE_SIZE = 1000
MAX_RETRY_WAIT = 120  # seconds: a longer Retry-After stops the run and the watcher tries later
MAX_429_RETRIES = 3
MAX_PAGES = 10_000


class ApiError(Exception):
    """The API could not be read; the message says why."""


class RateLimited(ApiError):
    def __init__(self, retry_after: int):
        super().__init__(f"impact.com asked to wait {retry_after} s (429 Retry-After)")
        self.retry_after = retry_after


class BudgetExhausted(ApiError):
    pass


class Budget:
    """At most `limit` requests; `take()` is called before each one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def describe(self, rate_remaining: int | None = None) -> str:
        text = f"{self.used} of {self.limit} requests used"
        return text if rate_remaining is None else f"{text}; impact.com says {rate_remaining} remaining"


def api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_after_seconds(value: str | None, now: Callable[[], datetime]) -> int:
    """Retry-After as seconds or an HTTP date; 60 when absent or unreadable."""
    if not value:
        return 60
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        return max(0, int((parsedate_to_datetime(value) - now()).total_seconds()) + 1)
    except (TypeError, ValueError):
        return 60


class ImpactClient:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = "https://api.impact.com",
        budget: Budget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_retry_wait: int = MAX_RETRY_WAIT,
    ):
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/") + "/"
        token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.budget = budget or Budget(500)
        self.clock = clock
        self.sleep = sleep
        self.timeout = timeout
        self.page_size = page_size
        self.max_retry_wait = max_retry_wait
        self.requests_made = 0
        self.rate_remaining: int | None = None

    def url(self, resource: str, params: dict[str, str]) -> str:
        path = f"Mediapartners/{account_path(self.account_sid)}/{resource}"
        return urljoin(self.base_url, path) + "?" + urlencode(params)

    def get(self, url: str) -> dict:
        """One GET (with its 429 retries), as parsed JSON."""
        if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            raise ApiError(f"refusing to send the credentials to another host: {url[:200]}")
        for _ in range(MAX_429_RETRIES + 1):
            if self.rate_remaining is not None and self.rate_remaining <= 0:
                raise BudgetExhausted("impact.com says no request remains this hour (X-RateLimit-Remaining-hour: 0)")
            if not self.budget.take():
                raise BudgetExhausted(f"request budget exhausted ({self.budget.describe(self.rate_remaining)})")
            request = urllib.request.Request(  # noqa: S310 - base URL is a setting checked to be http(s)
                url,
                headers={
                    "Authorization": self._authorization,
                    "Accept": "application/json",
                    "User-Agent": "impact-postbacks-reconciler",
                },
            )
            self.requests_made += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    self._note_remaining(response.headers)
                    content_type = response.headers.get("Content-Type", "")
                    body = response.read()
            except urllib.error.HTTPError as exc:
                self._note_remaining(exc.headers)
                if exc.code == 429:
                    wait = retry_after_seconds(exc.headers.get("Retry-After"), self.clock)
                    if wait > self.max_retry_wait:
                        raise RateLimited(wait) from exc
                    self.sleep(wait)
                    continue
                detail = exc.read()[:300].decode("utf-8", "replace")
                if exc.code == 401:
                    raise ApiError("401 from impact.com: check the Account SID and Auth Token") from exc
                raise ApiError(f"{exc.code} from impact.com for {urlsplit(url).path}: {detail}") from exc
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                raise ApiError(f"impact.com API unreachable: {exc}") from exc
            if "json" not in content_type.lower():
                raise ApiError(f"expected JSON from impact.com, got {content_type or 'no content type'}")
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise ApiError(f"impact.com sent invalid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ApiError("impact.com sent JSON that is not an object")
            return data
        raise RateLimited(self.max_retry_wait)

    def _note_remaining(self, headers) -> None:
        value = (headers or {}).get("X-RateLimit-Remaining-hour")
        if value is not None and str(value).strip().lstrip("-").isdigit():
            self.rate_remaining = int(value)

    def records(self, resource: str, params: dict[str, str], key: str | None = None) -> Iterator[dict]:
        """Every record of a listing, page after page (following @nextpageuri)."""
        key = key or resource
        url = self.url(resource, {**params, "PageSize": str(self.page_size), "Page": "1"})
        for _ in range(MAX_PAGES):
            data = self.get(url)
            page = data.get(key) or []
            if isinstance(page, dict):  # a single record may come unwrapped
                page = [page]
            yield from (r for r in page if isinstance(r, dict))
            next_uri = (data.get("@nextpageuri") or "").strip()
            if not next_uri or str(data.get("@page")) == str(data.get("@numpages")):
                return
            url = urljoin(self.base_url, next_uri)
        raise ApiError(f"more than {MAX_PAGES} pages of {resource}")


def account_path(account_sid: str) -> str:
    return quote(account_sid, safe="")
