"""A small client for impact.com's REST API (the Mediapartners resources), on httpx.

- `https://api.impact.com/Mediapartners/{AccountSID}/{Resource}`, HTTP Basic auth (Account SID,
  Auth Token), `Accept: application/json` (impact.com answers XML otherwise).
- The credentials only ever go to the base URL's scheme, host and port: https unless `allow_http`
  (local test servers); a redirect or a next page anywhere else is refused, not followed.
- Paging: `Page` and `PageSize`; answers carry `@page`, `@numpages`, `@total` and `@nextpageuri`
  (numbers as strings).
- Rate limits: a request budget is taken before every request; `429` waits `Retry-After` through
  the injected `sleep` when it is short, and stops the run otherwise.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx

DEFAULT_PAGE_SIZE = 1000
MAX_RETRY_WAIT = 120  # seconds: a longer Retry-After stops the run and the watcher tries later
MAX_429_RETRIES = 3
MAX_PAGES = 10_000
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}


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
        allow_http: bool = False,
    ):
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/") + "/"
        self._origin = _origin(self.base_url)
        if self._origin[0] != "https" and not (allow_http and self._origin[0] == "http"):
            raise ApiError(f"the API base URL must be https:// (the Auth Token goes with every request): {base_url}")
        self._auth = httpx.BasicAuth(account_sid, auth_token)
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

    def _check_origin(self, url: str, why: str) -> None:
        if _origin(url) != self._origin:
            raise ApiError(
                f"refusing to send the credentials to another host or scheme ({why}): {url[:200]} "
                f"is not on {self.base_url}"
            )

    def get(self, url: str) -> dict:
        """One GET (with its 429 retries and same-origin redirects), as parsed JSON."""
        self._check_origin(url, "next page")
        headers = {"Accept": "application/json", "User-Agent": "impact-postbacks-reconciler"}
        with httpx.Client(auth=self._auth, headers=headers, timeout=self.timeout, follow_redirects=False) as http:
            response = self._fetch(http, url)
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            raise ApiError(f"expected JSON from impact.com, got {content_type or 'no content type'}")
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise ApiError(f"impact.com sent invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError("impact.com sent JSON that is not an object")
        return data

    def _fetch(self, http: httpx.Client, url: str) -> httpx.Response:
        """The answer to `url` once it is a 2xx: 429s waited out, redirects followed on the same origin."""
        retries = redirects = 0
        while True:
            response = self._request(http, url)
            if response.status_code == 429:
                wait = retry_after_seconds(response.headers.get("Retry-After"), self.clock)
                if wait > self.max_retry_wait or retries >= MAX_429_RETRIES:
                    raise RateLimited(wait if wait > self.max_retry_wait else self.max_retry_wait)
                retries += 1
                self.sleep(wait)
                continue
            if response.status_code in REDIRECTS:
                target = urljoin(url, response.headers.get("Location", ""))
                self._check_origin(target, f"redirected by a {response.status_code}")
                if redirects >= MAX_REDIRECTS:
                    raise ApiError(f"more than {MAX_REDIRECTS} redirects from impact.com")
                redirects += 1
                url = target
                continue
            if response.status_code == 401:
                raise ApiError("401 from impact.com: check the Account SID and Auth Token")
            if not response.is_success:
                detail = response.content[:300].decode("utf-8", "replace")
                raise ApiError(f"{response.status_code} from impact.com for {urlsplit(url).path}: {detail}")
            return response

    def _request(self, http: httpx.Client, url: str) -> httpx.Response:
        """One request, within the budget and what impact.com says remains."""
        if self.rate_remaining is not None and self.rate_remaining <= 0:
            raise BudgetExhausted("impact.com says no request remains this hour (X-RateLimit-Remaining-hour: 0)")
        if not self.budget.take():
            raise BudgetExhausted(f"request budget exhausted ({self.budget.describe(self.rate_remaining)})")
        self.requests_made += 1
        try:
            response = http.get(url)
        except httpx.HTTPError as exc:
            raise ApiError(f"impact.com API unreachable: {exc}") from exc
        self._note_remaining(response.headers)
        return response

    def _note_remaining(self, headers) -> None:
        value = (headers or {}).get("X-RateLimit-Remaining-hour")
        if value is not None and re.fullmatch(r"-?[0-9]{1,9}", str(value).strip()):
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


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) as they decide where the credentials go."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
