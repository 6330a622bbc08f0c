"""Retry policies (tenacity) built from configuration.

Only errors that :func:`smbvol.exceptions.is_transient` calls transient are
retried; each retry is logged at WARNING with the attempt number and the error
(messages never hold secrets).  ``sleep`` is injectable so tests never wait.
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
           sleep: Optional[Sleep] = None) -> tenacity.Retrying:
    """Retry transient errors ``retry_count`` times, ``interval`` seconds apart."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(0, int(retry_count)) + 1),
        wait=tenacity.wait_fixed(max(0.0, float(interval))),
        retry=tenacity.retry_if_exception(exceptions.is_transient),
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
    """``[smbvol] connection_retry_count/interval`` for reaching the host."""
    return policy(what, conf.smbvol.connection_retry_count,
                  conf.smbvol.connection_retry_interval, sleep)
