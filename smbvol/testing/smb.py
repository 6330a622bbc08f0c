"""The SMB part of the host double: shares, SMB mappings, this host's names, mount/unmount.

:class:`SmbMixin` holds the SMB shares the host can reach (with the files on them, the
credentials they accept, whether they answer) and the shares on the host itself, and the
SMB mappings (global or user, their status, the credentials they were made with, whether
smbvol created them).  It does what the templates' SMB helpers do: split and check a
SharePath (Split-SmbvolSharePath), tell whether a UNC host part is this host
(Test-SmbvolLocalHost: names, loopback and own addresses, ``ipv6-literal.net`` names), mount
a share (Mount-SmbvolShare: local folder, reuse, recreate or create a mapping, verify the
image; a stale mapping is recreated only with credentials and no VM disk under the share, and
keeps its ownership) with the Windows error codes the real cmdlets report, and answer
``mount_share`` and ``unmount_share``.  It is mixed into
:class:`~smbvol.testing.hostdouble.HostDouble`, which provides ``_mutex``, ``_fail``,
``_check_locks``, ``_shares`` and ``_mappings``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from typing import Mapping as TMapping

from smbvol.secret import Credential
from smbvol.testing.calls import Call, Failure
from smbvol.testing.state import (
    MAPPING_KINDS,
    MAPPING_STATUSES,
    Mapping,
    Share,
    same_credential,
    split_unc,
)

#: Windows error codes the double reports as ``native_code``, as the real cmdlets do.
ERROR_ACCESS_DENIED = 5
ERROR_BAD_NETPATH = 53
ERROR_BAD_NET_NAME = 67
ERROR_SESSION_CREDENTIAL_CONFLICT = 1219
ERROR_NO_SUCH_LOGON_SESSION = 1312
ERROR_LOGON_FAILURE = 1326
WIN32_MESSAGES: TMapping[int, str] = MappingProxyType({
    ERROR_ACCESS_DENIED: "Access is denied.",
    ERROR_BAD_NETPATH: "The network path was not found.",
    ERROR_BAD_NET_NAME: "The network name cannot be found.",
    ERROR_SESSION_CREDENTIAL_CONFLICT: "Multiple connections to a server or shared resource by "
    "the same user, using more than one user name, are not allowed.",
    ERROR_NO_SUCH_LOGON_SESSION: "A specified logon session does not exist. It may already "
    "have been terminated.",
    ERROR_LOGON_FAILURE: "The user name or password is incorrect.",
})

_BAD_PATH_CHARS = set('<>"|?*')
_BAD_NAME_CHARS = set('<>:"/\\|?*')


def ipv6_literal(address: str) -> str:
    """The ``ipv6-literal.net`` name Windows uses for an IPv6 address in a UNC path."""
    return address.replace(":", "-").replace("%", "s") + ".ipv6-literal.net"


def _ip(text: str) -> Optional[Any]:
    try:
        return ipaddress.ip_address(text.split("%")[0].strip("[]"))
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a SharePath points: its UNC parts and whether the share is on this host."""

    server: str
    share_name: str
    subdir: Tuple[str, ...]
    local: bool

    @property
    def root(self) -> str:
        return "\\\\%s\\%s" % (self.server, self.share_name)

    @property
    def unc_dir(self) -> str:
        return "\\".join((self.root,) + self.subdir)

    @property
    def lock_key(self) -> str:
        return "share:" + self.root.lower()


@dataclasses.dataclass(frozen=True)
class _Mount:
    """What Mount-SmbvolShare returns."""

    share_path: str
    disk_path: Optional[str]
    unc_disk_path: Optional[str]
    local: bool
    local_path: Optional[str]
    mapping_created: bool
    #: 'global', 'user', 'local' (share on this host) or 'none' (no mapping: own identity).
    mapping_kind: str
    changed: bool
    #: False: a network logon without credentials could not look (warning); VMMS decides.
    verified: bool = True


