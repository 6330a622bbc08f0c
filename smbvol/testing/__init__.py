"""Test helpers shipped with smbvol: an in-memory Hyper-V host speaking the script contract.

:class:`HostDouble` answers every SMB operation of :data:`smbvol.scripts.OPERATIONS` the way
the PowerShell templates do on a real host, and plugs into
:class:`smbvol.executors.FakeExecutor` as its handler, so code above the executor (VolumeOps,
the CLI, a Nova driver's own tests) runs unchanged against it::

    from smbvol.testing import HostDouble

    host = HostDouble("hv01")
    host.add_vm("instance-1")
    host.add_share(r"\\\\fs01\\vols", files=["volume-1.vhdx"])
    ops = VolumeOps(host.executor(), conf)
"""

from __future__ import annotations

from smbvol.testing.calls import HostCall
from smbvol.testing.iscsi import CHAP_SECRETS, HostDouble  # the double with its iSCSI part
from smbvol.testing.state import DEFAULT_SECRETS, VM, Disk, Mapping, Share

__all__ = ["CHAP_SECRETS", "DEFAULT_SECRETS", "Disk", "HostCall", "HostDouble", "Mapping", "Share",
           "VM"]
