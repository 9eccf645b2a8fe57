"""Forwarding: every change of an action, once and in order per action, signed, to the publisher's
own endpoints (Standard Webhooks).

- `outbox`: the messages of a processed batch, written in the batch's transaction.
- `signing`: the Standard Webhooks headers of a message (several secrets during a rotation).
- `targets`: where a message may go (https, no private address unless allowed) and the HTTP call.
- `dispatch`: claiming due messages (skip locked), sending them, retries, failures and their alerts,
  replays and test messages.
"""

from .dispatch import dispatch_all, dispatch_due, replay_failed, replay_message, send_test
from .outbox import write_messages

__all__ = ["dispatch_all", "dispatch_due", "replay_failed", "replay_message", "send_test", "write_messages"]
