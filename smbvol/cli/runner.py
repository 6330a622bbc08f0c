"""VolumeOps as the command line uses it: already-parsed volumes, and a dry run.

The command line parses every volume before it contacts a host (so bad input
is a usage error) and attaches a share password typed by the operator as a
:class:`~smbvol.secret.Credential` rather than through a mount-options string;
it hands VolumeOps the parsed properties, which VolumeOps takes in place of a
connection_info dict.

:class:`DryRunExecutor` is the executor of ``--dry-run``: it refuses to run
anything, so planning a dry run provably does no I/O.
"""

from __future__ import annotations

from typing import Any, Mapping

from smbvol import exceptions
from smbvol.executors.base import Executor, RawOutput
from smbvol.volumeops import VolumeOps


class DryRunExecutor(Executor):
    """An executor that never runs a script (``--dry-run``)."""

    kind = "dry-run"

    def handle(self, script, parameters: Mapping[str, Any], timeout: float) -> RawOutput:
        raise exceptions.ExecutorError(host=self.host,
                                       reason="--dry-run does not run %s" % script.name)


# The CLI passes each Volume's parsed properties to VolumeOps, which takes them as well as
# Cinder's connection_info dicts.
CliVolumeOps = VolumeOps
