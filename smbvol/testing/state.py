"""What the simulated Hyper-V host holds: VMs with their disks, SMB shares and SMB mappings.

The objects are frozen dataclasses: the double replaces them when the host changes, so what a
test reads (``host.vm("x")``, ``host.shares``, ``host.mappings``) is a snapshot.  The limits
of the host (SCSI and IDE controllers and locations, mapping kinds and statuses), the test
passwords the contract vectors name, and the Windows path rules (UNC parts, case-insensitive
comparison, controller order) the double applies everywhere are here too.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Dict, Optional, Tuple
from typing import Mapping as TMapping

from smbvol.secret import Credential

MAX_SCSI_CONTROLLERS = 4
SCSI_LOCATIONS = 64
IDE_CONTROLLERS = 2
IDE_LOCATIONS = 2
MAPPING_KINDS = ("global", "user")
MAPPING_STATUSES = ("OK", "Disconnected", "Unavailable")
#: VM states besides Off and Running (``VM.state``): Hyper-V changes no disk in them.
OTHER_VM_STATES = ("Saved", "Paused")

#: Test passwords for the ``password_ref`` names the contract vectors use.  The double
#: resolves a reference with these unless :meth:`HostDouble.from_dict` is given others.
DEFAULT_SECRETS: TMapping[str, str] = MappingProxyType({
    "share": "double-share-password",
    "other": "double-other-password",
    "wrong": "double-wrong-password",
})


@dataclasses.dataclass(frozen=True)
class Disk:
    """One hard disk drive of a VM (``path`` is the image, or None for a passthrough disk).

    A VM with a checkpoint has a differencing disk (``path`` ending in ``.avhd``/``.avhdx``,
    as Get-VMHardDiskDrive reports it) in front of the image: ``image`` is then the image at
    the end of its parent chain (Get-VHD ParentPath), or None when that chain cannot be read.
    """

    controller_type: str
    controller_number: int
    controller_location: int
    path: Optional[str]
    maximum_iops: int = 0
    minimum_iops: int = 0
    disk_number: Optional[int] = None
    image: Optional[str] = None

    @property
    def is_checkpoint(self) -> bool:
        """Test-SmbvolCheckpointDisk: ``path`` is a checkpoint's differencing disk."""
        return is_checkpoint_path(self.path)

    @property
    def chain_unreadable(self) -> bool:
        """A differencing disk whose parent chain cannot be read (Resolve-SmbvolImagePath)."""
        return self.is_checkpoint and self.image is None

    @property
    def image_path(self) -> Optional[str]:
        """Resolve-SmbvolImagePath: the image this disk stands for (None: unreadable chain)."""
        return self.image if self.is_checkpoint else self.path

    @property
    def slot(self) -> Tuple[str, int, int]:
        return (self.controller_type, self.controller_number, self.controller_location)

    def slot_fields(self) -> Dict[str, Any]:
        """``controller_type``, ``controller_number``, ``controller_location`` of a result."""
        return {"controller_type": self.controller_type,
                "controller_number": self.controller_number,
                "controller_location": self.controller_location}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of a VM (Get-VMSnapshot): the image paths of its hard disks and DVD
    drives (Get-VMHardDiskDrive / Get-VMDvdDrive -VMSnapshot), as they were when it was taken."""

    name: str
    disks: Tuple[str, ...] = ()
    dvd_drives: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class VM:
    """A Hyper-V VM as the double holds it."""

    name: str
    id: str
    generation: int
    running: bool
    scsi_controllers: int
    disks: Tuple[Disk, ...] = ()
    #: Slots taken by DVD drives (New-VM gives a Generation 1 VM one at IDE 1:0).
    dvd_drives: Tuple[Tuple[str, int, int], ...] = ()
    #: The image (ISO) in a DVD drive: (slot, path) pairs; a drive not listed is empty.
    dvd_media: Tuple[Tuple[Tuple[str, int, int], str], ...] = ()
    #: A state other than Off/Running (one of OTHER_VM_STATES; ``running`` is then False).
    state: Optional[str] = None
    #: ConfigurationLocation, SnapshotFileLocation, SmartPagingFilePath (None: a local default).
    configuration_location: Optional[str] = None
    snapshot_file_location: Optional[str] = None
    smart_paging_file_path: Optional[str] = None
    #: The VM's checkpoints (their drives still refer to the images they had).
    checkpoints: Tuple[Checkpoint, ...] = ()

    @property
    def power_state(self) -> str:
        """Get-VM's State: Off, Running, or the other state."""
        return self.state or ("Running" if self.running else "Off")

    @property
    def is_off(self) -> bool:
        return self.power_state == "Off"

    def folders(self) -> Tuple[str, ...]:
        """The VM's folders that are set (configuration, checkpoints, smart paging)."""
        return tuple(f for f in (self.configuration_location, self.snapshot_file_location,
                                 self.smart_paging_file_path) if f)

    def used_slots(self) -> set:
        return {d.slot for d in self.disks} | set(self.dvd_drives)

    def checkpoint_paths(self) -> Tuple[str, ...]:
        """The hard disk paths of every checkpoint (Get-SmbvolVMInventory)."""
        return tuple(p for c in self.checkpoints for p in c.disks)

    def checkpoint_media(self) -> Tuple[str, ...]:
        """The DVD images of every checkpoint."""
        return tuple(p for c in self.checkpoints for p in c.dvd_drives)

    def disks_in_order(self) -> Tuple[Disk, ...]:
        """The disks in controller order (IDE before SCSI), as Get-VMHardDiskDrive lists them."""
        return tuple(sorted(self.disks, key=controller_order))

    @property
    def lock_key(self) -> str:
        """The host mutex the templates take for this VM (by id)."""
        return "vm:" + self.id.lower()


