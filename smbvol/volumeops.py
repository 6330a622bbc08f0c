"""VolumeOps: the Nova-facing API — attach, detach, connect and look up volumes on one host.

``VolumeOps(executor, conf)`` works on the host its executor reaches (local
PowerShell, WinRM or PSRP).  Each call picks the driver from the
connection_info's ``driver_volume_type`` (:mod:`smbvol.drivers`), plans one
script invocation (the ``plan_*`` methods, which the CLI's ``--dry-run``
prints) and runs it (an attach first reads the VM's disks, see below)::

    executor.run(scripts.render(inv.operation, **inv.options), inv.parameters)

Around each run:

* **locks** (:mod:`smbvol.locks`): the VM lock for attach/detach, the share
  lock for connect/attach/disconnect — so a share is never unmapped while a
  volume on it is being attached (Nova bug 1461081);
* **retries** (:func:`smbvol.retry.attach_policy`, ``[hyperv]
  volume_attach_retry_count/interval``) of transient errors only; when the last
  try fails, :class:`~smbvol.exceptions.VolumeOperationFailed` carries the
  volume id, with the last error chained;
* **clean-up of a failed attach**: a try that failed on the way (a connection
  reset, a timeout: :func:`smbvol.exceptions.outcome_unknown`) may have attached
  the disk and created the mapping on the host before its answer was lost.
  Before the first try, attach reads the VM's disks (``list_attachments``, one
  read-only round trip without host lock) to learn which of its volumes were
  attached already: no answer of a later try can tell a disk attached before
  from one a lost try attached, so this is learnt up front.  When the attach
  fails for good after such a try, the disks this call may have attached are
  detached (never one attached before), then their shares are disconnected
  (``unmount_share`` keeps a share still in use and a mapping smbvol did not
  create), each step logged; what could not be cleaned is logged as an error
  and named in the :class:`~smbvol.exceptions.VolumeOperationFailed` raised;
* **errors** keep their class (kind) but their message names the volume, the
  share and the VM, and says what to do for the known cases (double hop, error
  1219, access rights, no free slot).  No message holds a secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from smbvol import drivers, exceptions, results, retry, scripts
from smbvol.drivers.base import VolumeDriver
from smbvol.drivers.iscsi import IscsiConnection, IscsiDisconnection, disk_path_of
from smbvol.envelope import ScriptResult
from smbvol.locks import LockRegistry
from smbvol.secret import iter_secrets, mask

LOG = logging.getLogger(__name__)

#: What :meth:`VolumeOps.connect_volume` returns: a share made usable (SMB) or a LUN's
#: host disk (iSCSI).
Connection = Union[results.ShareConnection, IscsiConnection]
#: What :meth:`VolumeOps.disconnect_volume` returns, per driver.
Disconnection = Union[results.ShareDisconnection, IscsiDisconnection]

#: What to do, per error class, appended to the error message.
HINTS: Tuple[Tuple[type, str], ...] = (
    (exceptions.LogonSessionMissing,
     "the host cannot pass your credentials on to the file server (the remoting double "
     "hop, error 1312): connect to the host with CredSSP, allow Kerberos delegation from the "
     "host to the file server, or set [hyperv] smb_mapping_via_scheduled_task = true"),
    (exceptions.MappingConflict,
     "the host already has a connection to this file server with other credentials "
     "(Windows error 1219): use the same credentials for every share of that server, or "
     "remove the other mapping (Remove-SmbGlobalMapping / Remove-SmbMapping)"),
    (exceptions.AccessDenied,
     "check the share credentials, and grant the Hyper-V hosts' computer accounts and "
     "NT VIRTUAL MACHINE\\Virtual Machines rights on the share and its folder"),
    (exceptions.NoFreeSlot,
     "every SCSI location of the VM is used: detach a disk, or add a SCSI controller while "
     "the VM is off"),
    (exceptions.ImageNotFound,
     "check the export and the image name Cinder returned"),
    (exceptions.ShareUnreachable,
     "check that the file server is up and reachable from the Hyper-V host (TCP 445)"),
    (exceptions.HostBusy,
     "another client holds the host-side lock; retry later or raise [hyperv] "
     "host_lock_timeout"),
)


def _hint(exc: BaseException) -> Optional[str]:
    for cls, text in HINTS:
        if isinstance(exc, cls):
            return text
    return None


def _block_device_mapping(block_device_info: Any) -> List[Mapping[str, Any]]:
    """The connection_infos of Nova's ``block_device_info`` (None or empty → [])."""
    if not block_device_info:
        return []
    if not isinstance(block_device_info, Mapping):
        raise exceptions.InvalidInput(
            field="block_device_info", value=type(block_device_info).__name__,
            reason="expected Nova's dict with a 'block_device_mapping' list")
    mapping = block_device_info.get("block_device_mapping") or []
    if not isinstance(mapping, (list, tuple)):
        raise exceptions.InvalidInput(
            field="block_device_info.block_device_mapping", value=type(mapping).__name__,
            reason="expected a list of {'connection_info': {...}, 'mount_device': ...}")
    out = []
    for i, bdm in enumerate(mapping):
        info = bdm.get("connection_info") if isinstance(bdm, Mapping) else None
        if isinstance(info, str):
            try:
                info = json.loads(info)
            except ValueError:
                info = None
        if not isinstance(info, Mapping):
            raise exceptions.InvalidInput(
                field="block_device_info.block_device_mapping[%d].connection_info" % i,
                value="<%s>" % type(info).__name__,
                reason="each entry needs the connection_info dict Cinder returned")
        out.append(info)
    return out


