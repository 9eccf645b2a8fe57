"""A local HTTP server that speaks impact.com's documented REST API, for tests.

What it does as impact.com documents it: `/Mediapartners/{AccountSID}/Actions` and `/ActionUpdates`,
HTTP Basic auth, `StartDate`/`EndDate` filters (last update), `Page`/`PageSize` paging with
`@page`, `@numpages`, `@total`, `@nextpageuri`; every number as a string; XML unless
`Accept: application/json`; `429` with `Retry-After` when asked to throttle, and
`X-RateLimit-Remaining-hour` counting down from `hourly_limit`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.sax.saxutils import escape

SID = "IRtestSID123"
TOKEN = "test-auth-token-0123456789"


def api_date(moment: datetime) -> str:
    """impact.com's dates: ISO 8601 with an offset (here Pacific time, as impact.com shows)."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("America/Los_Angeles")).isoformat(timespec="seconds")


def action_record(
    action_id, created_at, *, campaign="1001", state="PENDING", amount="100.00", payout="10.00", updated_at=None
):
    return {
        "Id": action_id,
        "CampaignId": campaign,
        "CampaignName": "Acme Shoes",
        "ActionTrackerId": "7",
        "State": state,
        "Amount": amount,
        "Payout": payout,
        "Currency": "USD",
        "EventDate": api_date(created_at),
        "CreationDate": api_date(created_at),
        "UpdateDate": api_date(updated_at or created_at),
    }


def update_record(action_id, updated_at, *, campaign="1001", state="APPROVED", amount="80.00", payout="8.00"):
    return {
        "Id": f"U-{action_id}-{int(updated_at.timestamp())}",
        "ActionId": action_id,
        "CampaignId": campaign,
        "CampaignName": "Acme Shoes",
        "State": state,
        "StateDetail": "",
        "Amount": amount,
        "Payout": payout,
        "DeltaAmount": "-20.00",
        "DeltaPayout": "-2.00",
        "Currency": "USD",
        "UpdateDate": api_date(updated_at),
    }


class FakeImpact:
    def __init__(self, hourly_limit: int = 500):
        self.actions: list[dict] = []
        self.updates: list[dict] = []
        self.requests: list[dict] = []  # every request the server saw
        self.throttle_next = 0  # answer this many requests with 429
        self.retry_after = "7"
        self.hourly_limit = hourly_limit
        self.ignore_accept = False  # answer XML whatever the Accept header says (a proxy stripping it)
        self.redirect_next: str | None = None  # answer the next request with a 302 to this Location
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def requests_to(self, resource: str) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/" + resource)]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query))
        with self.lock:
            self.requests.append(
                {"path": url.path, "query": query, "headers": dict(request.headers), "at": time.time()}
            )
            seen = len(self.requests)
            throttled = self.throttle_next > 0
            if throttled:
                self.throttle_next -= 1
            redirect, self.redirect_next = self.redirect_next, None
        if redirect is not None:
            return self.send(request, 302, b"", str(self.hourly_limit - seen), {"Location": redirect})
        remaining = str(max(0, self.hourly_limit - seen))
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self.send(request, 401, b'{"Message":"Authorization has been denied for this request."}', remaining)
        if throttled:
            return self.send(
                request, 429, b'{"Message":"Too many requests"}', remaining, {"Retry-After": self.retry_after}
            )
        parts = url.path.strip("/").split("/")
        if (
            len(parts) != 3
            or parts[0] != "Mediapartners"
            or parts[1] != SID
            or parts[2] not in ("Actions", "ActionUpdates")
        ):
            return self.send(request, 404, b'{"Message":"No HTTP resource was found"}', remaining)
        resource = parts[2]
        records = self.actions if resource == "Actions" else self.updates
        start = datetime.fromisoformat(query["StartDate"].replace("Z", "+00:00")) if "StartDate" in query else None
        end = datetime.fromisoformat(query["EndDate"].replace("Z", "+00:00")) if "EndDate" in query else None
        selected = [
            r
            for r in records
            if (start is None or datetime.fromisoformat(r["UpdateDate"]) >= start)
            and (end is None or datetime.fromisoformat(r["UpdateDate"]) <= end)
        ]
        page_size = int(query.get("PageSize", "100"))
        page = int(query.get("Page", "1"))
        numpages = max(1, -(-len(selected) // page_size))
        chunk = selected[(page - 1) * page_size : page * page_size]

        def uri(n):
            return f"{url.path}?{urlencode({**query, 'Page': str(n)})}"

        meta = {
            "@page": str(page),
            "@numpages": str(numpages),
            "@pagesize": str(page_size),
            "@total": str(len(selected)),
            "@start": str((page - 1) * page_size),
            "@end": str((page - 1) * page_size + max(0, len(chunk) - 1)),
            "@uri": uri(page),
            "@firstpageuri": uri(1),
            "@previouspageuri": uri(page - 1) if page > 1 else "",
            "@nextpageuri": uri(page + 1) if page < numpages else "",
            "@lastpageuri": uri(numpages),
        }
        if "application/json" in request.headers.get("Accept", "") and not self.ignore_accept:
            body = json.dumps({**meta, resource: chunk}).encode()
            return self.send(request, 200, body, remaining, content_type="application/json; charset=utf-8")
        item = resource[:-1]
        attrs = " ".join(f'{k[1:]}="{escape(v)}"' for k, v in meta.items())
        rows = "".join(
            f"<{item}>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in r.items()) + f"</{item}>" for r in chunk
        )
        body = f'<?xml version="1.0" encoding="utf-8"?><ImpactRadiusResponse><{resource} {attrs}>{rows}</{resource}></ImpactRadiusResponse>'
        return self.send(request, 200, body.encode(), remaining, content_type="application/xml; charset=utf-8")

    def send(self, request, status, body, remaining, headers=None, content_type="application/json; charset=utf-8"):
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("X-RateLimit-Remaining-hour", remaining)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)


def now_utc() -> datetime:
    return datetime.now(UTC)
