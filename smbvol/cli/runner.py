"""VolumeOps as the command line uses it: already-parsed volumes, and a dry run.

The command line parses every volume before it contacts a host (so bad input
is a usage error) and attaches a share password typed by the operator as a
:class:`~smbvol.secret.Credential` rather than through a mount-options string.
:class:`CliVolumeOps` therefore also accepts a :class:`~smbvol.cli.volumes.Volume`
where :class:`smbvol.volumeops.VolumeOps` takes a connection_info dict.

:class:`DryRunExecutor` is the executor of ``--dry-run``: it refuses to run
anything, so planning a dry run provably does no I/O.
"""

from __future__ import annotations

from typing import Any, Mapping, Tuple

from smbvol import exceptions
from smbvol.cli.volumes import Volume
from smbvol.executors.base import Executor, RawOutput
from smbvol.volumeops import VolumeOps


class DryRunExecutor(Executor):
    """An executor that never runs a script (``--dry-run``)."""

    kind = "dry-run"

    def handle(self, script, parameters: Mapping[str, Any], timeout: float) -> RawOutput:
        raise exceptions.ExecutorError(host=self.host,
                                       reason="--dry-run does not run %s" % script.name)


class CliVolumeOps(VolumeOps):
    """VolumeOps that also takes a :class:`Volume` (parsed by its driver) as connection_info."""

    def _resolve(self, connection_info: Any) -> Tuple[Any, Any]:
        if isinstance(connection_info, Volume):
            return self.driver(connection_info.driver_volume_type), connection_info.props
        return super()._resolve(connection_info)
