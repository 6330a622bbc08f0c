"""The volume options of the commands, turned into a checked volume.

``--connection-info FILE|-`` takes the JSON Cinder returns (the connection_info
itself, or an object holding it under ``connection_info``); ``--export`` and
``--name`` (and ``--format``) describe an SMB image directly.  Either way the
volume is parsed by its driver before anything runs, so a malformed export,
file name or connection_info is a usage error (exit code 2).

A share user given with ``--share-username`` gets its password from
:func:`smbvol.cli.settings.share_password`; the password is attached to the
parsed volume as a :class:`~smbvol.secret.Credential` and never goes through a
mount-options string.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from typing import Any, Callable, Mapping, Optional, TextIO

from smbvol import connection, drivers, exceptions
from smbvol.cli.errors import FlagError, UsageError
from smbvol.drivers.smb import SMBVolumeDriver
from smbvol.secret import Credential, Secret

LOG = logging.getLogger(__name__)

DISK_FORMATS = ("vhd", "vhdx", "vpc")
#: The connection_info field each volume flag stands for (errors name the flag).
FLAG_OF_FIELD = {"data.export": "--export", "export": "--export", "--export": "--export",
                 "data.name": "--name", "data.format": "--format"}
PasswordFor = Callable[[str], Secret]
DISK_BUSES = ("scsi", "ide")


@dataclasses.dataclass(frozen=True)
class Volume:
    """A volume parsed by its driver: ``props`` is e.g. a SmbConnectionInfo."""

    driver_volume_type: str
    props: Any

    @property
    def volume_id(self) -> Optional[str]:
        return getattr(self.props, "serial", None) or getattr(self.props, "volume_id", None)


class FormatAction(argparse.Action):
    """``--format``: a disk format (vhd, vhdx) or, as ``-f``, an output format.

    cliff's output option is ``-f/--format``; the volume commands also take the
    image format as ``--format vhd|vhdx``.  The two sets of values do not
    overlap, so ``--format`` sets whichever the value names.
    """

    def __init__(self, option_strings, dest, output_formats=(), **kwargs) -> None:
        self.output_formats = tuple(output_formats)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        value = str(values).strip().lower()
        if value in DISK_FORMATS:
            setattr(namespace, self.dest, value)
        elif value in self.output_formats:
            namespace.formatter = value
        else:
            parser.error("argument --format: %r is neither a disk format (%s) nor an output "
                         "format (%s)" % (values, ", ".join(DISK_FORMATS[:2]),
                                          ", ".join(self.output_formats)))


def _take_over_format_option(parser: argparse.ArgumentParser) -> tuple:
    """Leave ``-f`` to cliff's output formatter and return its choices."""
    action = parser._option_string_actions.get("--format")
    choices: tuple = ()
    if action is not None and action.dest == "formatter":
        choices = tuple(action.choices or ())
        action.option_strings.remove("--format")
        del parser._option_string_actions["--format"]
    return choices


def add_volume_arguments(parser: argparse.ArgumentParser, *, image: bool = True,
                         disk_bus: bool = False, force: bool = False) -> None:
    """The volume options (and ``--dry-run``) of a mutating command."""
    output_formats = _take_over_format_option(parser)
    group = parser.add_argument_group("volume")
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--connection-info", metavar="FILE|-",
        help="the connection_info JSON Cinder returned, from a file or '-' for stdin")
    source.add_argument(
        "--export", metavar="EXPORT",
        help="the share, //server/share[/dir] or \\\\server\\share[\\dir]")
    group.add_argument(
        "--name", metavar="NAME",
        help="the image file name on the share (e.g. volume-1.vhdx)%s"
        % ("" if image else "; not needed to unmount"))
    if image:
        group.add_argument(
            "--format", dest="disk_format", metavar="vhd|vhdx", default=None,
            action=FormatAction, output_formats=output_formats,
            help="image format when --name has no extension (vhd or vhdx); an output "
                 "format given as --format works as -f")
    group.add_argument(
        "--share-username", metavar="USER",
        help="user for the share (DOMAIN\\user or user@domain); its password is read from "
             "--share-password-file, else $SMBVOL_SHARE_PASSWORD, else prompted for")
    group.add_argument(
        "--share-password-file", metavar="FILE",
        help="file whose first line is the share password")
    if disk_bus:
        group.add_argument("--disk-bus", choices=DISK_BUSES, default="scsi",
                           help="controller type (ide only for a Generation 1 VM that is off)")
    if force:
        group.add_argument("--force", action="store_true",
                           help="also remove a mapping smbvol did not create (never one in use)")
    group.add_argument(
        "--dry-run", action="store_true",
        help="print the PowerShell script that would run, and run nothing; parameters "
             "(secrets as ***) go to stderr")


def _load_json(source: str, stdin: TextIO) -> Any:
    field = "--connection-info"
    try:
        if source == "-":
            text = stdin.read()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(reason="%s %s: %s" % (field, source, exc.strerror or exc)) from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        # The text may hold a password: name the place of the error, never the text.
        raise exceptions.InvalidConnectionInfo(
            field="connection_info", value=source,
            reason="not valid JSON (line %s column %s): %s" % (
                getattr(exc, "lineno", "?"), getattr(exc, "colno", "?"),
                getattr(exc, "msg", "syntax error"))) from None