def connection_created(att: results.Attachment) -> bool:
    """Whether the attach made the volume's connection: a share mapping (SMB) or an
    iSCSI session (:class:`~smbvol.drivers.iscsi.IscsiAttachment`)."""
    return bool(att.mapping_created or getattr(att, "sessions_created", 0))


class VolumeOps:
    """Volume operations on the Hyper-V host reached by ``executor``.

    ``conf`` is an oslo.config ``ConfigOpts`` with :func:`smbvol.opts.register_opts`
    applied.  ``sleep`` replaces ``time.sleep`` between retries (tests).  ``locks``
    shares a :class:`~smbvol.locks.LockRegistry` between several VolumeOps; by
    default each has its own, configured from ``[hyperv] use_external_locks``.
    """

    def __init__(self, executor, conf, *, sleep: Optional[Callable[[float], None]] = None,
                 locks: Optional[LockRegistry] = None) -> None:
        self.executor = executor
        self.conf = conf
        self._sleep = sleep
        self._locks = locks if locks is not None else LockRegistry.from_conf(conf)
        self._drivers: Dict[str, VolumeDriver] = {}

    @property
    def host(self) -> str:
        return str(getattr(self.executor, "host", None) or "localhost")

    # -- drivers -----------------------------------------------------------
    def driver(self, driver_volume_type: str) -> VolumeDriver:
        """The driver instance of this VolumeOps for ``driver_volume_type``."""
        name = (driver_volume_type or "").strip().lower()
        if name not in self._drivers:
            self._drivers[name] = drivers.get_driver(name, self.conf)
        return self._drivers[name]

    def _resolve(self, connection_info: Any) -> Tuple[VolumeDriver, Any]:
        """The driver and typed properties of ``connection_info``: Cinder's dict, or the
        properties a driver already parsed (e.g. :class:`~smbvol.connection.SmbConnectionInfo`
        with a credential typed in by an operator)."""
        if not isinstance(connection_info, Mapping) and isinstance(
                getattr(connection_info, "driver_volume_type", None), str):
            return self.driver(connection_info.driver_volume_type), connection_info
        driver = self.driver(drivers.driver_type_of(connection_info))
        return driver, driver.parse(connection_info)

    # -- running -----------------------------------------------------------
    def _context(self, action: str, driver: Optional[VolumeDriver], props: Any,
                 instance_name: Optional[str]) -> str:
        text = action
        if driver is not None and props is not None:
            text += " of " + driver.describe(props)
        if instance_name:
            text += " %s VM %s" % ("to" if action == "attach" else "on", instance_name)
        return text + " on host " + self.host

    def execute(self, inv: results.Invocation, *, context: str = "", retried: bool = True,
                passthrough: Tuple[type, ...] = (),
                cleanup: Optional[Callable[[], str]] = None) -> ScriptResult:
        """Run ``inv`` (retrying transient errors when ``retried``); no lock is taken here.

        Errors keep their class; their message gains ``context`` and a hint.  Errors
        of a ``passthrough`` class are raised unchanged (the caller expects them).
        When the call fails for good after a try whose outcome is unknown
        (:func:`smbvol.exceptions.outcome_unknown`), ``cleanup()`` runs first and
        :class:`~smbvol.exceptions.VolumeOperationFailed` is raised, its message ending
        with the summary ``cleanup`` returns.
        """
        context = context or "%s on host %s" % (inv.operation, self.host)
        script = scripts.render(inv.operation, **inv.options)
        secrets = list(iter_secrets(inv.parameters))
        unknown: List[BaseException] = []

        def once() -> ScriptResult:
            try:
                return self.executor.run(script, inv.parameters)
            except exceptions.SmbvolError as exc:
                if exceptions.outcome_unknown(exc):
                    unknown.append(exc)
                raise

        attempts = 1
        try:
            if retried:
                policy = retry.attach_policy(self.conf, sleep=self._sleep, what=context)
                attempts = int(self.conf.hyperv.volume_attach_retry_count) + 1
                res = policy(once)
            else:
                res = once()
        except exceptions.SmbvolError as exc:
            if isinstance(exc, (exceptions.InvalidInput, exceptions.ScriptError) + passthrough):
                raise
            detail = str(exc)
            if isinstance(exc, exceptions.HostOperationError) and exc.detail:
                detail = str(exc.detail)  # the context below already names the host
            hint = _hint(exc)
            advice = "; what to do: " + hint if hint else ""
            if cleanup is not None and unknown:
                advice += "; " + cleanup()
            if (retried and exceptions.is_transient(exc)) or (cleanup is not None and unknown):
                message = mask("%s failed after %d attempt(s): %s%s"
                               % (context, attempts, detail, advice), secrets)
                LOG.error("%s", message)
                raise exceptions.VolumeOperationFailed(
                    message, operation=inv.operation, volume_id=inv.volume_id,
                    instance=inv.parameters.get("VMName"),
                    reason=mask(detail, secrets)) from exc
            message = mask("%s failed: %s%s" % (context, detail, advice), secrets)
            LOG.error("%s", message)
            raise type(exc)(message, **exc.kwargs) from exc
        LOG.debug("%s: done (%s)", context, inv.operation)
        return res

    # -- plans (no I/O) ------------------------------------------------------
    def plan_attach(self, connection_info: Mapping[str, Any], instance_name: str,
                    disk_bus: str = "scsi") -> results.Invocation:
        """The invocation :meth:`attach_volume` would run (after its read-only
        ``list_attachments`` of the VM, which learns what a failed attach must not detach)."""
        driver, props = self._resolve(connection_info)
        return driver.plan_attach(props, instance_name, disk_bus)

    def plan_detach(self, connection_info: Mapping[str, Any],
                    instance_name: str) -> results.Invocation:
        """The invocation :meth:`detach_volume` would run."""
        driver, props = self._resolve(connection_info)
        return driver.plan_detach(props, instance_name)

    def plan_connect(self, connection_info: Mapping[str, Any]) -> results.Invocation:
        """The invocation :meth:`connect_volume` would run."""
        driver, props = self._resolve(connection_info)
        return driver.plan_connect(props)

    def plan_disconnect(self, connection_info: Mapping[str, Any],
                        force: bool = False) -> results.Invocation:
        """The invocation :meth:`disconnect_volume` would run."""
        driver, props = self._resolve(connection_info)
        return driver.plan_disconnect(props, force=force)

    def plan_list_attachments(self, instance_name: Optional[str] = None) -> results.Invocation:
        """The invocation :meth:`list_attachments` would run."""
        return results.Invocation("list_attachments", {"VMName": instance_name or ""}, {})

    def plan_host_info(self) -> results.Invocation:
        """The invocation :meth:`get_volume_connector` would run."""
        return results.Invocation("host_info", {}, {})

    # -- attach / detach -----------------------------------------------------
    def attach_volume(self, connection_info: Mapping[str, Any], instance_name: str,
                      disk_bus: str = "scsi") -> results.Attachment:
        """Attach the volume to VM ``instance_name``.

        On the host: connect the share (mapping created if needed), attach the
        image on the VM's first free slot of ``disk_bus`` unless it is already
        attached (then ``changed`` is False), apply QoS.  If the attach fails, a
        mapping the call created is removed again.  Before that, the VM's disks are
        read once (``list_attachments``); if the answers of the tries are lost (reset,
        timeout) and the attach fails for good, the disk is detached unless it was
        attached before, and the share disconnected unless in use (module doc).
        """
        driver, props = self._resolve(connection_info)
        inv = driver.plan_attach(props, instance_name, disk_bus)
        context = self._context("attach", driver, props, instance_name)
        with self._locks.hold(self.host, instance_name, driver.lock_keys(props)):
            (before,) = self._attached_before(driver, [props], instance_name, context,
                                              inv.volume_id, inv.operation)
            res = self.execute(inv, context=context, cleanup=lambda: self._undo_attach(
                driver, [(props, before)], instance_name))
        att = driver.to_attachment(res, inv)
        LOG.info("%s: %s at %s %s:%s (%s)", context, att.disk_path, att.controller_type,
                 att.controller_number, att.controller_location,
                 "attached" if att.changed else "already attached")
        return att

    def attach_volumes(self, connection_infos: Sequence[Mapping[str, Any]],
                       instance_name: str) -> List[results.Attachment]:
        """Attach several volumes to one VM in one script invocation, all or nothing.

        Every connection_info must have the same ``driver_volume_type``.  A driver
        without a many-volume script attaches them one by one and detaches the
        ones it attached if a later one fails.
        """
        infos = list(connection_infos or ())
        if not infos:
            return []
        types = {drivers.driver_type_of(ci) for ci in infos}
        if len(types) > 1:
            raise exceptions.InvalidInput(
                field="driver_volume_type", value=sorted(types),
                reason="attach_volumes to VM %s takes volumes of one driver_volume_type; "
                       "attach the others separately" % instance_name)
        driver = self.driver(types.pop())
        props_list = [driver.parse(ci) for ci in infos]
        inv = driver.plan_attach_many(props_list, instance_name)
        if inv is None:
            return self._attach_one_by_one(infos, instance_name)
        keys = [k for p in props_list for k in driver.lock_keys(p)]
        context = "attach of %d volumes (%s) to VM %s on host %s" % (
            len(props_list), ", ".join(driver.describe(p) for p in props_list), instance_name,
            self.host)
        with self._locks.hold(self.host, instance_name, keys):
            before = self._attached_before(driver, props_list, instance_name, context,
                                           inv.volume_id, inv.operation)
            res = self.execute(inv, context=context, cleanup=lambda: self._undo_attach(
                driver, list(zip(props_list, before)), instance_name))
        atts = list(driver.to_attachments(res, inv, [driver.volume_id(p) for p in props_list]))
        LOG.info("%s: %d attached, %d already attached", context,
                 sum(1 for a in atts if a.changed), sum(1 for a in atts if not a.changed))
        return atts

    def _attached_before(self, driver: VolumeDriver, props_list: Sequence[Any],
                         instance_name: str, context: str,
                         volume_id: Optional[str], operation: str) -> List[bool]:
        """Per volume, whether VM ``instance_name`` may already have its disk (one
        read-only ``list_attachments`` of the VM; errors are reported as the attach's)."""
        inv = results.Invocation("list_attachments", {"VMName": instance_name}, {}, volume_id)
        try:
            res = self.execute(inv, context=context)
        except exceptions.HostOperationError as exc:
            # The caller asked for an attach: its error names the attach, not this read.
            raise type(exc)(str(exc), **dict(exc.kwargs, operation=operation)) from None
        disks = self._disk_attachments(res, instance_name)
        return [driver.was_attached(p, disks) for p in props_list]

    def _undo_attach(self, driver: VolumeDriver, volumes: Sequence[Tuple[Any, bool]],
                     instance_name: str) -> str:
        """Best effort, one try each: detach what a failed attach may have attached (never a
        disk attached before it), then disconnect those volumes' shares (kept when still in
        use).  No lock is taken: the caller holds the VM and share locks.  Returns a summary
        for the error message."""
        done: List[str] = []
        failed: List[str] = []
        to_disconnect: List[Any] = []
        for props, before in volumes:
            what = driver.describe(props)
            if before:
                LOG.info("clean-up of the attach to VM %s: %s was attached before; "
                         "it stays attached", instance_name, what)
                continue
            inv = driver.plan_detach(props, instance_name)
            try:
                det = driver.to_detachment(self.execute(
                    inv, context="clean-up: detach of %s from VM %s on host %s"
                    % (what, instance_name, self.host), retried=False), inv)
            except exceptions.SmbvolError as exc:
                LOG.error("clean-up of the attach to VM %s: could not detach %s: %s",
                          instance_name, what, exc)
                failed.append("detach of %s (detach it yourself)" % what)
                continue
            if det.changed:
                LOG.warning("clean-up of the attach to VM %s: detached %s", instance_name, what)
                done.append("detached %s" % what)
            to_disconnect.append(props)
        seen = set()
        for props in to_disconnect:
            key = tuple(k.lower() for k in driver.lock_keys(props)) or id(props)
            if key in seen:
                continue
            seen.add(key)
            what = driver.describe(props)
            inv = driver.plan_disconnect(props)
            try:
                disc = driver.to_disconnection(self.execute(
                    inv, context="clean-up: disconnect of %s on host %s" % (what, self.host),
                    retried=False, passthrough=(exceptions.DiskInUse,)), inv)
            except exceptions.DiskInUse:
                LOG.info("clean-up: the connection of %s stays, still in use", what)
                continue
            except exceptions.SmbvolError as exc:
                LOG.error("clean-up of the attach to VM %s: could not disconnect %s: %s",
                          instance_name, what, exc)
                failed.append("disconnect of %s" % what)
                continue
            if disc.removed:
                LOG.warning("clean-up of the attach to VM %s: disconnected %s", instance_name,
                            what)
                done.append("disconnected %s" % what)
        text = "cleaned up: %s" % (", ".join(done) or "nothing to undo")
        if failed:
            text += "; NOT cleaned up: %s" % ", ".join(failed)
        return text

    def _attach_one_by_one(self, infos: Sequence[Mapping[str, Any]],
                           instance_name: str) -> List[results.Attachment]:
        done: List[Tuple[Mapping[str, Any], results.Attachment]] = []
        try:
            for ci in infos:
                done.append((ci, self.attach_volume(ci, instance_name)))
        except Exception:
            for ci, att in reversed(done):
                if not att.changed:
                    continue  # attached before this call: it stays
                try:
                    self.detach_volume(ci, instance_name)
                    if connection_created(att):
                        # This call made the connection (share mapping, iSCSI session);
                        # disconnect keeps it when anything else still uses it.
                        self.disconnect_volume(ci)
                except exceptions.SmbvolError as exc:
                    LOG.error("rollback: cannot undo the attach of volume %s to VM %s: %s",
                              att.volume_id, instance_name, exc)
            raise
        return [att for _, att in done]

    def detach_volume(self, connection_info: Mapping[str, Any],
                      instance_name: str) -> results.Detachment:
        """Remove the volume's disk from VM ``instance_name`` (absent → ``changed`` False).

        The share stays connected; call :meth:`disconnect_volume` afterwards.
        """
        driver, props = self._resolve(connection_info)
        inv = driver.plan_detach(props, instance_name)
        context = self._context("detach", driver, props, instance_name)
        with self._locks.hold(self.host, instance_name):
            res = self.execute(inv, context=context)
        det = driver.to_detachment(res, inv)
        LOG.info("%s: %s", context, "detached" if det.changed else "was not attached")
        return det

    # -- connect / disconnect --------------------------------------------------
    def connect_volume(self, connection_info: Mapping[str, Any]) -> Connection:
        """Make the volume usable by Hyper-V on the host: mount its share and check the image
        (SMB: a :class:`~smbvol.results.ShareConnection`), or log in to its target(s) and
        find the LUN's disk (iSCSI: an :class:`~smbvol.drivers.iscsi.IscsiConnection`)."""
        driver, props = self._resolve(connection_info)
        return self._connect(driver, props)

    def _connect(self, driver: VolumeDriver, props: Any) -> Connection:
        inv = driver.plan_connect(props)
        context = self._context("connect", driver, props, None)
        with self._locks.hold(self.host, None, driver.lock_keys(props)):
            res = self.execute(inv, context=context)
        conn = driver.to_connection(res, inv)
        LOG.info("%s: %s (%s)", context, conn.disk_path,
                 "mapping created" if conn.mapping_created else
                 "local share" if conn.local else "already connected")
        return conn

    def disconnect_volume(self, connection_info: Mapping[str, Any],
                          force: bool = False) -> Disconnection:
        """Unmount the volume's share unless a disk of any VM still lies on it (SMB: a
        :class:`~smbvol.results.ShareDisconnection`), or log out of its target(s) unless a
        LUN of them is in use (iSCSI: an :class:`~smbvol.drivers.iscsi.IscsiDisconnection`).

        A share in use is never unmapped: the result then says ``removed=False``
        and lists ``in_use_by``.  Only a mapping smbvol created is removed,
        unless ``force``.
        """
        driver, props = self._resolve(connection_info)
        return self._disconnect(driver, props, force)

    def _disconnect(self, driver: VolumeDriver, props: Any, force: bool) -> Disconnection:
        inv = driver.plan_disconnect(props, force=force)
        context = self._context("disconnect", driver, props, None)
        with self._locks.hold(self.host, None, driver.lock_keys(props)):
            try:
                res = self.execute(inv, context=context, passthrough=(exceptions.DiskInUse,))
            except exceptions.DiskInUse as exc:
                disc = driver.disconnection_refused(exc, inv, self.host)
                LOG.info("%s: share kept, still used by VM(s) %s", context,
                         ", ".join(disc.in_use_by) or "(unknown)")
                return disc
        disc = driver.to_disconnection(res, inv)
        if disc.in_use_by:
            LOG.info("%s: share kept, still used by VM(s) %s", context,
                     ", ".join(disc.in_use_by))
        else:
            LOG.info("%s: %s", context, "mapping removed" if disc.removed else "nothing removed")
        return disc

    def connect_volumes(self, block_device_info: Any) -> List[Connection]:
        """:meth:`connect_volume` for every volume of Nova's ``block_device_info``."""
        return [self.connect_volume(ci) for ci in _block_device_mapping(block_device_info)]

    def disconnect_volumes(self, block_device_info: Any,
                           force: bool = False) -> List[Disconnection]:
        """:meth:`disconnect_volume` once per distinct share of ``block_device_info``."""
        seen = set()
        out = []
        for ci in _block_device_mapping(block_device_info):
            driver, props = self._resolve(ci)
            key = (driver.driver_volume_type,
                   tuple(k.lower() for k in driver.lock_keys(props)) or id(props))
            if key in seen:
                continue
            seen.add(key)
            out.append(self._disconnect(driver, props, force))
        return out

    # -- lookups ---------------------------------------------------------------
    def get_disk_resource_path(self, connection_info: Mapping[str, Any]) -> str:
        """The path Hyper-V uses for the volume's disk.

        ``smbfs``: the image's UNC path, or its local path for a share on this host.
        ``iscsi``: the LUN's host disk as ``\\\\.\\PHYSICALDRIVE<n>``, the ``disk_path``
        :meth:`list_attachments` reports for that passthrough disk.  Runs the idempotent
        connect (``mount_share`` / ``iscsi_connect``): nothing changes on the host when the
        volume is already connected, as Nova expects when it asks.
        """
        driver, props = self._resolve(connection_info)
        return driver.disk_path(self._connect(driver, props), props)

    def get_disk_path_mapping(self, block_device_info: Any) -> Dict[str, str]:
        """Volume id (Nova's ``serial``) → disk path, for every volume of ``block_device_info``."""
        out: Dict[str, str] = {}
        for ci in _block_device_mapping(block_device_info):
            driver, props = self._resolve(ci)
            vid = driver.volume_id(props)
            if not vid:
                raise exceptions.InvalidConnectionInfo(
                    field="serial", value=None,
                    reason="a volume of block_device_info has neither serial nor "
                           "data.volume_id (%s)" % driver.describe(props))
            out[vid] = driver.disk_path(self._connect(driver, props), props)
        return out

    def list_attachments(self, instance_name: Optional[str] = None
                         ) -> List[results.DiskAttachment]:
        """Every hard disk of VM ``instance_name``, or of every VM on the host.

        Read only (``list_attachments``, no lock).  A passthrough disk comes with its disk
        number, ``disk_path`` ``\\\\.\\PHYSICALDRIVE<n>`` (the path
        :meth:`get_disk_resource_path` gives for an iSCSI volume) and, when an iSCSI session
        reaches it, the target IQN, LUN and portal; those are None for image files.
        """
        inv = self.plan_list_attachments(instance_name)
        context = "listing the disks of %s on host %s" % (
            "VM " + instance_name if instance_name else "every VM", self.host)
        res = self.execute(inv, context=context, retried=False)
        return self._disk_attachments(res, instance_name)

    @staticmethod
    def _disk_attachments(res: ScriptResult, instance_name: Optional[str]
                          ) -> List[results.DiskAttachment]:
        out = []
        for r in results.as_list(res.result.get("attachments")):
            number = results.as_int(r.get("disk_number"))
            path = r.get("disk_path") or r.get("path") or None
            if number is not None and not path:
                path = disk_path_of(number)
            out.append(results.DiskAttachment(
                vm_name=str(r.get("vm_name") or instance_name or ""),
                vm_id=r.get("vm_id") or None,
                controller_type=r.get("controller_type") or None,
                controller_number=results.as_int(r.get("controller_number")),
                controller_location=results.as_int(r.get("controller_location")),
                disk_path=path,
                share_path=r.get("share_path") or r.get("share") or None,
                maximum_iops=results.as_int(r.get("maximum_iops")),
                minimum_iops=results.as_int(r.get("minimum_iops")),
                disk_number=number,
                target_iqn=r.get("target_iqn") or None,
                target_lun=results.as_int(r.get("target_lun")),
                target_portal=r.get("target_portal") or None,
                host=res.host))
        return out

    def get_volume_connector(self) -> results.VolumeConnector:
        """The host's connector for Cinder: name, address, iSCSI initiators, multipath."""
        inv = self.plan_host_info()
        res = self.execute(inv, context="reading the facts of host %s" % self.host,
                           retried=False)
        r = res.result
        ips = results.as_tuple(r.get("ipv4")) + results.as_tuple(r.get("ipv6"))
        iqns = results.as_tuple(r.get("iscsi_initiator_iqns"))
        return results.VolumeConnector(
            host=str(r.get("host_name") or self.host), ip=ips[0] if ips else None,
            initiator=iqns[0] if iqns else None, initiators=iqns,
            multipath=bool(r.get("multipath")), fqdn=r.get("fqdn") or None, ips=ips)

    # -- live migration, host reboot ---------------------------------------------
    def pre_live_migration(self, block_device_info: Any) -> List[Connection]:
        """On the destination host: connect every volume before the VM arrives."""
        return self.connect_volumes(block_device_info)

    def post_live_migration(self, block_device_info: Any) -> List[Disconnection]:
        """On the source host: disconnect the volumes the VM took away (shares in use stay)."""
        return self.disconnect_volumes(block_device_info)

    def ensure_volumes_connected(self, block_device_info: Any) -> List[Connection]:
        """Before power-on (e.g. after a host reboot): reconnect every volume's share."""
        return self.connect_volumes(block_device_info)
