"""An action's history as state transitions (tracked -> modified -> reversed).

- `rules`: the decisions, pure: the kind of a change, its order against the others, the diff,
  the delay.
- `apply`: those decisions against the database: one change per call, under the action's row lock.
"""

from .apply import Result, apply, can_create, create, forget_cached

__all__ = ["Result", "apply", "can_create", "create", "forget_cached"]