@dataclasses.dataclass(frozen=True)
class Share:
    """An SMB share the host can reach (``local_path`` set: the share is on this host)."""

    root: str
    files: Tuple[str, ...] = ()
    credential: Optional[Credential] = None
    local_path: Optional[str] = None
    reachable: bool = True

    @property
    def server(self) -> str:
        return self.root[2:].split("\\")[0]

    @property
    def name(self) -> str:
        return self.root[2:].split("\\")[1]

    def has_file(self, relative: str) -> bool:
        wanted = relative.lower()
        return any(f.lower() == wanted for f in self.files)

    def accepts(self, credential: Optional[Credential]) -> bool:
        if self.credential is None:
            return True
        return credential is not None and same_credential(self.credential, credential)


@dataclasses.dataclass(frozen=True)
class Mapping:
    """An SMB mapping (``Get-SmbGlobalMapping`` / ``Get-SmbMapping``) of a share root."""

    remote_path: str
    kind: str = "global"
    status: str = "OK"
    credential: Optional[Credential] = None
    #: Created by smbvol (only those are removed by unmount_share without Force).
    owned: bool = False

    @property
    def server(self) -> str:
        return self.remote_path[2:].split("\\")[0]


def is_checkpoint_path(path: Optional[str]) -> bool:
    """Whether ``path`` is a checkpoint's differencing disk (``.avhd`` / ``.avhdx``)."""
    return bool(path) and path.lower().endswith((".avhd", ".avhdx"))


def split_unc(path: Any) -> Optional[Tuple[str, str, Tuple[str, ...]]]:
    """``(server, share, subdirectories)`` of a UNC path, else None."""
    if not isinstance(path, str) or not path.startswith("\\\\"):
        return None
    parts = path[2:].rstrip("\\").split("\\")
    if len(parts) < 2 or any(not p for p in parts):
        return None
    return parts[0], parts[1], tuple(parts[2:])


def share_root_of(path: Optional[str]) -> Optional[str]:
    """Get-SmbvolShareRootOf: ``\\\\host\\share`` of a UNC path, else None."""
    parts = split_unc((path or "").replace("/", "\\"))
    if parts is None or parts[0] in ("?", "."):
        return None
    return "\\\\%s\\%s" % parts[:2]


def same_credential(a: Optional[Credential], b: Optional[Credential]) -> bool:
    """Same user name (case-insensitive) and password, or both None."""
    if a is None or b is None:
        return a is None and b is None
    return a.username.lower() == b.username.lower() and a.password == b.password


def controller_order(disk: Disk) -> Tuple[int, int, int]:
    """Sort key: IDE before SCSI, then controller number and location."""
    return (0 if disk.controller_type == "IDE" else 1, disk.controller_number,
            disk.controller_location)
