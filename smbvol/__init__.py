"""smbvol: attach VHD/VHDX volumes on SMB shares (and iSCSI LUNs) to Hyper-V VMs.

The API Nova's Hyper-V driver (or any caller) uses:

* :class:`smbvol.VolumeOps` (``smbvol.volumeops``) — ``VolumeOps(executor, conf)``
  works on the host its executor reaches: ``attach_volume``, ``detach_volume``,
  ``attach_volumes``, ``connect_volume``, ``disconnect_volume``,
  ``list_attachments``, ``get_volume_connector``... each taking Cinder's
  connection_info (``driver_volume_type`` ``smbfs`` or ``iscsi``);
* :mod:`smbvol.executors` — ``get_executor(conf, host)`` gives the local,
  WinRM or PSRP executor that ``[smbvol] transport`` names;
* :mod:`smbvol.opts` — ``register_opts(conf)`` puts smbvol's ``[smbvol]`` and
  ``[hyperv]`` options on your ``ConfigOpts`` (``new_conf()`` makes one);
* :mod:`smbvol.connection` — ``parse_smb`` / ``parse_iscsi``: the connection_info
  checked and typed, before anything is sent to a host;
* :mod:`smbvol.results` and :mod:`smbvol.exceptions` — the typed results and the
  errors (each names what failed and what to do, never a secret);
* :mod:`smbvol.testing` — ``HostDouble``, an in-memory Hyper-V host for tests.

Example::

    from smbvol import VolumeOps, executors, opts

    conf = opts.new_conf()
    ops = VolumeOps(executors.get_executor(conf), conf)
    ops.attach_volume(connection_info, "instance-0001")

``import smbvol`` is light: :class:`VolumeOps` is imported on first use.  The
package ships ``py.typed``: its annotations are checked by the tests (mypy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:  # for type checkers; at run time VolumeOps is imported on first use
    from smbvol.volumeops import VolumeOps

__version__ = "0.1.0"

__all__ = ["VolumeOps"]


def __getattr__(name: str) -> Any:
    """``smbvol.VolumeOps``, imported on first use (``import smbvol`` stays light)."""
    if name == "VolumeOps":
        from smbvol.volumeops import VolumeOps
        return VolumeOps
    raise AttributeError("module 'smbvol' has no attribute %r" % name)


def __dir__() -> List[str]:
    """The module's names with :class:`VolumeOps`, so ``help(smbvol)`` shows it."""
    return sorted(set(globals()) | set(__all__))
