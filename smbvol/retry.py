"""Retry policies (tenacity) built from configuration.

Which errors are retried is decided in :mod:`smbvol.exceptions`: the attach
(operation) policy retries what :func:`~smbvol.exceptions.is_transient` calls
transient, the connection policy used inside the remote executors only what
:func:`~smbvol.exceptions.is_connection_failure` calls a failure to reach the
host (not a timeout), so the two layers never multiply.  Each retry is logged
at WARNING with the attempt number and the error (messages never hold
secrets).  ``sleep`` is injectable so tests never wait.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import tenacity

from smbvol import exceptions

LOG = logging.getLogger(__name__)

Sleep = Callable[[float], None]


def _log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        LOG.warning("%s: attempt %d failed (%s: %s); retrying in %.1f s", what,
                    state.attempt_number, type(exc).__name__, exc,
                    state.next_action.sleep if state.next_action else 0.0)
    return before_sleep


def policy(what: str, retry_count: int, interval: float,
           sleep: Optional[Sleep] = None,
           retryable: Callable[[BaseException], bool] = exceptions.is_transient
           ) -> tenacity.Retrying:
    """Retry the errors ``retryable`` accepts ``retry_count`` times, ``interval`` s apart."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(0, int(retry_count)) + 1),
        wait=tenacity.wait_fixed(max(0.0, float(interval))),
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=_log_retry(what),
        sleep=time.sleep if sleep is None else sleep,
        reraise=True,
    )


def attach_policy(conf, sleep: Optional[Sleep] = None, what: str = "volume attach"
                  ) -> tenacity.Retrying:
    """Nova-compatible ``[hyperv] volume_attach_retry_count/interval``."""
    return policy(what, conf.hyperv.volume_attach_retry_count,
                  conf.hyperv.volume_attach_retry_interval, sleep)


def connection_policy(conf, sleep: Optional[Sleep] = None, what: str = "connection"
                      ) -> tenacity.Retrying:
    """``[smbvol] connection_retry_count/interval`` for reaching the host.

    Retries only :func:`smbvol.exceptions.is_connection_failure` errors; a timeout
    is left to the operation policy around it.
    """
    return policy(what, conf.smbvol.connection_retry_count,
                  conf.smbvol.connection_retry_interval, sleep,
                  retryable=exceptions.is_connection_failure)
