r'''Test helpers shipped with smbvol: an in-memory Hyper-V host speaking the script contract.

:class:`HostDouble` answers every operation of :data:`smbvol.scripts.OPERATIONS` (SMB and
iSCSI) the way the PowerShell templates do on a real host, and plugs into
:class:`smbvol.executors.FakeExecutor` as its handler, so code above the executor (VolumeOps,
the CLI, a Nova driver's own tests) runs unchanged against it.  This runs as it is::

    from smbvol import VolumeOps, opts
    from smbvol.testing import HostDouble

    host = HostDouble("hv01")
    host.add_vm("instance-1")
    host.add_share("//fs01/vols", files=["volume-1.vhdx"])
    ops = VolumeOps(host.executor(), opts.new_conf())
    attachment = ops.attach_volume(
        {"driver_volume_type": "smbfs",
         "data": {"export": "//fs01/vols", "name": "volume-1.vhdx"}},
        "instance-1")
    assert attachment.disk_path == r"\\fs01\vols\volume-1.vhdx"
    assert [d.path for d in host.vms["instance-1"].disks] == [attachment.disk_path]

What the double holds (VMs, shares, mappings, iSCSI targets and sessions), how to inject a
failure (:meth:`HostDouble.fail_next`) or hold a host lock (:meth:`HostDouble.hold_lock`),
and its saved state (:meth:`HostDouble.to_dict` / :meth:`HostDouble.from_dict`) are
described in :mod:`smbvol.testing.hostdouble` and :mod:`smbvol.testing.iscsi`.
'''

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence
from typing import Mapping as TMapping

from smbvol.testing import iscsi as _iscsi
from smbvol.testing.calls import HostCall
from smbvol.testing.iscsi import CHAP_SECRETS
from smbvol.testing.state import DEFAULT_SECRETS, VM, Disk, Mapping, Share


class HostDouble(_iscsi.HostDouble):
    """An in-memory Hyper-V host (SMB and iSCSI) that answers scripts like the templates.

    ``host_name`` names the host (``host_info``, error messages); ``addresses`` and
    ``domain`` are its IP addresses and DNS domain (a share on one of them is local).
    ``global_mapping_supported=False`` models a host without ``New-SmbGlobalMapping``
    (mappings are then per user), ``remote_session=True`` a remoting session without
    credential delegation (the double hop: SMB logon fails with error 1312).
    ``secrets`` maps the ``password_ref`` names of saved states to passwords.
    ``serialize=False`` drops the host mutex around a whole operation, and
    ``race_window`` (no arguments) then runs between choosing a free slot and adding
    the disk there, to test client-side locking.

    :meth:`executor` gives a :class:`~smbvol.executors.FakeExecutor` answered by this
    double; see :mod:`smbvol.testing` for a complete example.
    """

    def __init__(self, host_name: str = "hv01", *, addresses: Sequence[str] = ("10.0.0.11",),
                 domain: str = "example.test", global_mapping_supported: bool = True,
                 remote_session: bool = False, secrets: Optional[TMapping[str, Any]] = None,
                 serialize: bool = True,
                 race_window: Optional[Callable[[], None]] = None) -> None:
        super().__init__(host_name, addresses=addresses, domain=domain,
                         global_mapping_supported=global_mapping_supported,
                         remote_session=remote_session, secrets=secrets,
                         serialize=serialize, race_window=race_window)


__all__ = ["CHAP_SECRETS", "DEFAULT_SECRETS", "Disk", "HostCall", "HostDouble", "Mapping", "Share",
           "VM"]
