"""Typed connection_info: what Cinder returns from ``initialize_connection``.

Cinder's SMB driver returns::

    {"driver_volume_type": "smbfs",
     "data": {"export": "//host/share[/sub/dir]", "name": "volume-1.vhdx",
              "format": "vhdx", "options": "-o username=svc,password=...",
              "access_mode": "rw", "qos_specs": {...}, "volume_id": "..."},
     "serial": "..."}                      # added by Nova

and its iSCSI drivers return ``target_portal``/``target_iqn``/``target_lun``
(or the multipath lists ``target_portals``/``target_iqns``/``target_luns``)
with optional CHAP credentials.  :func:`parse_smb` and :func:`parse_iscsi`
check every value before anything is sent to a host and turn the dict into
frozen dataclasses; every error is an
:class:`~smbvol.exceptions.InvalidConnectionInfo` naming the field (e.g.
``data.export``), the bad value and the fix.  Passwords and CHAP secrets are
held as :class:`~smbvol.secret.Secret` and never appear in a message, a log
line or a ``repr()``.

Nothing here talks to a host.  What the host does with the result: the SMB
templates map :attr:`SmbConnectionInfo.share_root` (with the credential) and
attach :attr:`SmbConnectionInfo.disk_path`; the iSCSI templates add each
portal, log in to each target (with CHAP when given) and attach the LUN's disk.
"""

from __future__ import annotations

import dataclasses
import decimal
import ipaddress
import logging
import math
import re
import unicodedata
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from smbvol import exceptions
from smbvol.secret import MASK, Credential, Secret

LOG = logging.getLogger(__name__)

SMB_DRIVER_TYPE = "smbfs"
ISCSI_DRIVER_TYPE = "iscsi"
DEFAULT_ISCSI_PORT = 3260

#: Hyper-V's QoS unit: IOPS normalised to 8 KB.
NORMALISED_IO_SIZE = 8192
#: Largest IOPS value accepted (Hyper-V stores MaximumIOPS/MinimumIOPS as UInt64;
#: PowerShell's [long] parameters hold this much).
MAX_IOPS = 2 ** 63 - 1

#: Disk formats Hyper-V attaches by path; ``vpc`` is qemu's name for VHD.
FORMATS = ("vhd", "vhdx")
FORMAT_ALIASES = {"vpc": "vhd"}
#: Extensions of other hypervisors' image formats: a name with one is refused, since
#: Hyper-V cannot attach it whatever ``format`` says.
OTHER_IMAGE_FORMATS = ("qcow2", "qcow", "qed", "vmdk", "vdi", "raw")
CONVERT_HINT = "convert the volume (qemu-img convert -O vhdx) or fix the format"

ACCESS_MODES = ("rw", "ro")

#: MS-FSCC 2.1.6: characters a share name cannot hold (besides control characters).
SHARE_INVALID_CHARS = '"\\/[]:|<>+=;,*?'
SHARE_NAME_MAX = 80
#: MS-FSCC 2.1.5: characters a file or directory name cannot hold.
NAME_INVALID_CHARS = '"\\/:|<>*?'
NAME_MAX = 255
HOST_MAX = 255

IPV6_LITERAL_SUFFIX = ".ipv6-literal.net"

