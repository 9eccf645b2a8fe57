"""What the dashboard and monitoring read: rollups of closed days, Prometheus metrics, health.

- `rollups`: the overview's and brands list's figures for a run of closed days, counted once.
- `metrics`: `/metrics`, computed from the database at scrape time.
- `health`: `/healthz`.
"""
