"""The volume driver interface: connection_info in, planned invocations and typed results out.

A driver knows one ``driver_volume_type``.  It parses a Cinder connection_info
into its typed properties, plans each operation as a
:class:`~smbvol.results.Invocation` (operation name, parameters, render
options), and turns the result dict the template printed into a
:mod:`smbvol.results` dataclass.  It performs no I/O of its own: running the
invocation, retries and locking belong to :class:`smbvol.VolumeOps`.
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Mapping, Optional, Sequence, Tuple

from smbvol import exceptions, results
from smbvol.envelope import ScriptResult

LOG = logging.getLogger(__name__)

DISK_BUSES = ("scsi", "ide")
RO_OPTION = "[hyperv] allow_read_only_as_read_write"


class VolumeDriver(abc.ABC):
    """Base of every driver.  ``conf`` is an oslo.config ``ConfigOpts`` with smbvol's options."""

    #: The ``driver_volume_type`` this driver serves (``smbfs``, ``iscsi``).
    driver_volume_type = "abstract"

    def __init__(self, conf) -> None:
        self.conf = conf

    # -- connection_info ---------------------------------------------------
    @abc.abstractmethod
    def parse(self, connection_info: Mapping[str, Any]) -> Any:
        """The typed properties of ``connection_info`` (raises InvalidConnectionInfo)."""

    @abc.abstractmethod
    def volume_id(self, props: Any) -> Optional[str]:
        """The volume id (Nova's ``serial``, else Cinder's ``volume_id``)."""

    @abc.abstractmethod
    def describe(self, props: Any) -> str:
        """A short text naming the volume and where it lives, for messages (no secret)."""

    #: For the read-only refusal: what Hyper-V attaches, and what the VM could then write.
    attach_kind = "attach"
    medium = "volume"

    def _lock_timeout(self) -> int:
        return int(self.conf.hyperv.host_lock_timeout)

    def _check_writable(self, props: Any, instance_name: str) -> None:
        """Refuse ``access_mode: ro`` unless the operator allowed it (then warn loudly).

        Hyper-V has no verified read-only attach: the VM could write to the volume (for a
        snapshot attach that corrupts the image chain).
        """
        if not props.read_only:
            return
        if not self.conf.hyperv.allow_read_only_as_read_write:
            raise exceptions.InvalidInput(
                field="access_mode", value="ro",
                message="refusing to attach %s to VM %s: its access_mode is 'ro' but there is "
                        "no verified read-only %s in Hyper-V, so the VM could write to the %s "
                        "(for a snapshot attach that corrupts the image chain). To attach it "
                        "read-write anyway, set %s = true."
                        % (self.describe(props), instance_name, self.attach_kind, self.medium,
                           RO_OPTION))
        LOG.warning("ATTACHING A READ-ONLY VOLUME READ-WRITE: %s has access_mode 'ro' but is "
                    "attached writable to VM %s because %s is set; Hyper-V cannot enforce "
                    "read-only access and the VM can modify the %s",
                    self.describe(props), instance_name, RO_OPTION, self.medium)

    def lock_keys(self, props: Any) -> Tuple[str, ...]:
        """Names of the shared resources (shares, targets) to lock around connect/attach."""
        return ()

    # -- plans -------------------------------------------------------------
    @abc.abstractmethod
    def plan_connect(self, props: Any) -> results.Invocation:
        """Make the volume reachable by Hyper-V on the host."""

    @abc.abstractmethod
    def plan_disconnect(self, props: Any, force: bool = False) -> results.Invocation:
        """Undo :meth:`plan_connect` when nothing on the host still uses it."""

    @abc.abstractmethod
    def plan_attach(self, props: Any, instance_name: str,
                    disk_bus: str = "scsi") -> results.Invocation:
        """Connect and attach the volume to the VM."""

    def plan_attach_many(self, props_list: Sequence[Any],
                         instance_name: str) -> Optional[results.Invocation]:
        """Attach several volumes in one invocation, or None when the driver cannot."""
        return None

    @abc.abstractmethod
    def plan_detach(self, props: Any, instance_name: str) -> results.Invocation:
        """Remove the volume's disk from the VM."""

    def was_attached(self, props: Any,
                     attachments: Sequence[results.DiskAttachment]) -> bool:
        """Whether a disk of ``attachments`` (one VM's disks) may be this volume's.

        Used before an attach to learn what a failed attach must never detach, so a
        doubt answers True.  Default: True (a driver that cannot tell never has a
        disk detached by the clean-up of a failed attach).
        """
        return True

    # -- results -------------------------------------------------------------
    @abc.abstractmethod
    def to_connection(self, res: ScriptResult, inv: results.Invocation) -> Any:
        """The result of :meth:`plan_connect`: the driver's connection result
        (:class:`~smbvol.results.ShareConnection` for SMB, ``IscsiConnection`` for iSCSI)."""

    @abc.abstractmethod
    def to_disconnection(self, res: ScriptResult, inv: results.Invocation) -> Any:
        """The result of :meth:`plan_disconnect`: the driver's disconnection result
        (:class:`~smbvol.results.ShareDisconnection` for SMB, ``IscsiDisconnection`` for
        iSCSI)."""

    def disconnection_refused(self, exc: exceptions.DiskInUse, inv: results.Invocation,
                              host: str) -> Any:
        """The result of :meth:`plan_disconnect` when the host refused: still in use.

        Disconnecting a share that other disks still use is not a failure for Nova
        (the next volume on the share keeps it): nothing is removed, and
        ``in_use_by`` names the VMs the host reported.
        """
        data = exc.data or {}
        users = results.as_tuple(data.get("vms") or data.get("in_use_by"))
        return results.ShareDisconnection(
            share_path=str(data.get("share") or inv.parameters.get("SharePath") or ""),
            removed=False, mapping_kind=None, owned=None, in_use_by=users, changed=False,
            volume_id=inv.volume_id, host=host)

    @abc.abstractmethod
    def to_attachment(self, res: ScriptResult, inv: results.Invocation
                      ) -> results.Attachment:
        """The result of :meth:`plan_attach`."""

    def to_attachments(self, res: ScriptResult, inv: results.Invocation,
                       volume_ids: Sequence[Optional[str]]) -> Tuple[results.Attachment, ...]:
        """The result of :meth:`plan_attach_many`, in the order of ``volume_ids``."""
        raise NotImplementedError

    def to_detachment(self, res: ScriptResult, inv: results.Invocation
                      ) -> results.Detachment:
        """The result of :meth:`plan_detach` (the same fields for every driver)."""
        r = res.result
        return results.Detachment(
            vm_name=str(r.get("vm_name") or inv.parameters["VMName"]),
            vm_id=r.get("vm_id") or None,
            disk_path=r.get("disk_path") or None,
            removed=bool(r.get("removed")),
            changed=bool(r.get("changed")),
            controller_type=r.get("controller_type") or None,
            controller_number=results.as_int(r.get("controller_number")),
            controller_location=results.as_int(r.get("controller_location")),
            volume_id=inv.volume_id, host=res.host, warnings=res.warnings)

    @abc.abstractmethod
    def disk_path(self, connection: Any, props: Any) -> str:
        """The path Hyper-V uses for the volume once connected."""

    # -- shared checks -----------------------------------------------------
    def check_instance_name(self, instance_name: Any) -> str:
        if not isinstance(instance_name, str) or not instance_name.strip():
            raise exceptions.InvalidInput(
                field="instance_name", value=instance_name,
                reason="give the name of the Hyper-V VM (a non-empty string)")
        return instance_name

    def check_disk_bus(self, disk_bus: Any, instance_name: str) -> str:
        bus = disk_bus.lower() if isinstance(disk_bus, str) else disk_bus
        if bus not in DISK_BUSES:
            raise exceptions.InvalidInput(
                field="disk_bus", value=disk_bus,
                reason="use 'scsi' (any VM) or 'ide' (a Generation 1 VM that is off) for VM %s"
                % instance_name)
        if bus == "ide" and not self.conf.hyperv.allow_ide_attach:
            raise exceptions.InvalidInput(
                field="disk_bus", value=disk_bus,
                reason="IDE attach is disabled by [hyperv] allow_ide_attach; attach to VM %s "
                       "with disk_bus 'scsi'" % instance_name)
        return bus
