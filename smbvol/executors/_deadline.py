"""One deadline and one output budget per call, enforced under the HTTP libraries.

pypsrp and pywinrm give each HTTP request its own read timeout, and pypsrp
retries a Receive that timed out five more times; a host that drips its answer
one byte a second never trips a read timeout at all.  So the remote executors
do not rely on them: :class:`CallBudget` holds the call's deadline (from
``script_timeout``), and :class:`SessionGuard`, installed on the
``requests.Session`` the library uses, applies it to every request of the call:

* each request's connect and read timeouts are cut to the time left;
* a watchdog shuts the sockets of the session down at the deadline, which ends
  a request that is still receiving (dripped or slow answers);
* a read timeout becomes :class:`~smbvol.exceptions.ExecutorTimeout` *before*
  the library sees it (so it cannot retry it), naming the setting that fired
  (``script_timeout`` at the deadline, ``read_timeout`` for one request);
* answers are read with a byte budget (:meth:`CallBudget.wire_limit`), so no
  answer can fill the memory before the output cap is checked.

Clean-up after a failure (stopping the pipeline, closing the shell) runs with a
short budget of its own (:func:`cleanup_budget`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Optional

import requests

from smbvol import exceptions

Clock = Callable[[], float]

#: Default cap on what one script may print (``[smbvol] max_output_bytes``).
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
#: Seconds a clean-up after a failure may take, at most.
CLEANUP_SECONDS = 5.0
_READ_CHUNK = 64 * 1024


@dataclasses.dataclass
class CallBudget:
    """The deadline and output budget of one call (all attempts, all requests)."""

    timeout: float
    clock: Clock = time.monotonic
    max_output: int = DEFAULT_MAX_OUTPUT
    setting: str = "script_timeout"
    start: float = dataclasses.field(default=0.0)
    #: Bytes of HTTP answers read so far in this call.
    received: int = 0
    #: Set once the script may have started on the host (the command was sent).
    script_started: bool = False

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def deadline(self) -> float:
        return self.start + self.timeout

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def wire_limit(self) -> int:
        """Bytes of answers a call may read: base64 and XML make output ~1.4-3x bigger."""
        return 3 * int(self.max_output) + 1024 * 1024

    def timeout_error(self, host: str) -> exceptions.ExecutorTimeout:
        return exceptions.ExecutorTimeout(host=host, elapsed=self.elapsed(),
                                          timeout=self.timeout, setting=self.setting)

    def check(self, host: str) -> None:
        """:class:`ExecutorTimeout` if the deadline has passed."""
        if self.expired():
            raise self.timeout_error(host)


def cleanup_budget(operation_timeout: float, clock: Clock = time.monotonic) -> CallBudget:
    """A short budget for clean-up after a failure (stop, signal, delete)."""
    return CallBudget(min(CLEANUP_SECONDS, max(1.0, float(operation_timeout))), clock=clock,
                      setting="clean-up")


def _cap(timeout: Any, remaining: float) -> Any:
    remaining = max(0.001, remaining)
    if timeout is None:
        return (remaining, remaining)
    if isinstance(timeout, tuple):
        return tuple(remaining if t is None else min(float(t), remaining) for t in timeout)
    return min(float(timeout), remaining)


def _read_part(timeout: Any) -> Optional[float]:
    if isinstance(timeout, tuple):
        return None if timeout[1] is None else float(timeout[1])
    return None if timeout is None else float(timeout)


class SessionGuard:
    """Applies the current :class:`CallBudget` to every request of one ``requests.Session``."""

    def __init__(self, host: str, read_timeout: float) -> None:
        self.host = host
        self.read_timeout = float(read_timeout)
        self.budget: Optional[CallBudget] = None
        #: The clean-up budget of the call, once one is needed (see cleanup_budget).
        self.cleanup: Optional[CallBudget] = None
        self._connections: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def active(self, budget: CallBudget) -> Iterator[CallBudget]:
        """Apply ``budget`` to the requests made inside the block."""
        previous, self.budget = self.budget, budget
        try:
            yield budget
        finally:
            self.budget = previous

    # -- installation -----------------------------------------------------------
    def install(self, session: requests.Session) -> requests.Session:
        """Guard ``session`` (idempotent) and return it."""
        if getattr(session, "_smbvol_guard", None) is self:
            return session
        original = session.send

        def send(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            return self.send(original, request, **kwargs)

        session.send = send  # type: ignore[method-assign]
        session._smbvol_guard = self  # type: ignore[attr-defined]
        for adapter in session.adapters.values():
            self._track(adapter)
        return session

    def _track(self, adapter: Any) -> None:
        manager = getattr(adapter, "poolmanager", None)
        if manager is None:
            return
        classes = dict(manager.pool_classes_by_scheme)
        for scheme, make_pool in classes.items():
            classes[scheme] = self._tracking(make_pool)
        manager.pool_classes_by_scheme = classes
        manager.clear()

    def _tracking(self, make_pool: Callable[..., Any]) -> Callable[..., Any]:
        connections = self._connections

        def make(*args: Any, **kwargs: Any) -> Any:
            pool = make_pool(*args, **kwargs)
            new_conn = pool._new_conn

            def tracked() -> Any:
                conn = new_conn()
                connections.add(conn)
                return conn

            pool._new_conn = tracked
            return pool

        return make

    def abort(self) -> None:
        """Shut down every socket of the session (ends a request blocked in recv)."""
        for conn in list(self._connections):
            sock = getattr(conn, "sock", None)
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- one request ------------------------------------------------------------
    def send(self, original: Callable[..., requests.Response], request: requests.PreparedRequest,
             **kwargs: Any) -> requests.Response:
        budget = self.budget
        if budget is None:
            return original(request, **kwargs)
        remaining = budget.remaining()
        if remaining <= 0:
            raise budget.timeout_error(self.host)
        configured = kwargs.get("timeout")
        kwargs["timeout"] = _cap(configured, remaining)
        configured_read = _read_part(configured)
        deadline_bounds = configured_read is None or remaining <= configured_read
        kwargs["stream"] = True
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            self.abort()

        timer = threading.Timer(remaining, watchdog)
        timer.daemon = True
        timer.start()
        try:
            response = original(request, **kwargs)
            self._read(response, budget)
            return response
        except exceptions.SmbvolError:
            raise
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout) as exc:
            if fired.is_set() or deadline_bounds or budget.expired():
                raise budget.timeout_error(self.host) from None
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                raise exceptions.TransportError(
                    host=self.host, reason="no connection within %s s (read_timeout)"
                    % configured_read) from None
            raise exceptions.ExecutorTimeout(
                host=self.host, elapsed=budget.elapsed(), timeout=configured_read,
                setting="read_timeout") from None
        except Exception:
            if fired.is_set() or budget.expired():
                raise budget.timeout_error(self.host) from None
            raise
        finally:
            timer.cancel()

    def _read(self, response: requests.Response, budget: CallBudget) -> None:
        """Read the body within the call's byte budget (``response.content`` after this)."""
        limit = budget.wire_limit()
        chunks = []
        try:
            for chunk in response.iter_content(_READ_CHUNK):
                budget.received += len(chunk)
                if budget.received > limit:
                    raise exceptions.OutputLimitExceeded(host=self.host,
                                                         limit=int(budget.max_output))
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)  # type: ignore[attr-defined]
        response._content_consumed = True  # type: ignore[attr-defined]
