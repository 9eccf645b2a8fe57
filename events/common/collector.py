"""Python's cyclic garbage collector, set for the long-running processes (processor, gunicorn workers).

With the defaults, the collector took 1.8 s of a 16 s drain of 20,000 deliveries
(bench/processor_steps.py): every full collection walked the ~88,000 objects that start-up leaves
alive for good (modules, settings, caches), and a batch, which holds thousands of model instances
until it ends, set off a young collection every 700 new objects. Frozen start-up objects and a
young generation of 10,000 brought that to 0.14 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# (young, middle, old); Python's defaults are (700, 10, 10).
THRESHOLDS = (10_000, 10, 10)


def settle() -> None:
    """Collect once, freeze what is left (never scanned again) and collect the young generation less
    often. Call once the process has loaded what it keeps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def settled() -> Iterator[None]:
    """settle() for the block, then the collector as it was: a command may run inside a longer
    process (tests call commands)."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    settle()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:
            gc.unfreeze()
