"""The ``iscsi`` driver: iSCSI LUNs attached to VMs as passthrough disks.

What the planned scripts do on the Hyper-V host (see ``ps_templates/iscsi_*.ps1.j2``):

* ``iscsi_connect`` — add each path's target portal if the initiator does not
  know it, log in to the target (persistent, so it comes back after a reboot;
  one-way CHAP when the connection_info has ``auth_method: CHAP``; MPIO when
  several paths are given and MPIO claims iSCSI disks), wait a bounded time
  for the LUN's disk and match it by target IQN and LUN.  An existing session
  is reused.
* ``iscsi_attach`` — connect, take the disk offline on the host, attach it to
  the VM as a passthrough disk on the first free slot (idempotent by disk
  number); sessions and portals the call created are removed if the attach
  fails.
* ``iscsi_detach`` — remove the VM's passthrough disk of that LUN; absent is
  no change.
* ``iscsi_disconnect`` — log out of the target only when no LUN of it is
  attached to any VM; otherwise the host answers ``disk_in_use`` naming the
  VMs and LUNs (:class:`~smbvol.exceptions.DiskInUse`).

The CHAP secret travels as a PSCredential and is handed to the initiator
through a .NET call of the CIM method ``MSFT_iSCSITarget.Connect``, never as a
cmdlet parameter (which module logging would record).

``access_mode: ro``: there is no verified read-only passthrough attach, so
such a volume is refused unless ``[hyperv] allow_read_only_as_read_write`` is
set, as for SMB volumes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from smbvol import connection, exceptions, results
from smbvol.drivers.base import VolumeDriver
from smbvol.envelope import ScriptResult
from smbvol.secret import MASK

LOG = logging.getLogger(__name__)

#: CHAP secret lengths the Microsoft iSCSI initiator accepts (ISDSC_SHORT_CHAP_SECRET below).
CHAP_SECRET_MIN = 12
CHAP_SECRET_MAX = 16
#: Prefix of the lock keys of a target (the templates use the same keys for their mutexes).
LOCK_PREFIX = "iscsi:"


@dataclasses.dataclass(frozen=True)
class IscsiPath(results._Result):
    """One path in use: portal, target IQN, LUN, and whether the call logged in."""

    portal: str
    target_iqn: str
    target_lun: int
    session_created: bool


@dataclasses.dataclass(frozen=True)
class IscsiConnection(results._Result):
    """An iSCSI LUN made usable by Hyper-V: its host disk (number and ``\\\\.\\PHYSICALDRIVEn``)."""

    disk_number: int
    disk_path: str
    target_iqn: str
    target_lun: int
    paths: Tuple[IscsiPath, ...]
    portals_added: Tuple[str, ...]
    sessions_created: int
    multipath: bool
    changed: bool
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()

    # What VolumeOps reports for any connection (an iSCSI LUN is never a share mapping).
    @property
    def mapping_created(self) -> bool:
        return self.sessions_created > 0

    @property
    def local(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class IscsiDisconnection(results._Result):
    """The outcome of logging out of the target(s) of a LUN.

    ``removed``/``logged_out`` is False when there was no session, and when a LUN
    of the target is attached to a VM: the host then refuses (``disk_in_use``)
    and :meth:`ISCSIVolumeDriver.disconnection_refused` fills ``in_use_by`` and
    ``luns_in_use``; the target stays logged in.
    """

    target_iqns: Tuple[str, ...]
    sessions_removed: int
    logged_out: bool
    changed: bool
    #: When the host refused (``disk_in_use``): the VMs and LUNs that keep the target.
    in_use_by: Tuple[str, ...] = ()
    luns_in_use: Tuple[int, ...] = ()
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()

    @property
    def removed(self) -> bool:
        return self.logged_out


@dataclasses.dataclass(frozen=True)
class IscsiAttachment(results.Attachment):
    """An iSCSI LUN attached to a VM as a passthrough disk.

    There is no share mapping: ``mapping_created`` is False and ``mapping_kind``
    None.  What the call connected is ``sessions_created``, the iSCSI sessions it
    logged in (0 when every path was logged in before); ``disk_number`` is the
    LUN's disk on the host (``disk_path`` is ``\\\\.\\PHYSICALDRIVEn``).
    """

    disk_number: Optional[int] = None
    sessions_created: int = 0

    @property
    def connection_created(self) -> bool:
        """Whether this call logged in to the target (what a rollback logs out again)."""
        return self.sessions_created > 0


class ISCSIVolumeDriver(VolumeDriver):
    """Volumes of Cinder's iSCSI drivers (``driver_volume_type: iscsi``)."""

    driver_volume_type = "iscsi"
    attach_kind = "passthrough attach"
    medium = "LUN"

    # -- connection_info ---------------------------------------------------
    def parse(self, connection_info: Mapping[str, Any]) -> connection.IscsiConnectionInfo:
        props = connection.parse_iscsi(connection_info)
        if props.chap is not None:
            length = len(props.chap.password)
            if not CHAP_SECRET_MIN <= length <= CHAP_SECRET_MAX:
                raise exceptions.InvalidConnectionInfo(
                    field="data.auth_password", value=MASK,
                    reason="has %d characters; the Microsoft iSCSI initiator accepts CHAP "
                           "secrets of %d to %d characters: set a CHAP secret of that length "
                           "on the target" % (length, CHAP_SECRET_MIN, CHAP_SECRET_MAX))
        return props

    def volume_id(self, props: connection.IscsiConnectionInfo) -> Optional[str]:
        return props.serial or props.volume_id

    def describe(self, props: connection.IscsiConnectionInfo) -> str:
        first = props.targets[0]
        where = "iSCSI target %s LUN %d via %s" % (first.iqn, first.lun, first.portal)
        if props.multipath:
            where += " and %d more path(s)" % (len(props.targets) - 1)
        vid = self.volume_id(props)
        return "volume %s (%s)" % (vid, where) if vid else "volume %s" % where

    def lock_keys(self, props: connection.IscsiConnectionInfo) -> Tuple[str, ...]:
        keys: List[str] = []
        for target in props.targets:
            key = LOCK_PREFIX + target.iqn.lower()
            if key not in keys:
                keys.append(key)
        return tuple(sorted(keys))


    def _target_params(self, props: connection.IscsiConnectionInfo) -> Dict[str, Any]:
        return {
            "TargetPortals": [t.portal for t in props.targets],
            "TargetIqns": [t.iqn for t in props.targets],
            "TargetLuns": [t.lun for t in props.targets],
        }

    def _login_params(self, props: connection.IscsiConnectionInfo) -> Dict[str, Any]:
        params = self._target_params(props)
        params["Multipath"] = props.multipath
        if props.chap is not None:
            params["ChapCredential"] = props.chap
        return params

    # -- plans -------------------------------------------------------------
    def plan_connect(self, props: connection.IscsiConnectionInfo) -> results.Invocation:
        params = self._login_params(props)
        params["LockTimeoutSeconds"] = self._lock_timeout()
        return results.Invocation("iscsi_connect", params, {}, self.volume_id(props))

    def plan_disconnect(self, props: connection.IscsiConnectionInfo,
                        force: bool = False) -> results.Invocation:
        if force:
            LOG.warning("disconnect of %s: force is not supported for iSCSI; a target with a "
                        "LUN attached to a VM is never logged out", self.describe(props))
        params = self._target_params(props)
        params["LockTimeoutSeconds"] = self._lock_timeout()
        return results.Invocation("iscsi_disconnect", params, {}, self.volume_id(props))

    def plan_attach(self, props: connection.IscsiConnectionInfo, instance_name: str,
                    disk_bus: str = "scsi") -> results.Invocation:
        instance_name = self.check_instance_name(instance_name)
        bus = self.check_disk_bus(disk_bus, instance_name)
        self._check_writable(props, instance_name)
        params: Dict[str, Any] = {"VMName": instance_name}
        params.update(self._login_params(props))
        params["DiskBus"] = bus
        params["LockTimeoutSeconds"] = self._lock_timeout()
        return results.Invocation("iscsi_attach", params, {}, self.volume_id(props))

    def was_attached(self, props: connection.IscsiConnectionInfo,
                     attachments: Sequence[results.DiskAttachment]) -> bool:
        """A passthrough disk reached through one of the volume's targets and LUN, or a
        passthrough disk whose target the host could not tell (a doubt answers True)."""
        wanted = {(t.iqn.lower(), t.lun) for t in props.targets}
        for a in attachments:
            if a.disk_number is None:
                continue  # an image file
            if a.target_iqn is None or (a.target_iqn.lower(), a.target_lun) in wanted:
                return True
        return False

    def plan_detach(self, props: connection.IscsiConnectionInfo,
                    instance_name: str) -> results.Invocation:
        instance_name = self.check_instance_name(instance_name)
        params: Dict[str, Any] = {"VMName": instance_name}
        params.update(self._target_params(props))
        params["LockTimeoutSeconds"] = self._lock_timeout()
        return results.Invocation("iscsi_detach", params, {}, self.volume_id(props))

    # -- results -------------------------------------------------------------
    def to_connection(self, res: ScriptResult, inv: results.Invocation) -> IscsiConnection:
        r = res.result
        number = results.as_int(r.get("disk_number"))
        if number is None:
            raise exceptions.MalformedEnvelope(
                operation=inv.operation, excerpt="",
                reason="no disk_number for target %s" % inv.parameters["TargetIqns"][0])
        paths = tuple(
            IscsiPath(portal=str(p.get("portal") or ""),
                      target_iqn=str(p.get("target_iqn") or ""),
                      target_lun=results.as_int(p.get("target_lun")) or 0,
                      session_created=bool(p.get("session_created")))
            for p in results.as_list(r.get("paths")))
        return IscsiConnection(
            disk_number=number,
            disk_path=str(r.get("disk_path") or disk_path_of(number)),
            target_iqn=str(r.get("target_iqn") or inv.parameters["TargetIqns"][0]),
            target_lun=_int(r.get("target_lun"), inv.parameters["TargetLuns"][0]),
            paths=paths,
            portals_added=results.as_tuple(r.get("portals_added")),
            sessions_created=results.as_int(r.get("sessions_created")) or 0,
            multipath=bool(r.get("multipath")),
            changed=bool(r.get("changed")),
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings)

    def to_disconnection(self, res: ScriptResult, inv: results.Invocation
                         ) -> IscsiDisconnection:
        r = res.result
        return IscsiDisconnection(
            target_iqns=results.as_tuple(r.get("target_iqns")),
            sessions_removed=results.as_int(r.get("sessions_removed")) or 0,
            logged_out=bool(r.get("logged_out")),
            changed=bool(r.get("changed")),
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings)

    def disconnection_refused(self, exc: exceptions.DiskInUse, inv: results.Invocation,
                              host: str) -> IscsiDisconnection:
        data = exc.data or {}
        luns = tuple(n for n in (results.as_int(v) for v in results.as_tuple(data.get("luns")))
                     if n is not None)
        return IscsiDisconnection(
            target_iqns=results.as_tuple(data.get("target_iqns"))
            or tuple(dict.fromkeys(inv.parameters["TargetIqns"])),
            sessions_removed=0, logged_out=False, changed=False,
            in_use_by=results.as_tuple(data.get("vms")), luns_in_use=luns,
            volume_id=inv.volume_id, host=host)

    def to_attachment(self, res: ScriptResult, inv: results.Invocation) -> IscsiAttachment:
        r = res.result
        number = results.as_int(r.get("disk_number"))
        return IscsiAttachment(
            vm_name=str(r.get("vm_name") or inv.parameters["VMName"]),
            vm_id=r.get("vm_id") or None,
            controller_type=str(r.get("controller_type") or ""),
            controller_number=results.as_int(r.get("controller_number")),
            controller_location=results.as_int(r.get("controller_location")),
            disk_path=str(r.get("disk_path") or (disk_path_of(number) if number is not None
                                                 else "")),
            changed=bool(r.get("changed")),
            mapping_created=False,
            mapping_kind=None,
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings,
            disk_number=number,
            sessions_created=results.as_int(r.get("sessions_created")) or 0)

    def disk_path(self, conn: IscsiConnection, props: connection.IscsiConnectionInfo) -> str:
        return conn.disk_path


def disk_path_of(number: int) -> str:
    """The Windows device path of host disk ``number`` (what ``disk_path`` holds for iSCSI)."""
    return "\\\\.\\PHYSICALDRIVE%d" % number


def _int(value: Any, default: int) -> int:
    number = results.as_int(value)
    return default if number is None else number
