"""Delay alerts: a change with no postback (or a postback this late) after DELAY_ALERT_AFTER.

- `state`: open or join a brand's active alert, add evidence, acknowledge, resolve; maintenance
  windows make an alert *expected* (shown, not notified).
- `late`: late postbacks, from the hook run after each processed batch.
- `missing`: changes impact.com's API reported, matched with postbacks; backfill.
- `reconcile`: reading the API within its request budget.
- `silent`: brands that stopped sending.
- `stalled`: deliveries stored and not applied for too long (no processor running).
- `notify`: email and webhook transports, reminders.
- `watcher`: one pass of all of the above, as `manage.py watch_delays` runs it.
"""

from .late import after_batch
from .state import acknowledge, resolve

__all__ = ["acknowledge", "after_batch", "resolve"]
