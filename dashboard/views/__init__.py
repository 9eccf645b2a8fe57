"""The dashboard's pages, one module per page family; `dashboard/urls.py` names them.

- `overview`: the overview (`/`), with the setup help while nothing has arrived.
- `brands`: the brands list and a brand's timeline, their charts and CSV exports.
- `actions`: one action's history, field by field, with the deliveries behind each event.
- `deliveries`: the deliveries log, replaying deliveries (staff), the refused attempts.
- `alerts`: delay alerts: list, detail, evidence CSV, acknowledge and resolve (staff).
- `forwarding`: forwarding endpoints (staff): their health, attempts and messages, a test message,
  replaying one message or every failed one since a time.
- `reports`: the locking calendar, performance by dimension, the search across brands, and the
  money by status of the overview and a brand's page.
- `setup`: the setup page (staff): templates to paste into impact.com, a test postback.
- `common`: what several families share: the period asked for, CSV requests, the charts' data.

Thin: queries live on events' querysets, maths in small pure modules beside this package.
Every page runs a fixed number of queries whatever the data size (tests assert it).
"""
