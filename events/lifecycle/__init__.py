"""An action's history as state transitions (tracked -> modified -> reversed).

- `rules`: the decisions, pure: the kind of a change, its order against the others, the diff,
  the delay.
- `apply`: those decisions against the database, a batch of changes at a time, under the
  actions' row locks.
"""

from .apply import Change, Result, apply, apply_batch

__all__ = ["Change", "Result", "apply", "apply_batch"]