_SEPARATORS = re.compile(r"[\\/]")
_HOST_RE = re.compile(r"[\w.-]+")
_ZONE_RE = re.compile(r"[A-Za-z0-9_-]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_IQN_RE = re.compile(r"(?i)(iqn\.[0-9]{4}-[0-9]{2}\.\S+|eui\.[0-9a-f]{16}"
                     r"|naa\.[0-9a-f]{16}(?:[0-9a-f]{16})?)")
IQN_MAX = 223

_OPTIONS_GROUP_SPLIT = re.compile(r"(?:^|\s+)-o(?:\s+|$)")
USER_KEYS = ("username", "user")
PASSWORD_KEYS = ("password", "pass")
DOMAIN_KEYS = ("domain", "dom", "workgroup")
#: Keys that clearly mean a password but are not mount.cifs's: refused (never ignored).
_PASSWORD_LIKE = re.compile(r"pass|pwd|secret")
#: mount.cifs's credentials file: a file on the mounting machine, refused.
CREDENTIALS_KEYS = ("credentials", "cred")
#: Mount options of mount.cifs that mean nothing to Hyper-V: ignored (logged at DEBUG).
#: Any other key is logged as a WARNING by name (never its value); messages mask it.
KNOWN_MOUNT_OPTIONS = ("vers", "sec", "uid", "gid", "forceuid", "forcegid", "file_mode",
                       "dir_mode", "iocharset", "noperm", "perm", "rw", "ro", "soft", "hard",
                       "cache", "actimeo", "port", "nounix", "noserverino", "serverino",
                       "mfsymlinks", "nobrl", "seal", "sfu")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: A user, password or domain key after a space or ';': options not separated by commas.
_WRONG_SEPARATOR = re.compile(
    r"(?i)[\s;]-{0,2}(?:user(?:name)?|pass(?:word|wd)?|pwd|dom(?:ain)?|workgroup)"
    r"(?:\s*=|\s+\S)")
#: Characters Windows does not allow in a user or domain name.
USER_INVALID_CHARS = '"/[]:;|=,+*?<>'

QOS_MAX_IOPS = "total_iops_sec"
QOS_MAX_BYTES = "total_bytes_sec"
QOS_MIN_IOPS = "min_iops_sec"
QOS_KEYS = (QOS_MAX_IOPS, QOS_MAX_BYTES, QOS_MIN_IOPS)

_SHOWN_MAX = 200
EXPORT_HINT = "use //host/share[/sub/dir] or \\\\host\\share[\\sub\\dir]"


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class QoS:
    """Storage QoS for Hyper-V (``Set-VMHardDiskDrive -MaximumIOPS/-MinimumIOPS``).

    Values are normalised 8 KB IOPS; 0 means no limit / no reservation.
    ``ignored`` lists the ``qos_specs`` keys Hyper-V cannot apply (sorted).
    """

    max_iops: int = 0
    min_iops: int = 0
    ignored: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SmbConnectionInfo:
    """A VHD/VHDX image on an SMB share, as the host will map and attach it."""

    driver_volume_type: str
    #: Host part as Windows uses it (IPv6 literals as ``fd00--1.ipv6-literal.net``).
    host: str
    share: str
    #: ``''`` or backslash-separated directories below the share (``a\\b``).
    subdir: str
    #: Normalised UNC path ``\\host\share[\sub\dir]``.
    export: str
    #: Image file name, always with its ``.vhd``/``.vhdx`` extension.
    disk_name: str
    format: str
    credential: Optional[Credential]
    access_mode: str
    qos: QoS
    volume_id: Optional[str]
    serial: Optional[str]

    @property
    def share_root(self) -> str:
        """``\\\\host\\share``: what the host maps (``New-SmbGlobalMapping -RemotePath``)."""
        return unc_path(self.host, self.share)

    @property
    def disk_path(self) -> str:
        """Full UNC path of the image file the VM gets."""
        return self.export + "\\" + self.disk_name

    @property
    def read_only(self) -> bool:
        return self.access_mode == "ro"


@dataclasses.dataclass(frozen=True)
class IscsiTarget:
    """One path to a LUN: portal (``host:port``, IPv6 as ``[addr]:port``), target IQN, LUN."""

    portal: str
    portal_host: str
    portal_port: int
    iqn: str
    lun: int


@dataclasses.dataclass(frozen=True)
class IscsiConnectionInfo:
    """An iSCSI LUN, reached over one or (multipath) several targets."""

    driver_volume_type: str
    targets: Tuple[IscsiTarget, ...]
    #: CHAP user name and secret (``auth_method: CHAP``), or None.
    chap: Optional[Credential]
    access_mode: str
    volume_id: Optional[str]
    serial: Optional[str]

    @property
    def multipath(self) -> bool:
        return len(self.targets) > 1

    @property
    def read_only(self) -> bool:
        return self.access_mode == "ro"


# --------------------------------------------------------------------------- errors


def _shown(value: Any) -> Any:
    """A bounded, printable stand-in for a (non-secret) bad value."""
    if isinstance(value, str):
        if len(value) > _SHOWN_MAX:
            return value[:_SHOWN_MAX] + "..."
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return "<%s>" % type(value).__name__


def _invalid(field: str, value: Any, reason: str) -> exceptions.InvalidConnectionInfo:
    return exceptions.InvalidConnectionInfo(field=field, value=_shown(value), reason=reason)


def _control_char(text: str) -> Optional[Tuple[int, str]]:
    for pos, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            return pos, char
    return None


def _check_no_controls(field: str, text: str, shown: Any = None) -> None:
    found = _control_char(text)
    if found is not None:
        pos, char = found
        what = "a NUL character" if char == "\x00" else "control character U+%04X" % ord(char)
        raise _invalid(field, text if shown is None else shown,
                       "contains %s at position %d; remove it" % (what, pos))


def _string(field: str, value: Any, example: str) -> str:
    if not isinstance(value, str):
        raise _invalid(field, value, "must be a string such as %s" % example)
    _check_no_controls(field, value)
    return value


def _optional_id(field: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    text = _string(field, value, "a volume UUID")
    if not text.strip():
        raise _invalid(field, value, "is empty; give the volume UUID or leave it out")
    return text


def _access_mode(field: str, value: Any) -> str:
    if value is None:
        return "rw"
    mode = _string(field, value, "'rw' or 'ro'").strip().lower()
    if mode not in ACCESS_MODES:
        raise _invalid(field, value, "must be 'rw' (read-write, the default) or 'ro' (read-only)")
    return mode


def _mapping(field: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise _invalid(field, value, "must be a JSON object (a mapping of names to values)")
    return value


def _driver_type(connection_info: Any, expected: str) -> Mapping:
    """``connection_info['data']`` once ``driver_volume_type`` is ``expected``."""
    ci = _mapping("connection_info", connection_info)
    dtype = ci.get("driver_volume_type")
    if not isinstance(dtype, str) or dtype.strip().lower() != expected:
        parsers = {SMB_DRIVER_TYPE: "parse_smb", ISCSI_DRIVER_TYPE: "parse_iscsi"}
        parser = parsers.get(dtype.strip().lower() if isinstance(dtype, str) else "",
                             "the driver registered for it")
        raise _invalid("driver_volume_type", dtype,
                       "expected %r here; this connection_info is parsed by %s"
                       % (expected, parser))
    return _mapping("data", ci.get("data"))


# --------------------------------------------------------------------------- SMB export


def _check_name(field: str, shown: str, name: str, what: str, invalid: str,
                max_len: int) -> None:
    """One share, directory or file name: no '.'/'..', no invalid character."""
    if name in (".", ".."):
        raise _invalid(field, shown, "%s %r is a relative path segment; give the real "
                       "name (%s)" % (what, name, EXPORT_HINT))
    bad = sorted({c for c in name if c in invalid})
    if bad:
        raise _invalid(field, shown, "%s %r contains %s, which Windows does not allow in a "
                       "%s; rename it (not allowed: %s)"
                       % (what, name, " ".join(repr(c) for c in bad), what, invalid))
    if name.endswith((".", " ")):
        raise _invalid(field, shown, "%s %r ends with a dot or space, which Windows strips, "
                       "so it would name another path; rename it" % (what, name))
    if len(name) > max_len:
        raise _invalid(field, shown, "%s of %d characters is longer than %d characters"
                       % (what, len(name), max_len))


def _ipv6_literal(field: str, shown: str, text: str) -> str:
    """An IPv6 address (optionally ``%zone``) as Windows' ``*.ipv6-literal.net`` name."""
    address, sep, zone = text.partition("%")
    if sep and not _ZONE_RE.fullmatch(zone):
        raise _invalid(field, shown, "IPv6 zone index %r must be letters, digits, '-' or '_' "
                       "(e.g. fe80::1%%4)" % zone)
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        raise _invalid(field, shown, "host %r is not a valid IPv6 address; ':' is only allowed "
                       "in IPv6 addresses and a UNC path cannot carry a port (%s)"
                       % (text, EXPORT_HINT)) from None
    compressed = ip.compressed
    # '::1' -> '0::1' so that the name does not start or end with '-'.
    if compressed.startswith("::"):
        compressed = "0" + compressed
    if compressed.endswith("::"):
        compressed += "0"
    name = compressed.replace(":", "-")
    if zone:
        name += "s" + zone
    return name + IPV6_LITERAL_SUFFIX


def _unc_host(field: str, shown: str, host: str) -> str:
    """The host part of an export as Windows uses it in a UNC path."""
    if not host:
        raise _invalid(field, shown, "has an empty host; %s" % EXPORT_HINT)
    if host in (".", ".."):
        raise _invalid(field, shown, "host %r is a relative path segment or a device path "
                       "prefix; %s" % (host, EXPORT_HINT))
    if host.startswith("["):
        if not host.endswith("]"):
            reason = ("a UNC path cannot carry a port" if "]:" in host
                      else "unbalanced '[' in the host")
            raise _invalid(field, shown, "%s; write an IPv6 host as //[fd00::1]/share" % reason)
        return _ipv6_literal(field, shown, host[1:-1])
    if ":" in host:
        return _ipv6_literal(field, shown, host)
    if len(host) > HOST_MAX:
        raise _invalid(field, shown, "host name is longer than %d characters" % HOST_MAX)
    if not _HOST_RE.fullmatch(host):
        bad = sorted({c for c in host if not _HOST_RE.fullmatch(c)})
        raise _invalid(field, shown, "host %r contains %s; a host is a name, an IPv4 address or "
                       "an IPv6 address (%s)"
                       % (host, " ".join(repr(c) for c in bad), EXPORT_HINT))
    if host.startswith(".") or host.endswith(".") or ".." in host:
        raise _invalid(field, shown, "host %r has an empty name label; remove the extra dot"
                       % host)
    return host


def normalise_export(export: str, field: str = "export") -> Tuple[str, str, str]:
    """``(host, share, subdir)`` of an SMB export in either slash style.

    ``//host/share/a/b`` and ``\\\\host\\share\\a\\b`` both give
    ``('host', 'share', 'a\\b')``; IPv6 hosts (``[fd00::1]``, ``fd00::1``,
    with an optional ``%zone``) become ``fd00--1.ipv6-literal.net``.
    Raises InvalidConnectionInfo naming ``field`` for anything Windows would
    not read as the same share.
    """
    if not isinstance(export, str):
        raise _invalid(field, export, "must be a string; %s" % EXPORT_HINT)
    # //user:password@host/share: never echo anything before an '@'.
    shown = MASK + "@" + export.rsplit("@", 1)[1] if "@" in export else export
    _check_no_controls(field, export, shown)
    text = export.strip()
    if "@" in _SEPARATORS.split(text.lstrip("\\/"), maxsplit=1)[0]:
        raise _invalid(field, shown, "credentials cannot be given in the export; "
                       "put them in options (-o username=...,password=...)")
    if len(text) < 2 or text[0] not in "\\/" or text[1] not in "\\/":
        raise _invalid(field, shown, "is not a UNC path; %s" % EXPORT_HINT)
    parts = _SEPARATORS.split(text[2:])
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing separator is harmless
    host = _unc_host(field, shown, parts[0])
    if len(parts) < 2 or not parts[1]:
        raise _invalid(field, shown, "has no share name; %s" % EXPORT_HINT)
    share = parts[1]
    _check_name(field, shown, share, "share name", SHARE_INVALID_CHARS, SHARE_NAME_MAX)
    subdirs = parts[2:]
    for segment in subdirs:
        if not segment:
            raise _invalid(field, shown, "has an empty path segment (two separators in a "
                           "row); remove the extra separator (%s)" % EXPORT_HINT)
        _check_name(field, shown, segment, "directory name", NAME_INVALID_CHARS, NAME_MAX)
    return host, share, "\\".join(subdirs)


def unc_path(host: str, share: str, subdir: str = "") -> str:
    """``\\\\host\\share[\\sub\\dir]`` (``subdir`` may use either slash style)."""
    path = "\\\\%s\\%s" % (host, share)
    subdir = _SEPARATORS.sub("\\\\", subdir or "").strip("\\")
    if subdir:
        path += "\\" + subdir
    return path


# --------------------------------------------------------------------------- disk file


def _disk_file(name: Any, fmt: Any) -> Tuple[str, str]:
    """``(file name with extension, 'vhd'|'vhdx')`` from ``data.name``/``data.format``."""
    name = _string("data.name", name, "'volume-1.vhdx'")
    if not name:
        raise _invalid("data.name", name, "is empty; give the image file name")
    _check_name("data.name", name, name, "file name", NAME_INVALID_CHARS, NAME_MAX)

    fmt_norm: Optional[str] = None
    if fmt is not None:
        text = _string("data.format", fmt, "'vhdx'").strip().lower()
        text = FORMAT_ALIASES.get(text, text)
        if text not in FORMATS:
            raise _invalid("data.format", fmt, "Hyper-V attaches only 'vhd' (also written "
                           "'vpc') or 'vhdx' images; %s" % CONVERT_HINT)
        fmt_norm = text

    stem, dot, ext = name.rpartition(".")
    ext = ext.lower() if dot and stem else ""
    if ext in OTHER_IMAGE_FORMATS:
        raise _invalid("data.name", name, "is a %s image; Hyper-V attaches only 'vhd' or "
                       "'vhdx' images: %s" % (ext, CONVERT_HINT))
    if ext in FORMATS:
        if fmt_norm is not None and fmt_norm != ext:
            raise _invalid("data.name", name, "the extension '.%s' contradicts data.format "
                           "'%s'; make them agree" % (ext, fmt))
        return name, ext
    if fmt_norm is None:
        raise _invalid("data.format", fmt, "is required when data.name ('%s') has no "
                       ".vhd/.vhdx extension; give 'vhd' or 'vhdx'" % _shown(name))
    disk_name = name + "." + fmt_norm
    if len(disk_name) > NAME_MAX:
        raise _invalid("data.name", name, "is longer than %d characters with its extension"
                       % NAME_MAX)
    return disk_name, fmt_norm


# --------------------------------------------------------------------------- credentials


@dataclasses.dataclass(frozen=True)
class _Item:
    """One item of a mount options string: ``key=value`` or a flag (``value`` None)."""

    key: str
    value: Optional[str]
    #: Whether a password item came before it (then nothing of it is ever shown).
    after_password: bool


def _is_password_key(key: str) -> bool:
    return key in PASSWORD_KEYS or bool(_PASSWORD_LIKE.search(key))


def _group_items(group: str, seen_password: bool) -> Tuple[List[_Item], bool]:
    """The items of one ``-o`` group; a password's ``,,`` is a literal comma (mount.cifs)."""
    items: List[_Item] = []
    pos, end_of_group = 0, len(group)
    while pos < end_of_group:
        end = group.find(",", pos)
        end = end_of_group if end < 0 else end
        key, sep, value = group[pos:end].partition("=")
        key = key.strip().lower()
        if sep and key in PASSWORD_KEYS:
            pieces = [value]
            while end + 1 < end_of_group and group[end + 1] == ",":
                nxt = group.find(",", end + 2)
                nxt = end_of_group if nxt < 0 else nxt
                pieces.append(group[end + 2:nxt])
                end = nxt
            value = ",".join(pieces)
        pos = end + 1
        if key or sep:
            items.append(_Item(key, value if sep else None, seen_password))
            seen_password = seen_password or bool(sep and _is_password_key(key))
    return items, seen_password


def _split_options(options: str) -> List[_Item]:
    """The items of a mount options string (``-o a=b,c -o d=e``, ``-o`` optional)."""
    items: List[_Item] = []
    seen_password = False
    for group in _OPTIONS_GROUP_SPLIT.split(options):
        group_items, seen_password = _group_items(group.strip(), seen_password)
        items.extend(group_items)
    return items


def _plain_name(value: str) -> bool:
    """Whether a user or domain value may be shown (it holds no other option)."""
    return (_control_char(value) is None and "=" not in value and ";" not in value
            and not _WRONG_SEPARATOR.search(value))


def _mask_options(items: Sequence[_Item]) -> str:
    """The options for a message: keys kept, only user and domain names shown.

    Nothing after a password (its value, and every item that follows) is shown:
    a mistyped comma makes a piece of the password look like another option.
    """
    shown = []
    for item in items:
        if item.after_password:
            shown.append(MASK)
            break
        if item.value is None:
            shown.append(item.key if item.key in KNOWN_MOUNT_OPTIONS + ("guest",) else MASK)
        elif item.key in CREDENTIALS_KEYS:
            shown.append("%s=%s" % (item.key, MASK))
        elif item.key in USER_KEYS + DOMAIN_KEYS and _plain_name(item.value):
            shown.append("%s=%s" % (item.key, item.value))
        else:
            known = item.key in USER_KEYS + PASSWORD_KEYS + DOMAIN_KEYS + KNOWN_MOUNT_OPTIONS
            shown.append("%s=%s" % (item.key if known else MASK, MASK))
    text = "-o " + ",".join(shown)
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


def _check_account_name(field: str, shown: str, name: str, what: str) -> None:
    bad = sorted({c for c in name if c in USER_INVALID_CHARS})
    if bad:
        raise exceptions.InvalidConnectionInfo(
            field=field, value=shown,
            reason="the %s '%s' contains %s, which Windows does not allow; fix it"
            % (what, name, " ".join("'%s'" % c for c in bad)))


def _refuse(shown: str, reason: str) -> exceptions.InvalidConnectionInfo:
    return exceptions.InvalidConnectionInfo(field="data.options", value=shown, reason=reason)


def _check_item(item: _Item, shown: str) -> None:
    """Refuse an item that shows credentials were meant but would not be used."""
    known = item.key in USER_KEYS + PASSWORD_KEYS + DOMAIN_KEYS + KNOWN_MOUNT_OPTIONS
    if item.after_password and not known and item.key != "guest":
        raise _refuse(shown, "has text after password= that is not a mount option; if the "
                             "password holds a comma, write each comma twice (',,'), as "
                             "mount.cifs(8) reads it, or set a password without commas")
    if item.value is None or item.key not in PASSWORD_KEYS:
        text = " " + item.key if item.value is None else item.value
        if _WRONG_SEPARATOR.search(text):
            raise _refuse(shown, "separates options with spaces or ';', so smbvol would "
                                 "read them as one value; separate mount options with "
                                 "commas: -o username=USER,password=PASSWORD")
    if item.key in CREDENTIALS_KEYS:
        raise _refuse(shown, "credentials= names a file on the machine that would mount the "
                             "share, which smbvol cannot read; give username= and password= "
                             "in the options instead")
    if item.value is not None and not known and _is_password_key(item.key):
        raise _refuse(shown, "'%s=' is not a mount.cifs option, so the password would be "
                             "ignored; write it as password=..." % item.key)


def _warn_ignored(items: Sequence[_Item]) -> None:
    """Log the options smbvol does not use: names only, never a value."""
    known = USER_KEYS + PASSWORD_KEYS + DOMAIN_KEYS + ("guest",)
    unknown = sorted({i.key for i in items if i.key not in known + KNOWN_MOUNT_OPTIONS
                      and i.value is not None and _OPTION_NAME.fullmatch(i.key)})
    unnamed = sum(1 for i in items if i.key not in known + KNOWN_MOUNT_OPTIONS
                  and (i.value is None or not _OPTION_NAME.fullmatch(i.key)))
    if unknown or unnamed:
        what = ", ".join(unknown)
        if unnamed:
            what += "%s%d option(s) without a value (not shown)" % (", " if what else "",
                                                                   unnamed)
        LOG.warning("data.options: ignoring %s, which smbvol does not know", what)
    mount_only = sorted({i.key for i in items if i.key in KNOWN_MOUNT_OPTIONS})
    if mount_only:
        LOG.debug("data.options: %s apply to mount.cifs only; not used by Hyper-V",
                  ", ".join(mount_only))


def parse_options(options: Optional[str],
                  password_for: Optional[Callable[[str], Secret]] = None
                  ) -> Optional[Credential]:
    """The share credential in a mount options string, or None.

    Accepts ``-o username=svc,password=...`` and ``-o user=svc,pass=...``
    (also without ``-o``).  ``DOMAIN\\user`` and ``user@domain`` pass through;
    ``domain=D`` makes ``D\\user``.  ``guest`` (as a flag or as the user name),
    None, an empty string or no user key mean no credentials.  The first
    occurrence of a key wins.

    Commas: as mount.cifs(8) documents, a comma inside the password is written
    twice (``password=Sec,,ret`` is ``Sec,ret``).  Text after the password that
    is not a mount option (a single comma in the password) is refused, never
    cut off.  Options separated by spaces or ``;``, ``credentials=FILE`` and
    password keys mount.cifs does not know (``passwd=``, ``pwd=``) are refused,
    since the credentials would be lost.  Other mount options are ignored: the
    ones smbvol does not know are logged as a warning, by name only.

    ``password_for(username)`` is called when the options give a user but no
    password (the command line passes its share password this way); without
    it that is an error.  Error messages show the options with the password
    and everything after it masked.
    """
    field = "data.options"
    if options is None:
        return None
    if not isinstance(options, str):
        raise exceptions.InvalidConnectionInfo(
            field=field, value="<%s>" % type(options).__name__,
            reason="must be a string such as '-o username=svc,password=...'")
    items = _split_options(options)
    shown = _mask_options(items)
    if "\x00" in options:
        raise _refuse(shown, "contains a NUL character, which cannot be passed to the host; "
                             "remove it")
    for item in items:
        _check_item(item, shown)
    _warn_ignored(items)

    found: Dict[str, str] = {}
    guest = False
    for item in items:
        if item.value is None:
            guest = guest or item.key == "guest"
            continue
        canonical = ("username" if item.key in USER_KEYS else "password"
                     if item.key in PASSWORD_KEYS else "domain" if item.key in DOMAIN_KEYS
                     else None)
        if canonical is None:
            continue
        if canonical in found:
            LOG.debug("data.options gives %s more than once; the first one is used", canonical)
            continue
        found[canonical] = item.value
    return _credential(found, guest, shown, password_for)


def _credential(found: Mapping[str, str], guest: bool, shown: str,
                password_for: Optional[Callable[[str], Secret]]) -> Optional[Credential]:
    field = "data.options"
    username = found.get("username", "").strip()
    password = found.get("password")
    domain = found.get("domain", "").strip()
    if guest or username.lower() == "guest":
        if password:
            LOG.warning("data.options asks for guest access and also gives a password; "
                        "the password is not used")
        return None
    if not username:
        if password is not None:
            raise _refuse(shown, "gives a password without a user name; add username=... "
                                 "(mount options are separated by commas)")
        return None
    for name, what in ((username, "user name"), (domain, "domain")):
        found_ctl = _control_char(name)
        if found_ctl is not None:
            raise _refuse(shown, "the %s contains control character U+%04X; remove it"
                          % (what, ord(found_ctl[1])))
    if password is None and password_for is not None:
        password = password_for(username).reveal()
    if password is None:
        raise _refuse(shown, "gives user '%s' without a password; add password=... (or use "
                             "guest for anonymous access)" % username)

    if username.count("\\") > 1 or username.startswith("\\") or username.endswith("\\"):
        raise _refuse(shown, "user name '%s' is not 'user', 'DOMAIN\\user' or 'user@domain'"
                      % username)
    if domain:
        _check_account_name(field, shown, domain, "domain")
        if "\\" in domain or "@" in domain:
            raise _refuse(shown, "domain '%s' must be a plain domain name" % domain)
        if "@" in username:
            raise _refuse(shown, "gives both a UPN user name '%s' and domain=%s; give one of "
                                 "them" % (username, domain))
        if "\\" in username:
            prefix = username.split("\\", 1)[0]
            if prefix.lower() != domain.lower():
                raise _refuse(shown, "user '%s' names another domain than domain=%s; make "
                                     "them agree" % (username, domain))
        else:
            username = domain + "\\" + username
    for part in username.split("\\"):
        _check_account_name(field, shown, part, "user name")
    return Credential(username=username, password=Secret(password))


# --------------------------------------------------------------------------- QoS


def _count(field: str, value: Any) -> int:
    """A non-negative whole number from an int, float or numeric string (rounded up)."""
    if isinstance(value, bool) or value is None:
        raise _invalid(field, value, "must be a non-negative number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, (float, str, decimal.Decimal)):
        try:
            exact = decimal.Decimal(value.strip() if isinstance(value, str) else value)
        except (decimal.InvalidOperation, ValueError):
            raise _invalid(field, value, "is not a number; give a non-negative "
                           "number such as 1000") from None
        if not exact.is_finite():
            raise _invalid(field, value, "must be a finite non-negative number")
        if exact > MAX_IOPS:
            raise _invalid(field, value, "is too large (at most %d)" % MAX_IOPS)
        number = math.ceil(exact)
    else:
        raise _invalid(field, value, "must be a non-negative number")
    if number < 0:
        raise _invalid(field, value, "is negative; give 0 for no limit or a positive number")
    if number > MAX_IOPS:
        raise _invalid(field, value, "is too large (at most %d)" % MAX_IOPS)
    return number


def parse_qos(qos_specs: Any, field: str = "data.qos_specs") -> QoS:
    """Hyper-V QoS from Cinder ``qos_specs``.

    ``total_iops_sec`` and ``total_bytes_sec`` (as ceil(bytes / 8192)
    normalised IOPS) give the limit; when both are set the larger one wins.
    ``min_iops_sec`` gives the reservation.  Other keys are listed in
    ``QoS.ignored`` and logged as a WARNING.
    """
    if qos_specs is None:
        return QoS()
    specs = _mapping(field, qos_specs)
    values = {key: _count("%s.%s" % (field, key), specs[key])
              for key in QOS_KEYS if specs.get(key) is not None}
    ignored = tuple(sorted(str(k) for k in specs if k not in QOS_KEYS))
    if ignored:
        LOG.warning("%s keys %s are not supported by Hyper-V and are ignored",
                    field, ", ".join(ignored))
    max_iops = values.get(QOS_MAX_IOPS, 0)
    if values.get(QOS_MAX_BYTES):
        max_iops = max(max_iops, -(-values[QOS_MAX_BYTES] // NORMALISED_IO_SIZE))
    min_iops = values.get(QOS_MIN_IOPS, 0)
    if max_iops and min_iops > max_iops:
        raise _invalid("%s.%s" % (field, QOS_MIN_IOPS), specs[QOS_MIN_IOPS],
                       "is above the limit of %d normalised IOPS; lower min_iops_sec or "
                       "raise the limit" % max_iops)
    return QoS(max_iops=max_iops, min_iops=min_iops, ignored=ignored)


# --------------------------------------------------------------------------- SMB


def parse_smb(connection_info: Mapping,
              password_for: Optional[Callable[[str], Secret]] = None) -> SmbConnectionInfo:
    """Check and type the connection_info of Cinder's SMB driver (``smbfs``).

    ``password_for`` is passed to :func:`parse_options`: it supplies the share
    password when ``data.options`` names a user without one.
    """
    data = _driver_type(connection_info, SMB_DRIVER_TYPE)
    if data.get("export") is None:
        raise _invalid("data.export", None, "is required; %s" % EXPORT_HINT)
    host, share, subdir = normalise_export(data["export"], field="data.export")
    disk_name, fmt = _disk_file(data.get("name"), data.get("format"))
    return SmbConnectionInfo(
        driver_volume_type=SMB_DRIVER_TYPE,
        host=host,
        share=share,
        subdir=subdir,
        export=unc_path(host, share, subdir),
        disk_name=disk_name,
        format=fmt,
        credential=parse_options(data.get("options"), password_for),
        access_mode=_access_mode("data.access_mode", data.get("access_mode")),
        qos=parse_qos(data.get("qos_specs"), field="data.qos_specs"),
        volume_id=_optional_id("data.volume_id", data.get("volume_id")),
        serial=_optional_id("serial", connection_info.get("serial")),
    )


# --------------------------------------------------------------------------- iSCSI


def _port(field: str, shown: str, text: str) -> int:
    if not _PORT_RE.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise _invalid(field, shown, "port %r must be a number from 1 to 65535 (default %d)"
                       % (text, DEFAULT_ISCSI_PORT))
    return int(text)


def _parse_portal(field: str, value: Any) -> Tuple[str, str, int]:
    """``(portal, host, port)`` from ``host[:port]`` or ``[ipv6][:port]``."""
    text = _string(field, value, "'192.0.2.10:3260' or '[fd00::1]:3260'")
    if not text or text != text.strip():
        raise _invalid(field, value, "must be host:port with no spaces, e.g. 192.0.2.10:3260")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _invalid(field, value, "has no closing ']'; write IPv6 portals as "
                           "[fd00::1]:3260")
        address, rest = text[1:end], text[end + 1:]
        addr_part, sep, zone = address.partition("%")
        if sep and not _ZONE_RE.fullmatch(zone):
            raise _invalid(field, value, "IPv6 zone index %r must be letters, digits, '-' "
                           "or '_'" % zone)
        try:
            host = ipaddress.IPv6Address(addr_part).compressed
        except ValueError:
            raise _invalid(field, value, "%r is not a valid IPv6 address; write IPv6 portals "
                           "as [fd00::1]:3260" % address) from None
        if zone:
            host += "%" + zone
        if rest == "":
            port = DEFAULT_ISCSI_PORT
        elif rest.startswith(":"):
            port = _port(field, text, rest[1:])
        else:
            raise _invalid(field, value, "unexpected %r after ']'; write [fd00::1]:3260" % rest)
        return "[%s]:%d" % (host, port), host, port
    if text.count(":") > 1:
        raise _invalid(field, value, "an IPv6 portal must be in brackets, e.g. "
                       "[fd00::1]:3260")
    host, sep, port_text = text.partition(":")
    port = _port(field, text, port_text) if sep else DEFAULT_ISCSI_PORT
    if not host:
        raise _invalid(field, value, "has an empty host; give host:port, e.g. 192.0.2.10:3260")
    if (len(host) > HOST_MAX or not _HOST_RE.fullmatch(host) or host.startswith(".")
            or host.endswith(".") or ".." in host):
        raise _invalid(field, value, "host %r is not a host name or IP address" % host)
    return "%s:%d" % (host, port), host, port


def _parse_iqn(field: str, value: Any) -> str:
    text = _string(field, value, "'iqn.2010-10.org.openstack:volume-1'")
    if len(text) > IQN_MAX or not _IQN_RE.fullmatch(text):
        raise _invalid(field, value, "is not an iSCSI name; give an iqn./eui./naa. name such "
                       "as iqn.2010-10.org.openstack:volume-1 (at most %d characters)" % IQN_MAX)
    return text


def _parse_lun(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, value, "must be an integer LUN number such as 0")
    if value < 0:
        raise _invalid(field, value, "is negative; a LUN number is 0 or more")
    if value > 2 ** 63 - 1:  # the scripts take it as [long] (Int64)
        raise _invalid(field, value, "is too large for a LUN number (at most 2^63-1)")
    return value


def _sequence(field: str, value: Any) -> Sequence:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _invalid(field, value, "must be a list (one entry per path)")
    if not value:
        raise _invalid(field, value, "is empty; give one entry per path or leave it out")
    return value


_MULTIPATH_KEYS = ("target_portals", "target_iqns", "target_luns")


def _targets(data: Mapping) -> Tuple[IscsiTarget, ...]:
    present = [k for k in _MULTIPATH_KEYS if data.get(k) is not None]
    targets: List[IscsiTarget] = []
    if present:
        if len(present) != len(_MULTIPATH_KEYS):
            missing = [k for k in _MULTIPATH_KEYS if k not in present]
            raise exceptions.InvalidConnectionInfo(
                field=", ".join("data." + k for k in _MULTIPATH_KEYS),
                value="missing " + ", ".join(missing),
                reason="multipath needs all three lists; give %s too" % " and ".join(missing))
        lists = [_sequence("data." + k, data[k]) for k in _MULTIPATH_KEYS]
        lengths = [len(x) for x in lists]
        if len(set(lengths)) != 1:
            raise exceptions.InvalidConnectionInfo(
                field=", ".join("data." + k for k in _MULTIPATH_KEYS),
                value="lengths %s" % "/".join(str(n) for n in lengths),
                reason="the lists must have the same length (one portal, IQN and LUN per path)")
        for i, (portal_v, iqn_v, lun_v) in enumerate(zip(*lists)):
            portal, host, port = _parse_portal("data.target_portals[%d]" % i, portal_v)
            target = IscsiTarget(portal=portal, portal_host=host, portal_port=port,
                                 iqn=_parse_iqn("data.target_iqns[%d]" % i, iqn_v),
                                 lun=_parse_lun("data.target_luns[%d]" % i, lun_v))
            if target in targets:
                LOG.debug("dropping duplicate iSCSI path %s %s LUN %d",
                          target.portal, target.iqn, target.lun)
                continue
            targets.append(target)
        return tuple(targets)
    for key in ("target_portal", "target_iqn", "target_lun"):
        if data.get(key) is None:
            raise _invalid("data." + key, None, "is required (or give the multipath lists "
                           "target_portals/target_iqns/target_luns)")
    portal, host, port = _parse_portal("data.target_portal", data["target_portal"])
    return (IscsiTarget(portal=portal, portal_host=host, portal_port=port,
                        iqn=_parse_iqn("data.target_iqn", data["target_iqn"]),
                        lun=_parse_lun("data.target_lun", data["target_lun"])),)


def _chap(data: Mapping) -> Optional[Credential]:
    method = data.get("auth_method")
    if method is None or (isinstance(method, str) and not method.strip()):
        if data.get("auth_username") or data.get("auth_password"):
            LOG.debug("auth_username/auth_password given without auth_method; not used")
        return None
    text = _string("data.auth_method", method, "'CHAP'")
    if text.strip().upper() != "CHAP":
        raise _invalid("data.auth_method", method, "only 'CHAP' is supported; leave "
                       "auth_method out for no authentication")
    username = data.get("auth_username")
    if username is None or (isinstance(username, str) and not username.strip()):
        raise _invalid("data.auth_username", username, "is required with auth_method CHAP")
    username = _string("data.auth_username", username, "a CHAP user name")
    password = data.get("auth_password")
    if isinstance(password, Secret):
        password = password.reveal()
    if password is None or password == "":
        raise exceptions.InvalidConnectionInfo(
            field="data.auth_password", value=None,
            reason="is required with auth_method CHAP")
    if not isinstance(password, str):
        raise exceptions.InvalidConnectionInfo(
            field="data.auth_password", value="<%s>" % type(password).__name__,
            reason="must be a string")
    if "\x00" in password:
        raise exceptions.InvalidConnectionInfo(
            field="data.auth_password", value=MASK,
            reason="contains a NUL character, which cannot be passed to the host")
    return Credential(username=username, password=Secret(password))


def parse_iscsi(connection_info: Mapping) -> IscsiConnectionInfo:
    """Check and type the connection_info of a Cinder iSCSI driver (``iscsi``)."""
    data = _driver_type(connection_info, ISCSI_DRIVER_TYPE)
    return IscsiConnectionInfo(
        driver_volume_type=ISCSI_DRIVER_TYPE,
        targets=_targets(data),
        chap=_chap(data),
        access_mode=_access_mode("data.access_mode", data.get("access_mode")),
        volume_id=_optional_id("data.volume_id", data.get("volume_id")),
        serial=_optional_id("serial", connection_info.get("serial")),
    )
