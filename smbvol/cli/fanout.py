"""Running one piece of work on many hosts at once.

Each host gets its own executor (built by the executor factory) and its own
thread, at most ``parallel`` at a time.  A host that fails — unreachable,
wrong credentials, or an error of the operation — is recorded and does not
stop the others.  Each host's outcome is handed to ``on_done`` as soon as that
host ends (the command prints its error line then, not at the end), and on a
terminal a whole progress line per host goes to standard error
(``smbvol: [3/10] hv03: ok``), so that log lines never land inside it.
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


OnDone = Callable[[Outcome], None]


class Progress:
    """One line per host that ends well, ``smbvol: [3/10] hv03: ok``, on a terminal only.

    A host that fails gets its error line from ``on_done`` instead.  Lines are
    written whole, under ``lock`` (shared with the command's own stderr lines).
    """

    def __init__(self, stream: TextIO, total: int,
                 lock: Optional[threading.RLock] = None) -> None:
        try:
            self.enabled = bool(stream.isatty()) and total > 1
        except (AttributeError, ValueError):
            self.enabled = False
        self.stream = stream
        self.total = total
        self.done = 0
        self.failed = 0
        self.lock = lock if lock is not None else threading.RLock()

    def update(self, outcome: Outcome, on_done: Optional[OnDone] = None) -> None:
        with self.lock:
            self.done += 1
            self.failed += 0 if outcome.ok else 1
            if on_done is not None:
                on_done(outcome)
            if self.enabled and outcome.ok:
                self.stream.write("smbvol: [%d/%d] %s: ok\n" % (self.done, self.total,
                                                              outcome.host))
                self.stream.flush()


def run(hosts: Sequence[str], work: Callable[[str], Any], parallel: int,
        progress_stream: TextIO, on_done: Optional[OnDone] = None,
        lock: Optional[threading.RLock] = None) -> List[Outcome]:
    """``work(host)`` for every host, ``parallel`` at a time; outcomes in host order.

    ``on_done(outcome)`` is called as each host ends (under ``lock``).
    """
    progress = Progress(progress_stream, len(hosts), lock)

    def one(host: str) -> Outcome:
        try:
            outcome = Outcome(host=host, value=work(host))
        except Exception as exc:  # every failure is reported per host
            LOG.debug("%s failed on %s", type(exc).__name__, host, exc_info=True)
            outcome = Outcome(host=host, error=exc)
        progress.update(outcome, on_done)
        return outcome

    if len(hosts) == 1:
        return [one(hosts[0])]
    workers = max(1, min(int(parallel), len(hosts)))
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="smbvol-host") as pool:
        return list(pool.map(one, hosts))
