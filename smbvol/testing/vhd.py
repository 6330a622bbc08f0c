"""Attaching VHD/VHDX images on SMB shares to VMs: ``attach_vhd``, ``attach_vhds``, ``detach_vhd``.

:class:`VhdMixin` joins the two halves of the host double the way the templates do:
Mount-SmbvolShare (:class:`~smbvol.testing.smb.SmbMixin`) then Add-SmbvolAttachment
(:class:`~smbvol.testing.hyperv.HyperVMixin`) — attach by path (idempotent, case-insensitive),
refuse an image another VM holds, take the first free slot, apply QoS — and roll back the
mapping, the disk and the QoS a failed call created.  Detaching removes the VM's disks of the
image and leaves the mapping.  A VM with a checkpoint holds the image through a differencing
disk (``Disk.image``): attach and detach compare the image behind it, and one whose chain cannot
be read is ``invalid_state`` rather than "not attached".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from smbvol.secret import Credential
from smbvol.testing.calls import Call
from smbvol.testing.smb import Location
from smbvol.testing.state import Disk


class VhdMixin:
    """The VHD operations (mixed into :class:`~smbvol.testing.hostdouble.HostDouble`)."""

    def _check_iops(self, maximum: Any, minimum: Any, disk_name: str) -> Tuple[int, int]:
        """Assert-SmbvolIops."""
        maximum, minimum = int(maximum or 0), int(minimum or 0)
        if maximum < 0 or minimum < 0:
            raise self._fail("invalid_parameters", "QoS of %s: IOPS limits cannot be negative"
                             % disk_name, {"field": "MaximumIops", "disk": disk_name})
        if maximum and minimum > maximum:
            raise self._fail("invalid_parameters", "QoS of %s: minimum IOPS %d exceeds maximum "
                             "IOPS %d" % (disk_name, minimum, maximum),
                             {"field": "MinimumIops", "disk": disk_name})
        return maximum, minimum

    def _attach_one(self, call: Call, vm_name: str, loc: Location, disk_name: str,
                    credential: Optional[Credential], bus: str,
                    qos: Tuple[int, int]) -> Dict[str, Any]:
        """Mount-SmbvolShare then Add-SmbvolAttachment (the caller holds the locks)."""
        mount = self._mount(call, loc, disk_name, credential)
        key = vm_name.lower()
        vm = self._vms[key]
        wanted = {p.lower() for p in (mount.unc_disk_path, mount.disk_path) if p}

        def result(disk: Disk, changed: bool) -> Dict[str, Any]:
            return {
                "vm_name": vm.name, "vm_id": vm.id, **disk.slot_fields(),
                "disk_path": disk.image_path, "changed": changed or mount.changed,
                "mapping_created": mount.mapping_created, "mapping_kind": mount.mapping_kind,
            }

        found, unreadable = self._image_disks(vm, wanted)
        for disk in found:
            new_qos = (qos[0] or disk.maximum_iops, qos[1] or disk.minimum_iops)
            changed = new_qos != (disk.maximum_iops, disk.minimum_iops)
            if changed:
                call.stage("qos")
                disk = self._replace_disk(call, key, disk, dataclasses.replace(
                    disk, maximum_iops=new_qos[0], minimum_iops=new_qos[1]))
            return result(disk, changed)
        for disk in unreadable:
            raise self._checkpoint_unreadable(vm, disk, mount.disk_path, {
                "share": mount.share_path, "disk": disk_name})
        folders = {p.rsplit("\\", 1)[0] for p in wanted}
        holders = []
        for other in self._vms_in_order():
            if other.id == vm.id:
                continue
            for d in other.disks_in_order():
                if d.chain_unreadable:
                    if d.path.replace("/", "\\").lower().rsplit("\\", 1)[0] in folders:
                        call.warn("could not tell whether the checkpoint disk %s of VM %s "
                                  "stands for %s: cannot read the differencing disk %s"
                                  % (d.path, other.name, mount.disk_path, d.path))
                elif d.image_path and d.image_path.replace("/", "\\").lower() in wanted:
                    holders.append(other.name)
                    break
        if holders:
            raise self._fail("disk_in_use", "image %s is already attached to VM %s; detach it "
                             "there before attaching it to %s"
                             % (mount.disk_path, ", ".join(holders), vm.name),
                             {"vm_name": vm.name, "share": mount.share_path, "disk": disk_name,
                              "vms": holders})
        ctype, number, location, add_controller = self._free_slot(vm, bus)
        call.stage("attach")
        if not mount.verified:
            self._check_vmms_access(vm, loc, disk_name, mount, (ctype, number, location))
        disk = Disk(ctype, number, location, mount.disk_path)
        self._add_disk(call, key, disk, add_controller)
        if qos != (0, 0):
            call.stage("qos")
            disk = self._replace_disk(call, key, disk, dataclasses.replace(
                disk, maximum_iops=qos[0], minimum_iops=qos[1]))
        return result(disk, True)

    def _check_vmms_access(self, vm: Any, loc: Location, disk_name: str, mount: Any,
                           slot: Tuple[str, int, int]) -> None:
        """Add-VMHardDiskDrive of an image the script could not verify: VMMS opens it as the
        host's computer account (the share's ``credential: null``)."""
        share = self._shares.get(loc.root.lower())
        context = "attaching %s to VM %s at %s %d:%d" % ((mount.disk_path, vm.name) + slot)
        data = {"vm_name": vm.name, "share": mount.share_path, "disk": disk_name}
        if share is None or not share.accepts(None):
            raise self._win32("access_denied", context, 5, data, loc.root)
        relative = "\\".join(loc.subdir + (disk_name,))
        if not share.has_file(relative):
            raise self._fail("image_not_found", "%s: The system cannot find the file specified."
                             % context, dict(data, native_code=2), 2)

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------
    def op_attach_vhd(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Refuse a VM neither Off nor Running (before the mount), mount, then attach by path
        (idempotent) on the first free slot, apply QoS; a failure after the mount removes the
        mapping this call created."""
        bus = p.get("DiskBus", "scsi")
        if not isinstance(bus, str) or bus.lower() not in ("scsi", "ide"):
            raise self._fail("invalid_parameters", "DiskBus %s for VM %s must be scsi or ide"
                             % (bus, p.get("VMName")),
                             {"field": "DiskBus", "vm_name": p.get("VMName")})
        loc = self._split_share_path(p.get("SharePath"))
        disk_name = self._check_disk_name(p.get("DiskName"))
        qos = self._check_iops(p.get("MaximumIops"), p.get("MinimumIops"), disk_name)
        vm = self._find_vm(p.get("VMName"))
        self._check_locks([vm.lock_key, loc.lock_key], p.get("LockTimeoutSeconds"))
        self._check_vm_state(vm, "attached")
        return self._attach_one(call, vm.name, loc, disk_name, p.get("ShareCredential"),
                                bus.lower(), qos)

    def op_attach_vhds(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """attach_vhd for every image on one VM; any failure undoes the whole call."""
        vm_name = p.get("VMName")
        share_paths = list(p.get("SharePaths") or ())
        names = list(p.get("DiskNames") or ())
        count = len(share_paths)
        if not count or len(names) != count:
            raise self._fail("invalid_parameters", "SharePaths and DiskNames for VM %s must be "
                             "non-empty and of the same length (%d and %d)"
                             % (vm_name, count, len(names)),
                             {"field": "DiskNames", "vm_name": vm_name})
        lists: Dict[str, List[Any]] = {}
        for field in ("ShareCredentials", "MaximumIops", "MinimumIops"):
            if p.get(field) is not None:
                lists[field] = list(p[field])
                if len(lists[field]) != count:
                    raise self._fail("invalid_parameters", "%s for VM %s must have one element "
                                     "per image (%d)" % (field, vm_name, count),
                                     {"field": field, "vm_name": vm_name})
        creds = lists.get("ShareCredentials") or [None] * count
        maxima = lists.get("MaximumIops") or [0] * count
        minima = lists.get("MinimumIops") or [0] * count
        items = []
        for i in range(count):
            loc = self._split_share_path(share_paths[i])
            name = self._check_disk_name(names[i], "DiskNames[%d]" % i)
            items.append((loc, name, creds[i], self._check_iops(maxima[i], minima[i], name)))
        vm = self._find_vm(vm_name)
        keys = [vm.lock_key] + sorted({item[0].lock_key for item in items})
        self._check_locks(keys, p.get("LockTimeoutSeconds"))
        self._check_vm_state(vm, "attached")
        attachments = []
        for loc, name, cred, qos in items:
            att = self._attach_one(call, vm.name, loc, name, cred, "scsi", qos)
            att["share_path"] = loc.unc_dir
            att["disk_name"] = name
            attachments.append(att)
        return {"attachments": attachments, "changed": any(a["changed"] for a in attachments)}

    def op_detach_vhd(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Remove the VM's disks whose path is the image (UNC, or local for a share on this
        host), compared case-insensitively, also behind a checkpoint's differencing disk; none
        → changed=false, unless a differencing disk's chain cannot be read (invalid_state).
        A disk to remove needs the VM Off or Running (else invalid_state). The mapping stays."""
        loc = self._split_share_path(p.get("SharePath"))
        disk_name = self._check_disk_name(p.get("DiskName"))
        paths = [loc.unc_dir + "\\" + disk_name]
        local = self._local_share(loc.share_name) if loc.local else None
        if local is not None:
            paths.append("\\".join((local.local_path,) + loc.subdir + (disk_name,)))
        wanted = {x.lower() for x in paths}
        vm = self._find_vm(p.get("VMName"))
        self._check_locks([vm.lock_key], p.get("LockTimeoutSeconds"))
        found, unreadable = self._image_disks(vm, wanted)
        if not found and unreadable:
            raise self._checkpoint_unreadable(vm, unreadable[0], paths[0],
                                              {"disk_path": paths[0]})
        if not found:
            return {"vm_name": vm.name, "vm_id": vm.id, "disk_path": paths[0], "removed": False,
                    "controller_type": None, "controller_number": None,
                    "controller_location": None, "changed": False}
        self._check_vm_state(vm, "removed")
        self._check_detachable(vm, found, "disk_path")
        for disk in found:
            call.stage("remove")
            self._set_disk(vm.name.lower(), disk, None)
            if disk.is_checkpoint:
                call.warn("VM %s has a checkpoint: removed its differencing disk %s of the "
                          "image %s; the checkpoint still refers to the image"
                          % (vm.name, disk.path, disk.image_path))
        first = found[0]
        return {"vm_name": vm.name, "vm_id": vm.id, "disk_path": first.image_path,
                "removed": True, **first.slot_fields(), "changed": True}
