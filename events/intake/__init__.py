"""The doors: the postback endpoint and the read-only actions API.

- `endpoint`: the DRF view impact.com calls; thin.
- `credentials`: who may post (credentials, rotation, expiry, the allow-list).
- `limits`: body and query size limits, reading the raw body first.
- `redaction`: credentials out of what is stored and what is logged.
- `store`: the delivery, committed before anything parses it.
- `refusals`: refused postbacks counted, throttled and kept.
- `actions_api`: `GET /api/actions/`, action states for the simulator's verification.
- `openapi`: the endpoint's OpenAPI description.
"""
