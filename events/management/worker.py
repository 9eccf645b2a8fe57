"""The loop shared by the long-running commands (processor, dispatcher): work while there is work,
look again every `poll` seconds when idle, wait and reconnect after a database error, and stop
cleanly after the current round on SIGTERM or SIGINT."""

import logging
import signal
import threading
from collections.abc import Callable

from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

# After a database error, a worker tries again after this long.
RETRY_SECONDS = 2.0


class WorkerCommand(BaseCommand):
    logger: logging.Logger

    def listen_for_stop(self) -> None:
        self.stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._stop)

    def run_loop(self, work: Callable[[], bool], poll: float) -> None:
        """Call `work()` (True: it found something to do) until stopped."""
        while not self.stop.is_set():
            try:
                if not work():
                    self.stop.wait(poll)
            except DatabaseError as exc:
                self.logger.error("database error, retrying in %s s: %s", RETRY_SECONDS, exc)
                close_old_connections()
                self.stop.wait(RETRY_SECONDS)

    def _stop(self, signum, frame):
        self.logger.info("signal %s: stopping after the current round", signum)
        self.stop.set()