def connection_info_document(source: str, stdin: TextIO) -> Mapping[str, Any]:
    """The connection_info dict of ``--connection-info`` (unwrapped if nested)."""
    doc = _load_json(source, stdin)
    if isinstance(doc, Mapping) and "driver_volume_type" not in doc and isinstance(
            doc.get("connection_info"), Mapping):
        doc = doc["connection_info"]
    if not isinstance(doc, Mapping):
        raise exceptions.InvalidConnectionInfo(
            field="connection_info", value=source,
            reason="expected a JSON object with driver_volume_type and data")
    return doc


def flag_error(exc: exceptions.InvalidInput) -> FlagError:
    """``exc`` (about a connection_info field) as the error of the flag the user typed."""
    field = str(exc.kwargs.get("field", ""))
    reason = str(exc.kwargs.get("reason", exc))
    for name in ("data.export", "data.name", "data.format"):
        reason = reason.replace(name + " ", FLAG_OF_FIELD[name] + " ")
    return FlagError(field=FLAG_OF_FIELD.get(field, field), value=exc.kwargs.get("value"),
                     reason=reason)


def _smb_from_flags(data: Mapping[str, Any]) -> connection.SmbConnectionInfo:
    try:
        return connection.parse_smb({"driver_volume_type": connection.SMB_DRIVER_TYPE,
                                     "data": data})
    except exceptions.InvalidConnectionInfo as exc:
        raise flag_error(exc) from None


def _unmount_only(export: str, name: Optional[str]) -> connection.SmbConnectionInfo:
    """An SMB volume known only by its share (``share unmount --export``)."""
    if name:
        return _smb_from_flags({"export": export, "name": name})
    try:
        host, share, subdir = connection.normalise_export(export, field="--export")
    except exceptions.InvalidConnectionInfo as exc:
        raise flag_error(exc) from None
    return connection.SmbConnectionInfo(
        driver_volume_type=connection.SMB_DRIVER_TYPE, host=host, share=share, subdir=subdir,
        export=connection.unc_path(host, share, subdir), disk_name="", format="vhdx",
        credential=None, access_mode="rw", qos=connection.QoS(), volume_id=None, serial=None)


def volume_from_args(args: argparse.Namespace, conf, stdin: TextIO, *,
                     image: bool = True, password_for: Optional[PasswordFor] = None) -> Volume:
    """The checked volume of the command line.

    ``password_for(username)`` gives the share password when a connection_info's
    ``data.options`` names a user without one; else no password is attached yet.
    """
    if getattr(args, "connection_info", None):
        if getattr(args, "name", None) or getattr(args, "disk_format", None):
            raise UsageError(reason="--name and --format go with --export, not with "
                                    "--connection-info")
        doc = connection_info_document(args.connection_info, stdin)
        dtype = drivers.driver_type_of(doc)
        driver = drivers.get_driver(dtype, conf)
        if isinstance(driver, SMBVolumeDriver) and password_for is not None:
            props = driver.parse(doc, password_for)
        else:
            props = driver.parse(doc)
        return Volume(driver_volume_type=dtype, props=props)
    if not getattr(args, "export", None):
        raise UsageError(reason="give the volume: --export EXPORT %sor --connection-info FILE"
                                % ("--name NAME " if image else ""))
    if not image:
        return Volume(connection.SMB_DRIVER_TYPE, _unmount_only(args.export, args.name))
    if not args.name:
        raise UsageError(reason="--export needs --name NAME, the image file on the share")
    data = {"export": args.export, "name": args.name}
    if args.disk_format:
        data["format"] = args.disk_format
    return Volume(driver_volume_type=connection.SMB_DRIVER_TYPE, props=_smb_from_flags(data))


def with_share_credential(volume: Volume, username: str, password: Secret) -> Volume:
    """``volume`` whose share is reached as ``username``."""
    if not username or not username.strip():
        raise exceptions.InvalidInput(field="--share-username", value=username,
                                      reason="is empty; give DOMAIN\\user or user@domain")
    if any(ord(c) < 32 for c in username):
        raise exceptions.InvalidInput(field="--share-username", value=username,
                                      reason="contains a control character; remove it")
    if not isinstance(volume.props, connection.SmbConnectionInfo):
        raise UsageError(reason="--share-username applies to SMB volumes only, not %s"
                                % volume.driver_volume_type)
    props = dataclasses.replace(volume.props,
                                credential=Credential(username=username.strip(),
                                                      password=password))
    return Volume(driver_volume_type=volume.driver_volume_type, props=props)


def secrets_of(volume: Volume):
    """Every secret string the volume carries (for log masking)."""
    cred = getattr(volume.props, "credential", None) or getattr(volume.props, "chap", None)
    if isinstance(cred, Credential) and cred.password.reveal():
        yield cred.password.reveal()
