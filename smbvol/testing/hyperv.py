"""The Hyper-V part of the host double: VMs, their controllers and disks, slot choice.

:class:`HyperVMixin` holds the VMs (generation 1 or 2, running or off, up to
:data:`~smbvol.testing.state.MAX_SCSI_CONTROLLERS` SCSI controllers with 64 locations each,
Generation 1's 2 IDE controllers with 2 locations each, DVD drives) and does what the
templates' Hyper-V helpers do: find a VM by exact name (Get-SmbvolVM), pick the first free
slot or add a SCSI controller (Find-SmbvolFreeSlot), add, change and remove disks with their
undo, and answer ``list_attachments``.  It is mixed into
:class:`~smbvol.testing.hostdouble.HostDouble`, which provides ``_mutex``, ``_fail`` and the
VM table ``_vms`` (lower-cased name → :class:`~smbvol.testing.state.VM`).
"""

from __future__ import annotations

import dataclasses
import uuid
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from typing import Mapping as TMapping

from smbvol.testing.calls import Call
from smbvol.testing.state import (
    IDE_CONTROLLERS,
    IDE_LOCATIONS,
    MAX_SCSI_CONTROLLERS,
    OTHER_VM_STATES,
    SCSI_LOCATIONS,
    VM,
    Checkpoint,
    Disk,
    is_checkpoint_path,
    share_root_of,
)

#: The VM's folders in the state (``VM`` fields of the same name): Get-VM's
#: ConfigurationLocation, SnapshotFileLocation and SmartPagingFilePath.
VM_FOLDER_KEYS = ("configuration_location", "snapshot_file_location", "smart_paging_file_path")


