"""Standard Webhooks headers, produced with the `standardwebhooks` library: `webhook-id` (the
message's, the same on every retry), `webhook-timestamp` (this attempt's) and `webhook-signature`
(one `v1,…` per active secret, space-separated, so a receiver still holding the old secret during a
rotation verifies too)."""

from __future__ import annotations

from datetime import datetime

from standardwebhooks import Webhook


def headers(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
