"""The ``smbvol`` command line (cliff): attach, detach, list, mount, unmount, host facts.

See :mod:`smbvol.cli.app` for the application and :mod:`smbvol.cli.errors` for
the exit codes.
"""

from __future__ import annotations


def main(argv=None, **kwargs) -> int:
    """The console script; see :func:`smbvol.cli.app.main`."""
    from smbvol.cli.app import main as app_main

    return app_main(argv, **kwargs)


__all__ = ["main"]