class HyperVMixin:
    """VMs and their disks (mixed into :class:`~smbvol.testing.hostdouble.HostDouble`)."""

    _vms: Dict[str, VM]

    # ------------------------------------------------------------------
    # Building the host (tests)
    # ------------------------------------------------------------------
    def add_vm(self, name: str, *, generation: int = 2, running: bool = False,
               vm_id: Optional[str] = None, scsi_controllers: int = 1,
               dvd_drives: Optional[Iterable[Sequence[Any]]] = None,
               state: Optional[str] = None, configuration_location: Optional[str] = None,
               snapshot_file_location: Optional[str] = None,
               smart_paging_file_path: Optional[str] = None) -> str:
        """Add a VM; returns its id.  A Generation 1 VM gets a DVD drive at IDE 1:0.

        ``dvd_drives``: (type, number, location) or (type, number, location, image path).
        ``state``: Off, Running, or one of :data:`~smbvol.testing.state.OTHER_VM_STATES`
        (Saved, Paused), which overrides ``running``."""
        if state in ("Off", "Running"):
            running, state = state == "Running", None
        elif state is not None:
            if state not in OTHER_VM_STATES:
                raise ValueError("state must be Off, Running or one of %s, not %r"
                                 % (", ".join(OTHER_VM_STATES), state))
            running = False
        if generation not in (1, 2):
            raise ValueError("generation must be 1 or 2, not %r" % (generation,))
        if not 0 <= scsi_controllers <= MAX_SCSI_CONTROLLERS:
            raise ValueError("scsi_controllers must be 0..%d" % MAX_SCSI_CONTROLLERS)
        media = []
        if dvd_drives is None:
            dvd = (("IDE", 1, 0),) if generation == 1 else ()
        else:
            dvd = []
            for drive in dvd_drives:
                slot = (str(drive[0]).upper(), int(drive[1]), int(drive[2]))
                dvd.append(slot)
                if len(drive) > 3 and drive[3]:
                    media.append((slot, str(drive[3])))
        with self._mutex:
            if name.lower() in self._vms:
                raise ValueError("a VM named %r exists already" % name)
            vm_id = vm_id or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                            "smbvol-hostdouble:" + name.lower()))
            vm = VM(name=name, id=vm_id, generation=generation, running=bool(running),
                    scsi_controllers=scsi_controllers, dvd_media=tuple(media), state=state,
                    configuration_location=configuration_location,
                    snapshot_file_location=snapshot_file_location,
                    smart_paging_file_path=smart_paging_file_path)
            for slot in dvd:
                self._check_slot(vm, *slot)
                vm = dataclasses.replace(vm, dvd_drives=vm.dvd_drives + (slot,))
            self._vms[name.lower()] = vm
            return vm_id

    def set_running(self, vm_name: str, running: bool) -> None:
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            self._vms[vm.name.lower()] = dataclasses.replace(vm, running=bool(running),
                                                             state=None)

    def set_state(self, vm_name: str, state: str) -> None:
        """Off, Running, Saved or Paused."""
        if state not in ("Off", "Running") + OTHER_VM_STATES:
            raise ValueError("state must be Off, Running or one of %s, not %r"
                             % (", ".join(OTHER_VM_STATES), state))
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            other = None if state in ("Off", "Running") else state
            self._vms[vm.name.lower()] = dataclasses.replace(
                vm, running=state == "Running", state=other)

    def add_checkpoint(self, vm_name: str, name: str, *, disks: Iterable[str] = (),
                       dvd_drives: Iterable[str] = ()) -> Checkpoint:
        """Give a VM a checkpoint whose hard disks (and DVD drives) are ``disks`` (image
        paths), as they were when it was taken."""
        checkpoint = Checkpoint(name=str(name), disks=tuple(str(d) for d in disks),
                                dvd_drives=tuple(str(d) for d in dvd_drives))
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            self._vms[vm.name.lower()] = dataclasses.replace(
                vm, checkpoints=vm.checkpoints + (checkpoint,))
        return checkpoint

    def attach_disk(self, vm_name: str, path: Optional[str], controller_type: str = "SCSI",
                    number: int = 0, location: int = 0, *, maximum_iops: int = 0,
                    minimum_iops: int = 0, disk_number: Optional[int] = None,
                    image: Optional[str] = None) -> Disk:
        """Give a VM a disk that is already attached (no mount, no checks beyond the slot).

        A checkpoint: ``path`` is the differencing disk (``.avhdx``) and ``image`` the image
        behind it (None: its parent chain cannot be read)."""
        if image is not None and not is_checkpoint_path(path):
            raise ValueError("image %r is only for a checkpoint's differencing disk "
                             "(.avhd/.avhdx), not for %r" % (image, path))
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            ctype = controller_type.upper()
            self._check_slot(vm, ctype, number, location)
            disk = Disk(ctype, int(number), int(location), path, int(maximum_iops),
                        int(minimum_iops), disk_number, image)
            self._vms[vm.name.lower()] = dataclasses.replace(vm, disks=vm.disks + (disk,))
            return disk

    def fill_scsi(self, vm_name: str, except_slots: Iterable[Sequence[int]] = (),
                  controllers: Optional[Iterable[int]] = None) -> int:
        """Take every free SCSI location of the VM's controllers (or of ``controllers``) with a
        filler disk on ``\\\\filler.invalid\\fill``, except ``except_slots`` ((controller,
        location) pairs); returns how many were added.  State shorthand in a VM's entry:
        ``"fill_scsi": true`` or ``{"controllers": [0], "except": [[0, 17]]}``."""
        keep = {tuple(int(x) for x in slot) for slot in except_slots}
        added = 0
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            numbers = range(vm.scsi_controllers) if controllers is None else controllers
            used = vm.used_slots()
            for number in numbers:
                for location in range(SCSI_LOCATIONS):
                    if ("SCSI", number, location) in used or (number, location) in keep:
                        continue
                    self.attach_disk(vm.name, "\\\\filler.invalid\\fill\\%s-%d-%d.vhdx"
                                     % (vm.name, number, location), "SCSI", number, location)
                    added += 1
        return added

    def _check_slot(self, vm: VM, ctype: str, number: int, location: int) -> None:
        if ctype == "SCSI":
            if not (0 <= number < vm.scsi_controllers and 0 <= location < SCSI_LOCATIONS):
                raise ValueError("VM %s has no SCSI slot %d:%d" % (vm.name, number, location))
        elif ctype == "IDE":
            if vm.generation != 1 or not (0 <= number < IDE_CONTROLLERS
                                          and 0 <= location < IDE_LOCATIONS):
                raise ValueError("VM %s has no IDE slot %d:%d" % (vm.name, number, location))
        else:
            raise ValueError("controller_type must be SCSI or IDE, not %r" % (ctype,))
        if (ctype, number, location) in vm.used_slots():
            raise ValueError("slot %s %d:%d of VM %s is taken" % (ctype, number, location,
                                                                  vm.name))

    def vm_lock_key(self, vm_name: str) -> str:
        """The lock key the templates take for a VM (by id)."""
        return self._vm_or_raise(vm_name).lock_key

    # ------------------------------------------------------------------
    # Read-only views
    # ------------------------------------------------------------------
    @property
    def vms(self) -> TMapping[str, VM]:
        with self._mutex:
            return MappingProxyType({vm.name: vm for vm in self._vms.values()})

    def vm(self, name: str) -> VM:
        with self._mutex:
            return self._vm_or_raise(name)

    def disks_of(self, vm_name: str) -> Tuple[Disk, ...]:
        with self._mutex:
            return self._vm_or_raise(vm_name).disks_in_order()

    def _vm_or_raise(self, name: str) -> VM:
        try:
            return self._vms[name.lower()]
        except KeyError:
            raise KeyError("no VM named %r" % (name,)) from None

    def _vms_in_order(self) -> List[VM]:
        """Every VM, by name (case-insensitive), as Get-VM lists them."""
        return sorted(self._vms.values(), key=lambda v: v.name.lower())

    # ------------------------------------------------------------------
    # Shared steps (Get-SmbvolVM, Find-SmbvolFreeSlot, ...)
    # ------------------------------------------------------------------
    def _find_vm(self, name: Any) -> VM:
        """Get-SmbvolVM: the VM named exactly ``name`` (case-insensitive, no wildcards)."""
        if not name:
            raise self._fail("invalid_parameters", "VMName is empty", {"field": "VMName"})
        vm = self._vms.get(str(name).lower())
        if vm is None:
            raise self._fail("vm_not_found", self._vm_not_found_message(name), {"vm_name": name})
        return vm

    def _vm_not_found_message(self, name: Any) -> str:
        """Get-SmbvolVMNotFoundMessage: Get-VM shows no VM to a non-administrator either."""
        return ("no VM named %s on host %s (an account that is not a member of Administrators "
                "or Hyper-V Administrators on the host sees no VM at all)"
                % (name, self.host_name))

    def _check_vm_state(self, vm: VM, action: str) -> None:
        """Assert-SmbvolVMStateForDisks: disks change only while the VM is Off or Running."""
        if vm.power_state not in ("Off", "Running"):
            raise self._fail("invalid_state", "VM %s is %s: disks can only be %s while it is Off "
                             "or Running; start it or turn it off, then retry"
                             % (vm.name, vm.power_state, action),
                             {"vm_name": vm.name, "state": vm.power_state})

    def _free_slot(self, vm: VM, bus: str) -> Tuple[str, int, int, bool]:
        """Find-SmbvolFreeSlot: (type, controller, location, add a controller?)."""
        used = vm.used_slots()
        state = vm.power_state
        if bus == "ide":
            if vm.generation != 1:
                raise self._fail("invalid_state", "VM %s is Generation %d and has no IDE "
                                 "controller; attach on SCSI" % (vm.name, vm.generation),
                                 {"vm_name": vm.name, "generation": vm.generation})
            if not vm.is_off:
                raise self._fail("invalid_state", "VM %s is %s: IDE disks can only be attached "
                                 "while it is off" % (vm.name, state),
                                 {"vm_name": vm.name, "state": state})
            for number in range(IDE_CONTROLLERS):
                for location in range(IDE_LOCATIONS):
                    if ("IDE", number, location) not in used:
                        return ("IDE", number, location, False)
            raise self._fail("no_free_slot", "both IDE controllers of VM %s are full" % vm.name,
                             {"vm_name": vm.name, "controller_type": "IDE"})
        for number in range(vm.scsi_controllers):
            for location in range(SCSI_LOCATIONS):
                if ("SCSI", number, location) not in used:
                    return ("SCSI", number, location, False)
        data = {"vm_name": vm.name, "controller_type": "SCSI",
                "controllers": vm.scsi_controllers}
        if vm.scsi_controllers >= MAX_SCSI_CONTROLLERS:
            raise self._fail("no_free_slot", "all %d SCSI controllers (%d locations each) of VM "
                             "%s are full" % (MAX_SCSI_CONTROLLERS, SCSI_LOCATIONS, vm.name),
                             data)
        if not vm.is_off and not vm.scsi_controllers:
            raise self._fail("no_free_slot", "VM %s (Generation %d) has no SCSI controller, and "
                             "one can only be added while the VM is off (it is %s); stop the VM "
                             "to attach the disk" % (vm.name, vm.generation, state),
                             dict(data, state=state))
        if not vm.is_off:
            raise self._fail("no_free_slot", "every SCSI controller of VM %s is full and no "
                             "controller can be added while it is %s" % (vm.name, state),
                             dict(data, state=state))
        return ("SCSI", vm.scsi_controllers, 0, True)

    @staticmethod
    def _image_disks(vm: VM, wanted: Iterable[str]) -> Tuple[List[Disk], List[Disk]]:
        """Find-SmbvolImageDrives: (the VM's disks that are one of the ``wanted`` image paths
        (lower case), directly or through a checkpoint's differencing disk; its differencing
        disks whose chain cannot be read, which may be the image)."""
        wanted = set(wanted)
        found, unreadable = [], []
        for disk in vm.disks_in_order():
            if disk.chain_unreadable:
                unreadable.append(disk)
            elif disk.image_path and disk.image_path.replace("/", "\\").lower() in wanted:
                found.append(disk)
        return found, unreadable

    def _checkpoint_unreadable(self, vm: VM, disk: Disk, image: Optional[str],
                               data: Dict[str, Any]) -> Any:
        """The invalid_state failure for a differencing disk whose chain cannot be read."""
        return self._fail("invalid_state", "VM %s has a checkpoint whose differencing disk %s "
                          "may stand for %s, but its parent chain cannot be read (cannot read "
                          "the differencing disk %s); fix or remove the checkpoint, then retry"
                          % (vm.name, disk.path, image, disk.path),
                          dict(data, vm_name=vm.name, checkpoint=disk.path))

    def _set_disk(self, vm_key: str, old: Disk, new: Optional[Disk],
                  controllers_delta: int = 0) -> None:
        vm = self._vms[vm_key]
        disks = tuple(d for d in vm.disks if d.slot != old.slot)
        if new is not None:
            disks += (new,)
        self._vms[vm_key] = dataclasses.replace(
            vm, disks=disks, scsi_controllers=vm.scsi_controllers + controllers_delta)

    def _add_disk(self, call: Call, vm_key: str, disk: Disk, add_controller: bool) -> None:
        """Add-VMHardDiskDrive (after Add-VMScsiController when the slot needs one); undone
        when the call fails."""
        delta = 1 if add_controller else 0
        self._set_disk(vm_key, disk, disk, delta)
        call.undo(lambda: self._set_disk(vm_key, disk, None, -delta))

    def _replace_disk(self, call: Call, vm_key: str, old: Disk, new: Disk) -> Disk:
        """Change a disk in place (Set-VMHardDiskDrive: QoS); undone when the call fails."""
        self._set_disk(vm_key, old, new)
        call.undo(lambda: self._set_disk(vm_key, new, old))
        return new

    def _check_detachable(self, vm: VM, disks: Iterable[Disk], field: str) -> None:
        """Refuse to remove an IDE disk of a running VM (Hyper-V only hot-removes SCSI);
        ``field`` is how the error names the disk: ``disk_path`` or ``disk_number``."""
        for disk in disks:
            if disk.controller_type == "IDE" and not vm.is_off:
                what = disk.path if field == "disk_path" else disk.disk_number
                raise self._fail("invalid_state", "disk %s is on IDE %d:%d of VM %s, which is "
                                 "%s: IDE disks can only be removed while the VM is off"
                                 % (what, disk.controller_number, disk.controller_location,
                                    vm.name, vm.power_state),
                                 {"vm_name": vm.name, "state": vm.power_state, field: what})

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------
    def op_list_attachments(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Every hard disk of the VM (every VM when VMName is empty), in controller order;
        ``share`` is the UNC root of a UNC path (a loopback disk's local path has none).
        A passthrough disk's ``path`` is ``\\\\.\\PHYSICALDRIVE<n>``; its ``target_iqn``,
        ``target_lun`` and ``target_portal`` come from :meth:`_disk_targets` (none here: the
        iSCSI mixin knows which LUN backs which disk)."""
        name = p.get("VMName") or ""
        vms = [self._find_vm(name)] if name else self._vms_in_order()
        out = []
        targets = self._disk_targets(call) if any(
            d.disk_number is not None for vm in vms for d in vm.disks) else {}
        for vm in vms:
            for disk in vm.disks_in_order():
                path = disk.path
                target: TMapping[str, Any] = {}
                if disk.disk_number is not None:
                    path = "\\\\.\\PHYSICALDRIVE%d" % disk.disk_number
                    target = targets.get(disk.disk_number) or {}
                root = share_root_of(path)
                out.append({
                    "vm_name": vm.name, "vm_id": vm.id, **disk.slot_fields(),
                    "path": path, "disk_number": disk.disk_number,
                    "target_iqn": target.get("target_iqn"),
                    "target_lun": target.get("target_lun"),
                    "target_portal": target.get("target_portal"),
                    "on_share": root is not None, "share": root,
                    "maximum_iops": disk.maximum_iops, "minimum_iops": disk.minimum_iops,
                })
        return {"attachments": out}

    def _disk_targets(self, call: Call) -> Dict[int, Dict[str, Any]]:
        """Disk number → ``{"target_iqn", "target_lun", "target_portal"}`` of the disks an
        iSCSI session reaches (Get-SmbvolIscsiDiskTargets); a host without iSCSI has none."""
        return {}

    # ------------------------------------------------------------------
    # State (the "vms" key of to_dict)
    # ------------------------------------------------------------------
    def _dump_vms(self, state: Dict[str, Any]) -> None:
        def dump(vm: VM) -> Dict[str, Any]:
            media = dict(vm.dvd_media)
            out = {
                "id": vm.id, "generation": vm.generation, "running": vm.running,
                "scsi_controllers": vm.scsi_controllers,
                "dvd_drives": [{"controller_type": t, "controller_number": n,
                                "controller_location": loc, "path": media.get((t, n, loc))}
                               for t, n, loc in vm.dvd_drives],
                "disks": [dataclasses.asdict(d) for d in vm.disks_in_order()],
            }
            if vm.state is not None:
                out["state"] = vm.state
            if vm.checkpoints:
                out["checkpoints"] = [{"name": c.name, "disks": list(c.disks),
                                       "dvd_drives": list(c.dvd_drives)}
                                      for c in vm.checkpoints]
            for key in VM_FOLDER_KEYS:
                if getattr(vm, key) is not None:
                    out[key] = getattr(vm, key)
            return out

        state["vms"] = {vm.name: dump(vm) for vm in self._vms_in_order()}

    def _load_vms(self, state: TMapping[str, Any]) -> None:
        vm_keys = {"id", "generation", "running", "scsi_controllers", "dvd_drives", "disks",
                   "fill_scsi", "state", "checkpoints"} | set(VM_FOLDER_KEYS)
        for name, spec in (state.get("vms") or {}).items():
            extra = set(spec) - vm_keys
            if extra:
                raise ValueError("VM %s: unknown key(s) %s" % (name, ", ".join(sorted(extra))))
            dvd = spec.get("dvd_drives")
            self.add_vm(name, generation=spec.get("generation", 2),
                        running=spec.get("running", False), vm_id=spec.get("id"),
                        scsi_controllers=spec.get("scsi_controllers", 1),
                        dvd_drives=None if dvd is None else [
                            (d["controller_type"], d["controller_number"],
                             d["controller_location"], d.get("path")) for d in dvd],
                        state=spec.get("state"),
                        **{key: spec.get(key) for key in VM_FOLDER_KEYS})
            for d in spec.get("disks") or ():
                self.attach_disk(name, d.get("path"), d.get("controller_type", "SCSI"),
                                 d.get("controller_number", 0), d.get("controller_location", 0),
                                 maximum_iops=d.get("maximum_iops", 0),
                                 minimum_iops=d.get("minimum_iops", 0),
                                 disk_number=d.get("disk_number"), image=d.get("image"))
            for c in spec.get("checkpoints") or ():
                self.add_checkpoint(name, c["name"], disks=c.get("disks") or (),
                                    dvd_drives=c.get("dvd_drives") or ())
            fill = spec.get("fill_scsi")
            if fill:
                fill = fill if isinstance(fill, dict) else {}
                self.fill_scsi(name, except_slots=fill.get("except") or (),
                               controllers=fill.get("controllers"))
