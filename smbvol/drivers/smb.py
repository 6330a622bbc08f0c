"""The ``smbfs`` driver: VHD/VHDX images on SMB shares, attached by path.

What the planned scripts do on the Hyper-V host (see ``ps_templates/``):

* ``mount_share`` — a share on the host itself is used through its local path;
  otherwise a healthy SMB mapping is reused, a Disconnected/Unavailable one is
  recreated, or a global mapping (visible to the VMMS service) is created with
  the share credentials; the image must exist.
* ``attach_vhd`` / ``attach_vhds`` — mount, then attach the image on the first
  free SCSI location of the VM (idempotent by path) and apply QoS; a mapping the
  call created is removed again if the attach fails.
* ``detach_vhd`` — remove the VM's disk with that path; absent is no change.
* ``unmount_share`` — remove the mapping only when no disk of any VM lies on the
  share and smbvol created it (unless forced).

With ``[hyperv] smb_mapping_via_scheduled_task`` the scripts render with the
``mapping_via_task`` option: the global mapping is created by a one-shot
scheduled task running as SYSTEM (the remoting double-hop workaround).

``access_mode: ro``: Hyper-V has no verified read-only attach of a VHD/VHDX
image, so such a volume is refused unless ``[hyperv]
allow_read_only_as_read_write`` is set, which attaches it writable and logs a
warning every time.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from smbvol import connection, exceptions, results
from smbvol.drivers.base import VolumeDriver
from smbvol.envelope import ScriptResult
from smbvol.secret import Secret

LOG = logging.getLogger(__name__)


class SMBVolumeDriver(VolumeDriver):
    """Volumes of Cinder's SMB drivers (``driver_volume_type: smbfs``)."""

    driver_volume_type = "smbfs"
    attach_kind = "VHD/VHDX attach"
    medium = "image"

    # -- connection_info ---------------------------------------------------
    def parse(self, connection_info: Mapping[str, Any],
              password_for: Optional[Callable[[str], Secret]] = None
              ) -> connection.SmbConnectionInfo:
        """``connection_info`` checked and typed; ``password_for(user)`` supplies the share
        password when ``data.options`` names a user without one (see
        :func:`smbvol.connection.parse_options`)."""
        return connection.parse_smb(connection_info, password_for)

    def volume_id(self, props: connection.SmbConnectionInfo) -> Optional[str]:
        return props.serial or props.volume_id

    def describe(self, props: connection.SmbConnectionInfo) -> str:
        vid = self.volume_id(props)
        where = "%s\\%s" % (props.export, props.disk_name)
        return "volume %s (%s)" % (vid, where) if vid else "volume %s" % where

    def lock_keys(self, props: connection.SmbConnectionInfo) -> Tuple[str, ...]:
        return (props.share_root,)

    def _options(self) -> Dict[str, bool]:
        return {"mapping_via_task": bool(self.conf.hyperv.smb_mapping_via_scheduled_task)}


    # -- checks ------------------------------------------------------------
    @staticmethod
    def _qos(props: connection.SmbConnectionInfo) -> Tuple[int, int]:
        """(MaximumIops, MinimumIops) in normalised 8 KB IOPS, 0 for none.

        :func:`smbvol.connection.parse_qos` already normalised ``qos_specs``,
        checked minimum <= maximum and warned (once per parse, so once per attach)
        about the keys Hyper-V cannot apply.
        """
        qos = props.qos
        if qos is None:
            return 0, 0
        return int(qos.max_iops or 0), int(qos.min_iops or 0)

    # -- plans -------------------------------------------------------------
    def plan_connect(self, props: connection.SmbConnectionInfo) -> results.Invocation:
        params: Dict[str, Any] = {
            "SharePath": props.export,
            "DiskName": props.disk_name,
            "LockTimeoutSeconds": self._lock_timeout(),
        }
        if props.credential is not None:
            params["ShareCredential"] = props.credential
        return results.Invocation("mount_share", params, self._options(), self.volume_id(props))

    def plan_disconnect(self, props: connection.SmbConnectionInfo,
                        force: bool = False) -> results.Invocation:
        params = {
            "SharePath": props.share_root,
            "Force": bool(force),
            "LockTimeoutSeconds": self._lock_timeout(),
        }
        return results.Invocation("unmount_share", params, {}, self.volume_id(props))

    def plan_attach(self, props: connection.SmbConnectionInfo, instance_name: str,
                    disk_bus: str = "scsi") -> results.Invocation:
        instance_name = self.check_instance_name(instance_name)
        bus = self.check_disk_bus(disk_bus, instance_name)
        self._check_writable(props, instance_name)
        maximum, minimum = self._qos(props)
        params: Dict[str, Any] = {
            "VMName": instance_name,
            "SharePath": props.export,
            "DiskName": props.disk_name,
            "DiskBus": bus,
            "MaximumIops": maximum,
            "MinimumIops": minimum,
            "LockTimeoutSeconds": self._lock_timeout(),
        }
        if props.credential is not None:
            params["ShareCredential"] = props.credential
        return results.Invocation("attach_vhd", params, self._options(), self.volume_id(props))

    def plan_attach_many(self, props_list: Sequence[connection.SmbConnectionInfo],
                         instance_name: str) -> results.Invocation:
        instance_name = self.check_instance_name(instance_name)
        qos = []
        for props in props_list:
            self._check_writable(props, instance_name)
            qos.append(self._qos(props))
        params: Dict[str, Any] = {
            "VMName": instance_name,
            "SharePaths": [p.export for p in props_list],
            "DiskNames": [p.disk_name for p in props_list],
            "MaximumIops": [q[0] for q in qos],
            "MinimumIops": [q[1] for q in qos],
            "LockTimeoutSeconds": self._lock_timeout(),
        }
        if any(p.credential is not None for p in props_list):
            params["ShareCredentials"] = [p.credential for p in props_list]
        ids = [self.volume_id(p) or "" for p in props_list]
        return results.Invocation("attach_vhds", params, self._options(),
                                  ",".join(ids) if any(ids) else None)

    def plan_detach(self, props: connection.SmbConnectionInfo,
                    instance_name: str) -> results.Invocation:
        instance_name = self.check_instance_name(instance_name)
        params = {
            "VMName": instance_name,
            "SharePath": props.export,
            "DiskName": props.disk_name,
            "LockTimeoutSeconds": self._lock_timeout(),
        }
        return results.Invocation("detach_vhd", params, {}, self.volume_id(props))

    # -- results -------------------------------------------------------------
    def to_connection(self, res: ScriptResult, inv: results.Invocation
                      ) -> results.ShareConnection:
        r = res.result
        return results.ShareConnection(
            share_path=str(r.get("share_path") or inv.parameters["SharePath"]),
            disk_path=r.get("disk_path") or None,
            local=bool(r.get("local")),
            local_path=r.get("local_path") or None,
            mapping_created=bool(r.get("mapping_created")),
            mapping_kind=r.get("mapping_kind") or None,
            changed=bool(r.get("changed")),
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings)

    def to_disconnection(self, res: ScriptResult, inv: results.Invocation
                         ) -> results.ShareDisconnection:
        r = res.result
        owned = r.get("owned")
        return results.ShareDisconnection(
            share_path=str(r.get("share_path") or inv.parameters["SharePath"]),
            removed=bool(r.get("removed")),
            mapping_kind=r.get("mapping_kind") or None,
            owned=None if owned is None else bool(owned),
            in_use_by=results.as_tuple(r.get("in_use_by")),
            changed=bool(r.get("changed")),
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings)

    @staticmethod
    def _attachment(r: Mapping[str, Any], vm_name: str, volume_id: Optional[str],
                    host: str, warnings: Tuple[str, ...]) -> results.Attachment:
        return results.Attachment(
            vm_name=str(r.get("vm_name") or vm_name),
            vm_id=r.get("vm_id") or None,
            controller_type=str(r.get("controller_type") or ""),
            controller_number=results.as_int(r.get("controller_number")),
            controller_location=results.as_int(r.get("controller_location")),
            disk_path=str(r.get("disk_path") or ""),
            changed=bool(r.get("changed")),
            mapping_created=bool(r.get("mapping_created")),
            mapping_kind=r.get("mapping_kind") or None,
            volume_id=volume_id, host=host, warnings=warnings)

    def to_attachment(self, res: ScriptResult, inv: results.Invocation
                      ) -> results.Attachment:
        return self._attachment(res.result, inv.parameters["VMName"], inv.volume_id,
                                res.host, res.warnings)

    def to_attachments(self, res: ScriptResult, inv: results.Invocation,
                       volume_ids: Sequence[Optional[str]]) -> Tuple[results.Attachment, ...]:
        items = results.as_list(res.result.get("attachments"))
        if len(items) != len(volume_ids):
            raise exceptions.MalformedEnvelope(
                operation=inv.operation, excerpt="",
                reason="%d attachments reported for %d volumes on VM %s"
                % (len(items), len(volume_ids), inv.parameters["VMName"]))
        return tuple(self._attachment(r, inv.parameters["VMName"], vid, res.host, res.warnings)
                     for r, vid in zip(items, volume_ids))

    def was_attached(self, props: connection.SmbConnectionInfo,
                     attachments: Sequence[results.DiskAttachment]) -> bool:
        """Any disk whose path ends in the image's file name: its UNC path, or the local
        path of a share on the host itself (the same name elsewhere is a doubt: True)."""
        name = props.disk_name.lower()
        return any((a.disk_path or "").replace("/", "\\").rsplit("\\", 1)[-1].lower() == name
                   for a in attachments)

    def disk_path(self, conn: results.ShareConnection,
                  props: connection.SmbConnectionInfo) -> str:
        return conn.disk_path or props.disk_path
