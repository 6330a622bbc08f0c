"""In-process locks per (host, share) and per (host, VM), with optional file locks.

The templates already serialise on the host with named system mutexes; these
locks come first, in the client process, so that two threads of one client
never even send conflicting scripts at once:

* the **share lock** ``(host, share root)`` is held around mount, attach and
  unmount of a share, so a share cannot be unmapped while a volume on it is
  being attached (Nova bug 1461081): the unmount waits for the attach, then
  sees the new disk and keeps the mapping;
* the **VM lock** ``(host, VM name)`` is held around attach and detach, so slot
  choice for one VM happens one script at a time.

Lock order is always VM first, then shares in sorted order, so operations that
take several locks cannot deadlock.  Keys are case-insensitive, as Windows
names are.

Without external locks each :class:`LockRegistry` has its own semaphores
(oslo.concurrency ``Semaphores``): there is no module-level lock table, and two
registries do not serialise each other.  With ``[hyperv] use_external_locks``
the same keys are also taken as file locks in ``[hyperv] lock_path``, so
several processes on this machine serialise; because a POSIX file lock belongs
to the process (a second ``fcntl`` lock of the same file in the same process
succeeds at once), the in-process half of an external lock is then
oslo.concurrency's process-wide semaphore of that name, so two registries (two
VolumeOps) of one process serialise too.

A name that is not well-formed Unicode (a lone surrogate, as ``os.fsdecode``
makes of non-UTF-8 bytes) is refused with :class:`~smbvol.exceptions.InvalidInput`
naming the field, before any lock is taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Iterable, Iterator, Optional

from oslo_concurrency import lockutils

from smbvol import exceptions

LOG = logging.getLogger(__name__)

LOCK_FILE_PREFIX = "smbvol-"


#: The field a lock name comes from, for the error about a malformed one.
_FIELDS = {"vm": "instance_name (VM name)", "share": "share", "host": "host"}
#: Lock keys of iSCSI targets start with this (smbvol.drivers.iscsi.LOCK_PREFIX).
_ISCSI_KEY = "iscsi:"


def _checked(kind: str, name: str) -> str:
    try:
        (name or "").encode("utf-8")
    except UnicodeEncodeError:
        field = _FIELDS.get(kind, kind)
        if kind == "share" and (name or "").startswith(_ISCSI_KEY):
            field = "target_iqn"
        raise exceptions.InvalidInput(
            field=field, value="<not valid Unicode>",
            reason="the text holds a lone surrogate (undecodable bytes); pass well-formed "
                   "UTF-8 text") from None
    return name


def lock_name(kind: str, host: str, name: str) -> str:
    """A stable lock name for ``(host, name)``: ``<kind>-<sha256 prefix>`` (file-name safe).

    :class:`~smbvol.exceptions.InvalidInput` if ``host`` or ``name`` is not valid Unicode.
    """
    key = "%s|%s|%s" % (kind, _checked("host", host).lower(), _checked(kind, name).lower())
    return "%s-%s" % (kind, hashlib.sha256(key.encode("utf-8")).hexdigest()[:32])


class LockRegistry:
    """The locks of one :class:`smbvol.VolumeOps` (or of whoever shares this registry)."""

    def __init__(self, external: bool = False, lock_path: Optional[str] = None) -> None:
        if external and not lock_path:
            raise exceptions.ConfigError(
                option="hyperv.lock_path",
                reason="use_external_locks is set but lock_path is empty; set [hyperv] "
                       "lock_path to a directory writable by this process")
        self.external = bool(external)
        self.lock_path = lock_path
        self._semaphores = lockutils.Semaphores()

    @classmethod
    def from_conf(cls, conf) -> "LockRegistry":
        """Built from ``[hyperv] use_external_locks`` and ``[hyperv] lock_path``."""
        return cls(external=conf.hyperv.use_external_locks, lock_path=conf.hyperv.lock_path)

    @contextlib.contextmanager
    def _lock(self, kind: str, host: str, name: str, blocking: bool = True) -> Iterator[None]:
        lname = lock_name(kind, host, name)
        LOG.debug("waiting for the %s lock of %r on %r", kind, name, host)
        # External: oslo's process-wide semaphores (None), as file locks are per process.
        semaphores = None if self.external else self._semaphores
        with lockutils.lock(lname, lock_file_prefix=LOCK_FILE_PREFIX, external=self.external,
                            lock_path=self.lock_path, do_log=False,
                            semaphores=semaphores, blocking=blocking):
            LOG.debug("holding the %s lock of %r on %r", kind, name, host)
            try:
                yield
            finally:
                LOG.debug("releasing the %s lock of %r on %r", kind, name, host)

    def share(self, host: str, share: str,
              blocking: bool = True) -> "contextlib.AbstractContextManager[None]":
        """The lock of ``share`` (its root, ``\\\\server\\share``) as seen from ``host``.

        With ``blocking=False`` a lock held elsewhere raises
        ``oslo_concurrency.lockutils.AcquireLockFailedException`` at once.
        """
        return self._lock("share", host, share, blocking)

    def vm(self, host: str, vm_name: str,
           blocking: bool = True) -> "contextlib.AbstractContextManager[None]":
        """The lock of VM ``vm_name`` on ``host`` (``blocking`` as for :meth:`share`)."""
        return self._lock("vm", host, vm_name, blocking)

    @contextlib.contextmanager
    def hold(self, host: str, vm_name: Optional[str] = None,
             shares: Iterable[str] = ()) -> Iterator[None]:
        """The VM lock (if any), then every share lock in sorted order (duplicates once)."""
        shares = list(shares)
        if vm_name is not None:
            _checked("vm", vm_name)
        for share in shares:
            _checked("share", share or "")
        unique = sorted({s.lower(): s for s in shares if s}.items())
        with contextlib.ExitStack() as stack:
            if vm_name is not None:
                stack.enter_context(self.vm(host, vm_name))
            for _, share in unique:
                stack.enter_context(self.share(host, share))
            yield
