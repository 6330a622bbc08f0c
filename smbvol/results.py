"""Typed results of :class:`smbvol.VolumeOps`: what happened on the host.

Every operation answers with a frozen dataclass built from the result document
the template printed (see :data:`smbvol.scripts.OPERATIONS` for the fields).
:class:`Invocation` is the plan of one script run — the operation, its
parameters and render options — which the execution methods run and the CLI's
``--dry-run`` prints instead of running.

``to_dict()`` gives a JSON-friendly dict; secrets never appear in it (an
:class:`Invocation`'s credentials are shown as ``user/***``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

from smbvol.secret import Credential, Secret


def _plain(value: Any) -> Any:
    if isinstance(value, Credential):
        return "%s/***" % value.username
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class _Result:
    def to_dict(self) -> Dict[str, Any]:
        """The fields as plain JSON-friendly values (secrets masked)."""
        fields = dataclasses.fields(cast(Any, self))  # every subclass is a dataclass
        return {f.name: _plain(getattr(self, f.name)) for f in fields}


@dataclasses.dataclass(frozen=True)
class Invocation(_Result):
    """One script run, planned: ``executor.run(scripts.render(operation, **options), parameters)``.

    ``parameters`` may hold :class:`~smbvol.secret.Credential` values; they are
    revealed only by the executor.  ``volume_id`` names the volume concerned
    (None for host-wide operations such as ``list_attachments``).
    """

    operation: str
    parameters: Dict[str, Any]
    options: Dict[str, bool]
    volume_id: Optional[str] = None

    def describe(self) -> Dict[str, Any]:
        """The parameters for display: credentials as ``user/***``."""
        return {k: _plain(v) for k, v in self.parameters.items()}


@dataclasses.dataclass(frozen=True)
class Attachment(_Result):
    """A volume attached to a VM (``changed`` is False when it already was)."""

    vm_name: str
    vm_id: Optional[str]
    controller_type: str
    controller_number: Optional[int]
    controller_location: Optional[int]
    disk_path: str
    changed: bool
    mapping_created: bool = False
    mapping_kind: Optional[str] = None
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Detachment(_Result):
    """A volume detached from a VM (``removed``/``changed`` False when it was not attached)."""

    vm_name: str
    vm_id: Optional[str]
    disk_path: Optional[str]
    removed: bool
    changed: bool
    controller_type: Optional[str] = None
    controller_number: Optional[int] = None
    controller_location: Optional[int] = None
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ShareConnection(_Result):
    """A share made usable by Hyper-V: the disk path to attach, and how it was reached."""

    share_path: str
    disk_path: Optional[str]
    local: bool
    local_path: Optional[str]
    mapping_created: bool
    mapping_kind: Optional[str]
    changed: bool
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ShareDisconnection(_Result):
    """The outcome of unmounting a share.

    ``removed`` is False when nothing was mapped, when the mapping was not made
    by smbvol (and ``force`` was not given), or when disks of the VMs in
    ``in_use_by`` still lie on the share — a share in use is never unmapped.
    """

    share_path: str
    removed: bool
    mapping_kind: Optional[str]
    owned: Optional[bool]
    in_use_by: Tuple[str, ...]
    changed: bool
    volume_id: Optional[str] = None
    host: Optional[str] = None
    warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class DiskAttachment(_Result):
    """One hard disk of a VM, as ``list_attachments`` reports it.

    An image file has its path in ``disk_path`` (``share_path``: the share it lies
    on).  A passthrough disk has the host's ``disk_number`` and ``disk_path``
    ``\\\\.\\PHYSICALDRIVE<n>`` (what ``get_disk_resource_path`` answers for an
    iSCSI volume); when an iSCSI session of the host reaches that disk, ``target_iqn``,
    ``target_lun`` and ``target_portal`` (``host:port``) say which LUN it is.  They are
    None for image files and for disks no iSCSI session reaches.
    """

    vm_name: str
    vm_id: Optional[str]
    controller_type: Optional[str]
    controller_number: Optional[int]
    controller_location: Optional[int]
    disk_path: Optional[str]
    share_path: Optional[str] = None
    maximum_iops: Optional[int] = None
    minimum_iops: Optional[int] = None
    disk_number: Optional[int] = None
    target_iqn: Optional[str] = None
    target_lun: Optional[int] = None
    target_portal: Optional[str] = None
    host: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class VolumeConnector(_Result):
    """The host as Cinder's ``initialize_connection`` wants it (see :meth:`to_connector`)."""

    host: str
    ip: Optional[str]
    initiator: Optional[str]
    initiators: Tuple[str, ...]
    multipath: bool
    fqdn: Optional[str] = None
    ips: Tuple[str, ...] = ()
    os_type: str = "nt"
    platform: str = "x86_64"

    def to_connector(self) -> Dict[str, Any]:
        """Nova's connector dict: host, ip, initiator, multipath, os_type, platform."""
        out: Dict[str, Any] = {"host": self.host, "ip": self.ip, "multipath": self.multipath,
                               "os_type": self.os_type, "platform": self.platform}
        if self.initiator:
            out["initiator"] = self.initiator
        return out


def as_int(value: Any) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_tuple(value: Any) -> Tuple[str, ...]:
    """A PowerShell array as a tuple (5.1 writes a one-element array as a scalar)."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)


def as_list(value: Any) -> List[Mapping[str, Any]]:
    """A list of result objects (a lone object, or None, as PowerShell 5.1 may print it)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]
