"""Volume drivers, chosen by the connection_info's ``driver_volume_type``.

==============  ===========================================  ==============================
type            class                                        volumes
==============  ===========================================  ==============================
smbfs           smbvol.drivers.smb:SMBVolumeDriver           VHD/VHDX images on SMB shares
iscsi           smbvol.drivers.iscsi:ISCSIVolumeDriver       iSCSI LUNs as passthrough disks
==============  ===========================================  ==============================

Other packages add drivers through the ``smbvol.drivers`` entry-point group
(``name = module:Class``); the table above wins over an entry point of the same
name.  Classes are imported when first used.  An unknown type, or one whose
class cannot be loaded, raises :class:`~smbvol.exceptions.UnknownDriverType`
naming the known types.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Dict, Mapping, Tuple

from smbvol import exceptions

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "smbvol.drivers"

DRIVERS: Mapping[str, str] = {
    "smbfs": "smbvol.drivers.smb:SMBVolumeDriver",
    "iscsi": "smbvol.drivers.iscsi:ISCSIVolumeDriver",
}


def _entry_points() -> Dict[str, str]:
    """``name → module:Class`` of the ``smbvol.drivers`` entry points."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return {}
    try:
        eps = metadata.entry_points()
        if hasattr(eps, "select"):
            group = eps.select(group=ENTRY_POINT_GROUP)
        else:  # Python 3.9: a dict of group → entry points
            group = eps.get(ENTRY_POINT_GROUP, ())  # type: ignore[arg-type]
    except Exception as exc:  # a broken distribution must not hide the built-in drivers
        LOG.warning("cannot read the %s entry points: %s", ENTRY_POINT_GROUP, exc)
        return {}
    return {ep.name.lower(): ep.value for ep in group}


def registry() -> Dict[str, str]:
    """Every known ``driver_volume_type → module:Class`` (built-in table wins)."""
    table = _entry_points()
    table.update(DRIVERS)
    return table


def known_types() -> Tuple[str, ...]:
    return tuple(sorted(registry()))


def driver_type_of(connection_info: Any) -> str:
    """The normalised ``driver_volume_type`` of ``connection_info`` (lower case)."""
    if not isinstance(connection_info, Mapping):
        raise exceptions.InvalidConnectionInfo(
            field="connection_info", value=type(connection_info).__name__,
            reason="expected the dict Cinder's initialize_connection returns")
    value = connection_info.get("driver_volume_type")
    if not isinstance(value, str) or not value.strip():
        raise exceptions.UnknownDriverType(
            value=value, known=", ".join(known_types()),
            message="connection_info has no driver_volume_type (got %r); use one of %s"
            % (value, ", ".join(known_types())))
    return value.strip().lower()


def driver_class(driver_volume_type: str) -> type:
    """The driver class for ``driver_volume_type``, imported now."""
    table = registry()
    name = (driver_volume_type or "").strip().lower()
    known = ", ".join(sorted(table))
    try:
        path = table[name]
    except KeyError:
        raise exceptions.UnknownDriverType(value=driver_volume_type, known=known) from None
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise exceptions.UnknownDriverType(
            value=driver_volume_type, known=known,
            message="driver_volume_type %r is registered as %s but cannot be loaded (%s: %s); "
                    "known types: %s" % (driver_volume_type, path, type(exc).__name__, exc,
                                         known)) from exc
    return cls


def get_driver(driver_volume_type: str, conf):
    """A new driver instance for ``driver_volume_type`` configured by ``conf``."""
    return driver_class(driver_volume_type)(conf)


__all__ = ["DRIVERS", "ENTRY_POINT_GROUP", "driver_class", "driver_type_of", "get_driver",
           "known_types", "registry"]
