"""Running one piece of work on many hosts at once.

Each host gets its own executor (built by the executor factory) and its own
thread, at most ``parallel`` at a time.  A host that fails — unreachable,
wrong credentials, or an error of the operation — is recorded and does not
stop the others.  Progress goes to standard error only when it is a terminal.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
from typing import Any, Callable, List, Optional, Sequence, TextIO

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one host returned, or the exception it failed with."""

    host: str
    value: Any = None
    error: Optional[BaseException] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Progress:
    """``[3/10] hosts done`` on a terminal; nothing otherwise."""

    def __init__(self, stream: TextIO, total: int) -> None:
        try:
            self.enabled = bool(stream.isatty()) and total > 1
        except (AttributeError, ValueError):
            self.enabled = False
        self.stream = stream
        self.total = total
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()

    def update(self, ok: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if ok else 1
            if self.enabled:
                width = 30
                filled = width * self.done // self.total
                self.stream.write("\r[%s%s] %d/%d hosts, %d failed" % (
                    "#" * filled, "." * (width - filled), self.done, self.total, self.failed))
                self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def run(hosts: Sequence[str], work: Callable[[str], Any], parallel: int,
        progress_stream: TextIO) -> List[Outcome]:
    """``work(host)`` for every host, ``parallel`` at a time; outcomes in host order."""
    progress = Progress(progress_stream, len(hosts))

    def one(host: str) -> Outcome:
        try:
            outcome = Outcome(host=host, value=work(host))
        except Exception as exc:  # every failure is reported per host
            LOG.debug("%s failed on %s", type(exc).__name__, host, exc_info=True)
            outcome = Outcome(host=host, error=exc)
        progress.update(outcome.ok)
        return outcome

    if len(hosts) == 1:
        outcomes = [one(hosts[0])]
    else:
        workers = max(1, min(int(parallel), len(hosts)))
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="smbvol-host") as pool:
            outcomes = list(pool.map(one, hosts))
    progress.finish()
    return outcomes