class SmbMixin:
    """Shares and SMB mappings (mixed into :class:`~smbvol.testing.hostdouble.HostDouble`)."""

    _shares: Dict[str, Share]
    _mappings: List[Mapping]

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    def is_local_host(self, host: str) -> bool:
        """Test-SmbvolLocalHost: ``host`` (a UNC host part) designates this host — localhost,
        its name or FQDN, a loopback address or one of its addresses, also in the
        ``ipv6-literal.net`` form."""
        name = host.lower().rstrip(".")
        if name in ("localhost", self.host_name.lower(), self.fqdn.lower()):
            return True
        if name.endswith(".ipv6-literal.net"):
            name = name[:-len(".ipv6-literal.net")].replace("-", ":").replace("s", "%")
        address = _ip(name)
        if address is None:
            return False
        return address.is_loopback or any(address == _ip(a) for a in self.addresses)

    # ------------------------------------------------------------------
    # Building the host (tests)
    # ------------------------------------------------------------------
    def add_share(self, unc_root: str, *, files: Iterable[str] = (),
                  credential: Optional[Credential] = None, local_path: Optional[str] = None,
                  reachable: bool = True) -> Share:
        """Add a share ``\\\\server\\share``; ``local_path`` set: it is on this host."""
        parts = split_unc(unc_root)
        if parts is None or parts[2]:
            raise ValueError("a share root is \\\\server\\share, not %r" % (unc_root,))
        root = "\\\\%s\\%s" % parts[:2]
        share = Share(root=root, credential=credential,
                      local_path=local_path.rstrip("\\") if local_path else None,
                      reachable=bool(reachable))
        with self._mutex:
            if root.lower() in self._shares:
                raise ValueError("share %s exists already" % root)
            self._shares[root.lower()] = share
            for f in files:
                self._add_file_to(root.lower(), f)
            return self._shares[root.lower()]

    def add_file(self, path: str) -> None:
        """Create an image file: a UNC path under a share, or a local path under a local share."""
        with self._mutex:
            for key, share in self._shares.items():
                for prefix in (share.root, share.local_path):
                    if prefix and path.lower().startswith(prefix.lower() + "\\"):
                        self._add_file_to(key, path[len(prefix) + 1:])
                        return
            raise ValueError("no share holds %r; add the share first" % (path,))

    def _add_file_to(self, key: str, relative: str) -> None:
        share = self._shares[key]
        if relative.startswith("\\\\"):
            if not relative.lower().startswith(share.root.lower() + "\\"):
                raise ValueError("%r is not under %s" % (relative, share.root))
            relative = relative[len(share.root) + 1:]
        relative = relative.strip("\\")
        if not share.has_file(relative):
            self._shares[key] = dataclasses.replace(share, files=share.files + (relative,))

    def add_mapping(self, remote_path: str, *, kind: str = "global", status: str = "OK",
                    credential: Optional[Credential] = None, owned: bool = False) -> Mapping:
        """Add an existing SMB mapping of ``remote_path`` (a share root)."""
        if kind not in MAPPING_KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(MAPPING_KINDS))
        if status not in MAPPING_STATUSES:
            raise ValueError("status must be one of %s" % ", ".join(MAPPING_STATUSES))
        parts = split_unc(remote_path)
        if parts is None:
            raise ValueError("a mapping's remote path is a UNC path, not %r" % (remote_path,))
        mapping = Mapping(remote_path="\\\\%s\\%s" % parts[:2], kind=kind, status=status,
                          credential=credential, owned=bool(owned))
        with self._mutex:
            self._mappings.append(mapping)
        return mapping

    @staticmethod
    def share_lock_key(share_path: str) -> str:
        """The lock key the templates take for the share of ``share_path`` (its root)."""
        parts = split_unc(share_path)
        if parts is None:
            raise ValueError("not a UNC path: %r" % (share_path,))
        return ("share:\\\\%s\\%s" % parts[:2]).lower()

    # ------------------------------------------------------------------
    # Read-only views
    # ------------------------------------------------------------------
    @property
    def shares(self) -> TMapping[str, Share]:
        with self._mutex:
            return MappingProxyType({s.root: s for s in self._shares.values()})

    @property
    def mappings(self) -> Tuple[Mapping, ...]:
        with self._mutex:
            return tuple(self._mappings)

    # ------------------------------------------------------------------
    # Shared steps (what the templates' helper functions do)
    # ------------------------------------------------------------------
    def _split_share_path(self, value: Any, field: str = "SharePath") -> Location:
        """Split-SmbvolSharePath: ``\\\\host\\share[\\dir]`` ('/' read as '\\')."""
        text = str(value or "").replace("/", "\\")
        parts = split_unc(text)
        if parts is None or any(c in _BAD_PATH_CHARS or ord(c) < 32 for c in text):
            raise self._fail("invalid_parameters", "%s %s is not a UNC path "
                             "\\\\host\\share[\\dir]" % (field, text), {"field": field})
        if any(segment in (".", "..") for segment in parts[:2] + parts[2]):
            raise self._fail("invalid_parameters", "%s %s contains a . or .. segment"
                             % (field, text), {"field": field})
        return Location(server=parts[0], share_name=parts[1], subdir=parts[2],
                         local=self.is_local_host(parts[0]))

    def _check_disk_name(self, value: Any, field: str = "DiskName") -> str:
        """Assert-SmbvolDiskName: a plain file name."""
        if (not isinstance(value, str) or value in ("", ".", "..")
                or any(c in _BAD_NAME_CHARS or ord(c) < 32 for c in value)):
            raise self._fail("invalid_parameters", "%s %s is not a plain file name (no "
                             "directory, no \\ / : * ? \" < > |)" % (field, value),
                             {"field": field})
        return value

    def _local_share(self, name: str) -> Optional[Share]:
        """Get-SmbShare on this host: the share named ``name``."""
        for share in self._shares.values():
            if share.local_path and share.name.lower() == name.lower():
                return share
        return None

    def _share_prefixes(self, loc: Location) -> List[str]:
        """Folders a disk of the share may be attached by: its UNC root, its local folder."""
        prefixes = [loc.root]
        local = self._local_share(loc.share_name) if loc.local else None
        if local is not None:
            prefixes.append(local.local_path)
        return prefixes

    def _users_of(self, prefixes: Sequence[str], except_vm: Optional[str] = None) -> List[str]:
        """Names of the VMs with a hard disk, their checkpoints' included, under one of
        ``prefixes`` (Get-VM order; Get-SmbvolAllDrives -WithCheckpoints)."""
        folders = tuple(p.rstrip("\\").lower() + "\\" for p in prefixes)
        return [vm.name for vm in self._vms_in_order()
                if vm.id != except_vm and any(
                    path and path.replace("/", "\\").lower().startswith(folders)
                    for path in [d.path for d in vm.disks] + list(vm.checkpoint_paths()))]

    def _share_holders(self, call: Call, prefixes: Sequence[str]) -> List[str]:
        """Get-SmbvolShareHolders (unmount_share): names of the VMs using the share, in Get-VM
        order — a hard disk under one of ``prefixes``, a checkpoint's differencing disk whose
        image is under one (an unreadable chain is a warning), a DVD drive's image under one,
        or the VM's configuration, checkpoint or smart paging folder at or under one."""
        roots = tuple(p.rstrip("\\").lower() for p in prefixes)
        folders = tuple(r + "\\" for r in roots)

        def under(path: Optional[str]) -> bool:
            return bool(path) and path.replace("/", "\\").lower().startswith(folders)

        def at_or_under(path: Optional[str]) -> bool:
            text = (path or "").replace("/", "\\").rstrip("\\").lower()
            return bool(text) and (text in roots or text.startswith(folders))

        names = []
        for vm in self._vms_in_order():
            uses = any(at_or_under(f) for f in vm.folders())
            for disk in vm.disks_in_order():
                if under(disk.path):
                    uses = True
                elif disk.chain_unreadable:
                    call.warn("could not tell whether the checkpoint disk %s of VM %s has its "
                              "image on the share: cannot read the differencing disk %s"
                              % (disk.path, vm.name, disk.path))
                elif disk.is_checkpoint and under(disk.image_path):
                    uses = True
            if any(under(path) for path in vm.checkpoint_paths()):
                uses = True
            if any(under(path) for _slot, path in vm.dvd_media):
                uses = True
            if any(under(path) for path in vm.checkpoint_media()):
                uses = True
            if uses:
                names.append(vm.name)
        return names

    def _first_mapping(self, root: str) -> Optional[Mapping]:
        """Get-SmbvolMapping: the global mapping of the root, else the user mapping."""
        found = [m for m in self._mappings if m.remote_path.lower() == root.lower()]
        found.sort(key=lambda m: MAPPING_KINDS.index(m.kind))
        return found[0] if found else None

    def _remove_mapping(self, mapping: Mapping) -> None:
        if mapping in self._mappings:
            self._mappings.remove(mapping)

    def _win32(self, kind: str, context: str, code: int, data: Dict[str, Any],
               root: str) -> Failure:
        """Stop-SmbvolFromError for a Windows error ``code`` met while doing ``context``."""
        cause = WIN32_MESSAGES.get(code, "Windows error %d" % code)
        hint = ""
        if kind == "mapping_conflict":
            hint = (" (Windows error 1219: this host already has a connection to the server of "
                    "%s with other credentials; remove it or use the same credentials)" % root)
        elif kind == "logon_session_missing":
            hint = (" (Windows error 1312, the remoting double hop: the remote session has no "
                    "credentials to hand on; connect with CredSSP, configure Kerberos delegation "
                    "for the host, or set [hyperv] smb_mapping_via_scheduled_task = true)")
        elif kind == "access_denied":
            hint = " (identity on this host: %s\\smbvol)" % self.host_name.upper()
        return self._fail(kind, "%s: %s%s" % (context, cause, hint),
                          dict(data, native_code=code, cause=cause), code)

    def _unreachable_code(self, loc: Location, share: Optional[Share]) -> int:
        known_server = any(s.server.lower() == loc.server.lower() and s.reachable
                           for s in self._shares.values())
        return ERROR_BAD_NET_NAME if share is None and known_server else ERROR_BAD_NETPATH

    def _create_mapping(self, call: Call, loc: Location, share: Optional[Share],
                        credential: Credential, *, owned: bool = True,
                        recreated: bool = False) -> str:
        """New-SmbvolMapping: a global mapping; returns its kind.  A host without
        New-SmbGlobalMapping refuses credentials (invalid_parameters, field ShareCredential):
        a mapping there would live only in the script's logon session, which VMMS never sees.
        ``owned``: recorded as smbvol's; ``recreated``: it replaces a stale mapping, so a
        failing call keeps it (Undo-SmbvolMount removes only mappings the host did not have)."""
        context = "creating the SMB mapping of %s for %s" % (loc.root, credential.username)
        data = {"share": loc.root, "user": credential.username}
        kind = "global"
        if not self.global_mapping_supported:
            raise self._fail(
                "invalid_parameters", "ShareCredential for %s cannot be used on host %s: without "
                "New-SmbGlobalMapping (Windows Server 2016 and older) a mapping lives only in "
                "the logon session of this script, which VMMS does not use; give the computer "
                "account %s$ access to the share and attach without credentials, or use "
                "Windows Server 2019 or later"
                % (loc.root, self.host_name.upper(), self.host_name.upper()),
                dict(data, field="ShareCredential"))
        if self.remote_session and not call.options.get("mapping_via_task"):
            raise self._win32("logon_session_missing", context, ERROR_NO_SUCH_LOGON_SESSION,
                              data, loc.root)
        if share is None or not share.reachable:
            raise self._win32("share_unreachable", context,
                              self._unreachable_code(loc, share), data, loc.root)
        for m in self._mappings:
            if (m.kind == kind and m.server.lower() == loc.server.lower()
                    and not same_credential(m.credential, credential)):
                raise self._win32("mapping_conflict", context,
                                  ERROR_SESSION_CREDENTIAL_CONFLICT, data, loc.root)
        if not share.accepts(credential):
            raise self._win32("access_denied", context, ERROR_LOGON_FAILURE, data, loc.root)
        mapping = Mapping(loc.root, kind, "OK", credential, owned=owned)
        self._mappings.append(mapping)
        if not recreated:
            call.undo(lambda: self._undo_mount(call, loc.root, mapping))
        return kind

    def _undo_mount(self, call: Call, root: str, mapping: Mapping) -> None:
        """Undo-SmbvolMount: remove the mapping this call created unless a VM now uses it."""
        users = self._users_of([root])
        if users:
            call.warn("kept the mapping of %s: used by %s" % (root, ", ".join(users)))
            return
        self._remove_mapping(mapping)

    def _mount(self, call: Call, loc: Location, disk_name: str,
               credential: Optional[Credential]) -> _Mount:
        """Mount-SmbvolShare (mount_share, attach_vhd, attach_vhds)."""
        unc_disk = loc.unc_dir + "\\" + disk_name if disk_name else None
        relative = "\\".join(loc.subdir + ((disk_name,) if disk_name else ()))
        if loc.local:
            share = self._local_share(loc.share_name)
            if share is None:
                raise self._fail("share_unreachable", "the host of %s is this host, which has "
                                 "no SMB share named %s" % (loc.unc_dir, loc.share_name),
                                 {"share": loc.unc_dir})
            folder = "\\".join((share.local_path,) + loc.subdir)
            disk_path = folder + "\\" + disk_name if disk_name else None
            if disk_name:
                call.stage("verify")
                if not share.has_file(relative):
                    raise self._image_not_found(loc, folder, disk_name, disk_path)
            return _Mount(loc.unc_dir, disk_path, unc_disk, True, folder, False, "local", False)
        share = self._shares.get(loc.root.lower())
        kind = "none"
        created = changed = recreated = False
        owned = True
        existing = self._first_mapping(loc.root)
        if existing is not None and existing.status != "OK":
            stale = "%s %s mapping of %s" % (existing.status, existing.kind, loc.root)
            users = self._users_of([loc.root]) if credential is not None else []
            if credential is None:
                call.warn("kept the %s: no credentials were given to recreate it (Windows "
                          "reconnects it on use when the share can be reached)" % stale)
            elif users:
                call.warn("kept the %s, not recreated: VM %s has disks under the share"
                          % (stale, ", ".join(users)))
            else:
                owned = existing.owned
                call.warn("removed the %s to recreate it" % stale)
                self._remove_mapping(existing)
                changed = recreated = True
                existing = None
        if existing is not None:
            kind = existing.kind
        elif credential is not None:
            call.stage("mapping")
            kind = self._create_mapping(call, loc, share, credential, owned=owned,
                                        recreated=recreated)
            created = changed = True
        if disk_name:
            call.stage("verify")
            context = "cannot read %s (share %s) to find the image %s" % (
                loc.unc_dir, loc.root, disk_name)
            data = {"share": loc.unc_dir, "disk": disk_name, "path": unc_disk}
            if share is None or not share.reachable:
                raise self._win32("share_unreachable", context,
                                  self._unreachable_code(loc, share), data, loc.root)
            if kind == "none" and self.remote_session:
                # Test-SmbvolNetworkLogon: a network logon without delegation probes the share
                # anonymously; the refusal says nothing of the computer account VMMS uses.
                call.warn("could not verify the image %s in %s: this remote session (%s\\smbvol, "
                          "a network logon) has no credentials to pass on to %s (Access is "
                          "denied.); Hyper-V opens the image as the computer account of this "
                          "host, so the attach decides"
                          % (disk_name, loc.unc_dir, self.host_name.upper(), loc.root))
                return _Mount(loc.unc_dir, unc_disk, unc_disk, False, None, created, kind,
                              changed, verified=False)
            if kind == "none" and not share.accepts(None):
                raise self._win32("access_denied", context, ERROR_ACCESS_DENIED, data, loc.root)
            if (existing is not None and existing.status != "OK"
                    and not share.accepts(existing.credential)):
                # A stale mapping kept: Windows reconnects it with its own credentials.
                raise self._win32("access_denied", context, ERROR_ACCESS_DENIED, data, loc.root)
            if not share.has_file(relative):
                raise self._image_not_found(loc, loc.unc_dir, disk_name, unc_disk)
        return _Mount(loc.unc_dir, unc_disk, unc_disk, False, None, created, kind, changed)

    def _image_not_found(self, loc: Location, folder: str, disk_name: str,
                         path: Optional[str]) -> Failure:
        return self._fail("image_not_found", "image %s not found in %s (share %s)"
                          % (disk_name, folder, loc.unc_dir),
                          {"share": loc.unc_dir, "disk": disk_name, "path": path})

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------
    def op_mount_share(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Local folder for a share on this host; else reuse a healthy mapping, create one
        when credentials are given (global, else user + warning), recreate a stale one only
        when credentials are given and no VM disk lies under the share (keeping its
        ownership), else keep it with a warning; verify the image when DiskName is given."""
        loc = self._split_share_path(p.get("SharePath"))
        disk_name = p.get("DiskName") or ""
        if disk_name:
            self._check_disk_name(disk_name)
        self._check_locks([loc.lock_key], p.get("LockTimeoutSeconds"))
        mount = self._mount(call, loc, disk_name, p.get("ShareCredential"))
        return {
            "share_path": mount.share_path, "disk_path": mount.disk_path, "local": mount.local,
            "local_path": mount.local_path, "mapping_created": mount.mapping_created,
            "mapping_kind": mount.mapping_kind, "changed": mount.changed,
        }

    def op_unmount_share(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Remove the root's mapping smbvol created (any with Force) unless a VM uses the share
        (disk_in_use): a disk or a checkpoint's image under it, a DVD image under it, or a VM
        folder on it; a foreign mapping is left with a warning."""
        loc = self._split_share_path(p.get("SharePath"))
        self._check_locks([loc.lock_key], p.get("LockTimeoutSeconds"))
        users = self._share_holders(call, self._share_prefixes(loc))
        mapping = None if loc.local else self._first_mapping(loc.root)
        if mapping is None:
            return {"share_path": loc.unc_dir, "removed": False,
                    "mapping_kind": "local" if loc.local else "none", "owned": False,
                    "in_use_by": users, "changed": False}
        force = bool(p.get("Force"))
        if not mapping.owned and not force:
            call.warn("the %s mapping of %s was not created by smbvol; left in place (use Force "
                      "to remove it)" % (mapping.kind, loc.root))
            return {"share_path": loc.unc_dir, "removed": False, "mapping_kind": mapping.kind,
                    "owned": False, "in_use_by": users, "changed": False}
        if users:
            raise self._fail("disk_in_use", "share %s is still used by VM %s; its %s mapping is "
                             "kept" % (loc.root, ", ".join(users), mapping.kind),
                             {"share": loc.root, "vms": users, "mapping_kind": mapping.kind})
        first = mapping
        for _round in range(2):
            if mapping is None:
                break
            call.stage("remove")
            self._remove_mapping(mapping)
            mapping = self._first_mapping(loc.root) if force else None
        return {"share_path": loc.unc_dir, "removed": True, "mapping_kind": first.kind,
                "owned": first.owned, "in_use_by": users, "changed": True}

    # ------------------------------------------------------------------
    # State (the "shares" and "mappings" keys of to_dict)
    # ------------------------------------------------------------------
    def _dump_smb(self, state: Dict[str, Any]) -> None:
        state["shares"] = {
            s.root: {"files": sorted(s.files, key=str.lower),
                     "credential": self._credential_to_dict(s.credential),
                     "local_path": s.local_path, "reachable": s.reachable}
            for s in sorted(self._shares.values(), key=lambda s: s.root.lower())}
        state["mappings"] = [
            {"remote_path": m.remote_path, "kind": m.kind, "status": m.status,
             "credential": self._credential_to_dict(m.credential), "owned": m.owned}
            for m in sorted(self._mappings, key=lambda m: (m.remote_path.lower(), m.kind))]

    def _load_smb(self, state: TMapping[str, Any]) -> None:
        for root, spec in (state.get("shares") or {}).items():
            extra = set(spec) - {"files", "credential", "local_path", "reachable"}
            if extra:
                raise ValueError("share %s: unknown key(s) %s" % (root, ", ".join(sorted(extra))))
            self.add_share(root, files=spec.get("files") or (),
                           credential=self._credential_from_dict(spec.get("credential")),
                           local_path=spec.get("local_path"),
                           reachable=spec.get("reachable", True))
        for m in state.get("mappings") or ():
            self.add_mapping(m["remote_path"], kind=m.get("kind", "global"),
                             status=m.get("status", "OK"),
                             credential=self._credential_from_dict(m.get("credential")),
                             owned=m.get("owned", False))
