"""The iSCSI part of the host double: portals, targets, sessions, LUNs → disks, passthrough disks.

:class:`IscsiHostMixin` answers ``iscsi_connect``, ``iscsi_attach``, ``iscsi_detach``,
``iscsi_disconnect`` and ``iscsi_connector`` the way ``ps_templates/iscsi_*.ps1.j2`` do on a
real host: the same result fields, error kinds (``target_unreachable``, ``chap_auth_failed``,
``lun_not_found``, ``disk_in_use``, ...), warnings and rollback.  :class:`HostDouble` here is
:class:`smbvol.testing.hostdouble.HostDouble` with this mixin; :mod:`smbvol.testing` exports it.

What the double holds (the ``"iscsi"`` key of :meth:`~HostDouble.to_dict`)::

    {"initiator": "iqn.1991-05.com.microsoft:hv01.example.test",
     "service_running": true,          # the MSiSCSI service
     "mpio": false,                    # MPIO installed and claiming iSCSI disks
     "portals": ["10.0.0.50:3260"],    # target portals the initiator knows
     "targets": {"iqn.2010-10.org.openstack:volume-1": {
         "portals": ["10.0.0.50:3260"],  # where the storage offers it
         "reachable": true, "allowed": true,   # network up; ACL admits this initiator
         "credential": {"username": "chap-user", "password_ref": "chap"} or null,
         "luns": {"1": 5}}},             # LUN → host disk number while logged in
     "sessions": [{"id": "...", "target_iqn": "...", "portal": "10.0.0.50:3260",
                   "persistent": true}],
     "offline_disks": [5],             # taken offline by smbvol (iscsi_attach)
     "online_disks": [7]}              # online or clustered on the host, in use by it

A LUN's disk comes up offline when its target is logged in (the SAN policy OfflineShared,
Windows Server's default for disks on a shared bus such as iSCSI); ``online_disks`` are the
disks something on the host brought online (a mounted volume, a cluster disk or CSV, another
tool): ``iscsi_disconnect`` refuses to log out from under them (``disk_in_use``,
``reason: "online_on_host"``), and ``iscsi_attach`` takes such a disk offline (as
``Set-Disk -IsOffline $true`` does) before giving it to the VM.

A LUN's disk exists on the host while at least one session of its target does.  Passthrough
disks are VM disks with ``path`` None and a ``disk_number``; ``list_attachments`` reports them
as ``\\\\.\\PHYSICALDRIVE<n>`` with the target IQN, LUN and portal of the session that
reaches the disk (null when none does).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from smbvol.secret import Credential, Secret
from smbvol.testing import hostdouble
from smbvol.testing.calls import Failure
from smbvol.testing.state import Disk

#: Test CHAP secrets (12 to 16 characters, as the Microsoft initiator wants) by password_ref.
CHAP_SECRETS: Mapping[str, str] = MappingProxyType({
    "chap": "double-chap-S3cr",
    "chap-wrong": "double-chap-Wr0n",
})

#: iSCSI status codes the double reports in ``data.status_code``, as the templates do.
ISDSC_CONNECTION_FAILED = "0xEFFF0003"
ISDSC_AUTHENTICATION_FAILURE = "0xEFFF0009"
ISDSC_AUTHORIZATION_FAILURE = "0xEFFF000A"
ISDSC_DEVICE_BUSY_ON_SESSION = "0xEFFF0040"

_PORTAL_V6 = re.compile(r"^\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\](?::([0-9]{1,5}))?$")
_PORTAL = re.compile(r"^([A-Za-z0-9_.-]+)(?::([0-9]{1,5}))?$")
_IQN = re.compile(r"^(?:iqn\.[0-9]{4}-[0-9]{2}\.\S+|eui\.[0-9A-Fa-f]{16}"
                  r"|naa\.[0-9A-Fa-f]{16}(?:[0-9A-Fa-f]{16})?)$")
CHAP_MIN, CHAP_MAX = 12, 16

HINTS = {
    "target_unreachable": " (check that the portal answers on its TCP port from this host and "
                          "that the target service runs)",
    "chap_auth_failed": " (the target refused the CHAP user name or secret, or requires CHAP "
                        "and none was given)",
    "access_denied": " (the target does not allow this host's initiator IQN, or the caller is "
                     "not an administrator of the host)",
    "lun_not_found": " (the target is not offered to this host's initiator, or the LUN is not "
                     "mapped to it)",
    "invalid_state": " (the Microsoft iSCSI Initiator service (MSiSCSI) must be running: "
                     "Set-Service MSiSCSI -StartupType Automatic; Start-Service MSiSCSI)",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """A target the storage network offers: where, to whom, with which LUNs."""

    iqn: str
    portals: Tuple[str, ...]
    luns: Tuple[Tuple[int, int], ...]
    credential: Optional[Credential] = None
    reachable: bool = True
    allowed: bool = True

    def disk_of(self, lun: int) -> Optional[int]:
        for number, disk in self.luns:
            if number == lun:
                return disk
        return None


@dataclasses.dataclass(frozen=True)
class Session:
    """A logged-in session of the initiator."""

    id: str
    target_iqn: str
    portal: str
    persistent: bool = True


@dataclasses.dataclass(frozen=True)
class _Path:
    index: int
    portal: str
    address: str
    port: int
    iqn: str
    lun: int


def portal_text(address: str, port: int) -> str:
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)


def _address_key(address: str) -> str:
    try:
        return ipaddress.ip_address(address.split("%")[0]).compressed
    except ValueError:
        return address.lower()


def _portal_key(text: str) -> Tuple[str, int]:
    """(normalised address, port) of a portal text (IPv6 compared as addresses)."""
    m = _PORTAL_V6.match(text) or _PORTAL.match(text)
    if m is None:
        return (text.lower(), 0)
    return (_address_key(m.group(1)), int(m.group(2) or 3260))


class IscsiHostMixin:
    """The iSCSI operations of the double (mixed into :class:`HostDouble`)."""

    ISCSI_STAGES: Mapping[str, Tuple[str, ...]] = MappingProxyType({
        "iscsi_connect": ("portal", "login", "disk"),
        "iscsi_attach": ("portal", "login", "disk", "offline", "attach"),
        # disk_lookup: where the lookup of a session's disks fails (not "no disk"): the
        # operation ends with unexpected before it changes anything, as the templates do.
        "iscsi_detach": ("disk_lookup", "remove"),
        "iscsi_disconnect": ("disk_lookup", "logout"),
        "iscsi_connector": (),
        # list_attachments: where the iSCSI target lookup of passthrough disks fails (the
        # listing goes on with null target fields and a warning, as the template does).
        "list_attachments": ("iscsi_lookup",),
    })

    # ------------------------------------------------------------------
    # Building (tests)
    # ------------------------------------------------------------------
    def _iscsi_init(self) -> None:
        if getattr(self, "_iscsi_ready", False):
            return
        self._iscsi_ready = True
        self.iscsi_initiator = "iqn.1991-05.com.microsoft:" + self.fqdn.lower()
        self.iscsi_service_running = True
        self.iscsi_mpio = False
        self._portals: List[str] = []
        self._targets: Dict[str, Target] = {}
        self._sessions: List[Session] = []
        self._offline: set = set()
        self._online: set = set()
        #: Cluster disks, access paths of mounted partitions, read-only disks (Storage).
        self._clustered: set = set()
        self._access_paths: Dict[int, Tuple[str, ...]] = {}
        self._read_only: set = set()
        self._session_counter = 0
        for ref, value in CHAP_SECRETS.items():
            self._secrets.setdefault(ref, Secret(value))

    def add_target(self, iqn: str, portals: Iterable[str], luns: Mapping[Any, int], *,
                   credential: Optional[Credential] = None, reachable: bool = True,
                   allowed: bool = True) -> Target:
        """A target the storage offers on ``portals`` with ``luns`` (LUN → host disk number)."""
        with self._mutex:
            self._iscsi_init()
            if not _IQN.match(iqn):
                raise ValueError("not an iSCSI name: %r" % (iqn,))
            texts = []
            for portal in portals:
                key = _portal_key(portal)
                if key[1] == 0:
                    raise ValueError("not a portal host:port: %r" % (portal,))
                texts.append(portal_text(*key))
            target = Target(iqn=iqn, portals=tuple(texts),
                            luns=tuple(sorted((int(k), int(v)) for k, v in luns.items())),
                            credential=credential, reachable=bool(reachable),
                            allowed=bool(allowed))
            self._targets[iqn.lower()] = target
            return target

    def add_portal(self, portal: str) -> None:
        """A portal the initiator already knows (New-IscsiTargetPortal done before)."""
        with self._mutex:
            self._iscsi_init()
            self._portals.append(portal_text(*_portal_key(portal)))

    def add_session(self, iqn: str, portal: str, persistent: bool = True) -> Session:
        """An existing session (logged in before smbvol ran)."""
        with self._mutex:
            self._iscsi_init()
            session = Session(self._new_session_id(), iqn, portal_text(*_portal_key(portal)),
                              persistent)
            self._sessions.append(session)
            return session

    def set_disk_online(self, number: int, online: bool = True) -> None:
        """Disk ``number`` online (or clustered) on the host, in use by the host itself."""
        with self._mutex:
            self._iscsi_init()
            if online:
                self._online.add(int(number))
                self._offline.discard(int(number))
            else:
                self._online.discard(int(number))

    def set_disk_storage(self, number: int, *, clustered: Optional[bool] = None,
                         access_paths: Optional[Iterable[str]] = None,
                         read_only: Optional[bool] = None) -> None:
        """What Get-Disk / Get-Partition say of host disk ``number``: a cluster disk, the
        access paths of its mounted partitions, the read-only flag."""
        with self._mutex:
            self._iscsi_init()
            number = int(number)
            if clustered is not None:
                (self._clustered.add if clustered else self._clustered.discard)(number)
            if access_paths is not None:
                paths = tuple(str(p) for p in access_paths)
                if paths:
                    self._access_paths[number] = paths
                else:
                    self._access_paths.pop(number, None)
            if read_only is not None:
                (self._read_only.add if read_only else self._read_only.discard)(number)

    def set_iscsi(self, *, service_running: Optional[bool] = None, mpio: Optional[bool] = None,
                  initiator: Optional[str] = None) -> None:
        with self._mutex:
            self._iscsi_init()
            if service_running is not None:
                self.iscsi_service_running = bool(service_running)
            if mpio is not None:
                self.iscsi_mpio = bool(mpio)
            if initiator is not None:
                self.iscsi_initiator = initiator

    # -- read-only views ---------------------------------------------------
    @property
    def sessions(self) -> Tuple[Session, ...]:
        with self._mutex:
            self._iscsi_init()
            return tuple(self._sessions)

    @property
    def portals(self) -> Tuple[str, ...]:
        with self._mutex:
            self._iscsi_init()
            return tuple(self._portals)

    @property
    def offline_disks(self) -> frozenset:
        with self._mutex:
            self._iscsi_init()
            return frozenset(self._offline)

    @property
    def online_disks(self) -> frozenset:
        with self._mutex:
            self._iscsi_init()
            return frozenset(self._online)

    def host_disks(self) -> Dict[int, Tuple[str, int]]:
        """Disk number → (target IQN, LUN) of every iSCSI disk present on the host."""
        with self._mutex:
            self._iscsi_init()
            out: Dict[int, Tuple[str, int]] = {}
            for session in self._sessions:
                target = self._targets.get(session.target_iqn.lower())
                if target is not None:
                    for lun, disk in target.luns:
                        out[disk] = (target.iqn, lun)
            return out

    def _disk_targets(self, call: Any) -> Dict[int, Dict[str, Any]]:
        """Get-SmbvolIscsiDiskTargets: disk number → target IQN, LUN and portal of every disk
        a session reaches (the first session of a target, in login order, gives the portal);
        nothing while the initiator service is stopped.  A failure injected at stage
        ``iscsi_lookup`` becomes a warning and no targets, never a failed listing."""
        self._iscsi_init()
        try:
            call.stage("iscsi_lookup")
        except Failure as failure:
            call.warn("could not look up the iSCSI targets of the passthrough disks on host "
                      "%s: %s" % (self.host_name, failure.message))
            return {}
        if not self.iscsi_service_running:
            return {}
        out: Dict[int, Dict[str, Any]] = {}
        for session in self._sessions:
            target = self._targets.get(session.target_iqn.lower())
            if target is None:
                continue
            for lun, disk in target.luns:
                if disk not in out:
                    out[disk] = {"target_iqn": target.iqn, "target_lun": lun,
                                 "target_portal": session.portal}
        return out

    @staticmethod
    def iscsi_lock_key(iqn: str) -> str:
        return ("iscsi:" + iqn).lower()

    def _new_session_id(self) -> str:
        self._session_counter += 1
        return "ffffe000smbvol-4000013700%06d" % self._session_counter

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------
    def _dump_state(self, state: Dict[str, Any]) -> None:
        super()._dump_state(state)  # type: ignore[misc]
        self._iscsi_init()
        state["iscsi"] = {
            "initiator": self.iscsi_initiator,
            "service_running": self.iscsi_service_running,
            "mpio": self.iscsi_mpio,
            "portals": list(self._portals),
            "targets": {
                t.iqn: {"portals": list(t.portals), "reachable": t.reachable,
                        "allowed": t.allowed,
                        "credential": self._credential_to_dict(t.credential),
                        "luns": {str(lun): disk for lun, disk in t.luns}}
                for t in sorted(self._targets.values(), key=lambda t: t.iqn.lower())},
            "sessions": [dataclasses.asdict(s) for s in self._sessions],
            "offline_disks": sorted(self._offline),
            "online_disks": sorted(self._online),
            "clustered_disks": sorted(self._clustered),
            "access_paths": {str(n): list(p) for n, p in sorted(self._access_paths.items())},
            "read_only_disks": sorted(self._read_only),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)  # type: ignore[misc]
        self._iscsi_init()
        spec = dict(state.get("iscsi") or {})
        known = {"initiator", "service_running", "mpio", "portals", "targets", "sessions",
                 "offline_disks", "online_disks", "clustered_disks", "access_paths",
                 "read_only_disks"}
        if set(spec) - known:
            raise ValueError("unknown iscsi key(s) %s" % ", ".join(sorted(set(spec) - known)))
        self.set_iscsi(service_running=spec.get("service_running"), mpio=spec.get("mpio"),
                       initiator=spec.get("initiator"))
        for portal in spec.get("portals") or ():
            self.add_portal(portal)
        for iqn, t in (spec.get("targets") or {}).items():
            extra = set(t) - {"portals", "reachable", "allowed", "credential", "luns"}
            if extra:
                raise ValueError("target %s: unknown key(s) %s" % (iqn, ", ".join(sorted(extra))))
            self.add_target(iqn, t.get("portals") or (), t.get("luns") or {},
                            credential=self._credential_from_dict(t.get("credential")),
                            reachable=t.get("reachable", True), allowed=t.get("allowed", True))
        for s in spec.get("sessions") or ():
            session = Session(s.get("id") or self._new_session_id(), s["target_iqn"],
                              portal_text(*_portal_key(s["portal"])), s.get("persistent", True))
            self._sessions.append(session)
        self._offline.update(int(n) for n in spec.get("offline_disks") or ())
        for number in spec.get("online_disks") or ():
            self.set_disk_online(int(number))
        for number in spec.get("clustered_disks") or ():
            self.set_disk_storage(int(number), clustered=True)
        for number, paths in (spec.get("access_paths") or {}).items():
            self.set_disk_storage(int(number), access_paths=paths)
        for number in spec.get("read_only_disks") or ():
            self.set_disk_storage(int(number), read_only=True)

    # ------------------------------------------------------------------
    # Shared steps (what _iscsi.ps1.j2 does)
    # ------------------------------------------------------------------
    def _iscsi_stop(self, kind: str, message: str, data: Dict[str, Any],
                    code: Optional[str] = None) -> Exception:
        if code is not None:
            data = dict(data, status_code=code)
        return self._fail(kind, message + HINTS.get(kind, ""), data)

    def _iscsi_paths(self, p: Mapping[str, Any]) -> List[_Path]:
        portals = list(p.get("TargetPortals") or ())
        iqns = list(p.get("TargetIqns") or ())
        luns = list(p.get("TargetLuns") or ())
        if not portals:
            raise self._fail("invalid_parameters", "TargetPortals is empty: give one portal "
                             "per path", {"field": "TargetPortals"})
        if len(iqns) != len(portals) or len(luns) != len(portals):
            raise self._fail("invalid_parameters", "TargetPortals, TargetIqns and TargetLuns "
                             "have %d, %d and %d entries: give one of each per path"
                             % (len(portals), len(iqns), len(luns)), {"field": "TargetIqns"})
        out = []
        for i, (portal, iqn, lun) in enumerate(zip(portals, iqns, luns)):
            field = "TargetPortals[%d]" % i
            m = _PORTAL_V6.match(portal) or _PORTAL.match(portal)
            if m is None:
                raise self._fail("invalid_parameters", "%s %s is not a portal host:port (IPv6 "
                                 "as [fd00::1]:3260)" % (field, portal), {"field": field})
            port = int(m.group(2) or 3260)
            if not 1 <= port <= 65535:
                raise self._fail("invalid_parameters", "%s %s: port %d is not 1 to 65535"
                                 % (field, portal, port), {"field": field})
            if len(iqn) > 223 or not _IQN.match(iqn):
                field = "TargetIqns[%d]" % i
                raise self._fail("invalid_parameters", "%s %s is not an iSCSI name (iqn., eui. "
                                 "or naa.)" % (field, iqn), {"field": field})
            if lun < 0:
                field = "TargetLuns[%d]" % i
                raise self._fail("invalid_parameters", "%s %d is negative" % (field, lun),
                                 {"field": field})
            address = m.group(1)
            out.append(_Path(i, portal_text(address, port), address, port, iqn, int(lun)))
        return out

    def _check_chap(self, cred: Optional[Credential]) -> None:
        if cred is None:
            return
        if not cred.username:
            raise self._fail("invalid_parameters", "ChapCredential has no CHAP user name",
                             {"field": "ChapCredential"})
        length = len(cred.password)
        if not CHAP_MIN <= length <= CHAP_MAX:
            raise self._fail("invalid_parameters", "the CHAP secret of user %s has %d "
                             "characters; the Microsoft iSCSI initiator accepts 12 to 16"
                             % (cred.username, length),
                             {"field": "ChapCredential", "length": length})

    def _iscsi_lock_keys(self, paths: Sequence[_Path]) -> List[str]:
        return sorted({self.iscsi_lock_key(path.iqn) for path in paths})

    def _assert_service(self) -> None:
        if not self.iscsi_service_running:
            raise self._iscsi_stop("invalid_state", "the Microsoft iSCSI Initiator service "
                                   "(MSiSCSI) is not running on host %s" % self.host_name,
                                   {"service": "MSiSCSI"})

    def _sessions_of(self, iqn: str) -> List[Session]:
        return [s for s in self._sessions if s.target_iqn.lower() == iqn.lower()]

    def _path_session(self, path: _Path) -> Optional[Session]:
        key = _portal_key(path.portal)
        for s in self._sessions_of(path.iqn):
            if _portal_key(s.portal) == key:
                return s
        return None

    def _offering(self, portal: str) -> List[Target]:
        key = _portal_key(portal)
        return [t for t in self._targets.values()
                if t.reachable and any(_portal_key(x) == key for x in t.portals)]

    def _remove_session(self, session: Session) -> None:
        if session in self._sessions:
            self._sessions.remove(session)

    def _login_path(self, call: Any, path: _Path, cred: Optional[Credential],
                    created: List[Session]) -> bool:
        """Add-SmbvolIscsiPortal + Invoke-SmbvolIscsiLogin for one path; True: logged in."""
        data = {"portal": path.portal, "target_iqn": path.iqn, "lun": path.lun}
        key = _portal_key(path.portal)
        added = False
        if not any(_portal_key(x) == key for x in self._portals):
            call.stage("portal")
            if not self._offering(path.portal):
                raise self._iscsi_stop(
                    "target_unreachable", "adding target portal %s: Connection Failed."
                    % path.portal, dict(data), ISDSC_CONNECTION_FAILED)
            self._portals.append(path.portal)
            added = True
            call.undo(lambda text=path.portal: self._portals.remove(text)
                      if text in self._portals else None)
        target = self._targets.get(path.iqn.lower())
        offered = target is not None and any(_portal_key(x) == key for x in target.portals)
        if not offered or not target.reachable:
            if added:
                self._portals.remove(path.portal)
            if not added and not self._offering(path.portal):
                # A portal the initiator knew that no longer answers: the template's
                # Update-IscsiTargetPortal fails with the initiator's connection error.
                raise self._iscsi_stop(
                    "target_unreachable", "refreshing target portal %s: Connection Failed."
                    % path.portal, dict(data), ISDSC_CONNECTION_FAILED)
            raise self._iscsi_stop("lun_not_found", "portal %s does not offer target %s to "
                                   "host %s" % (path.portal, path.iqn, self.host_name),
                                   dict(data))
        call.stage("login")
        where = "logging in to target %s through portal %s" % (path.iqn, path.portal)
        if target.credential is not None and (
                cred is None or cred.username != target.credential.username
                or cred.password != target.credential.password):
            raise self._iscsi_stop("chap_auth_failed", where + ": Authentication Failure.",
                                   dict(data), ISDSC_AUTHENTICATION_FAILURE)
        if not target.allowed:
            raise self._iscsi_stop("access_denied", where + ": Authorization Failure.",
                                   dict(data), ISDSC_AUTHORIZATION_FAILURE)
        session = Session(self._new_session_id(), target.iqn, path.portal, True)
        self._sessions.append(session)
        created.append(session)
        call.undo(lambda s=session: self._remove_session(s))
        return True

    def _iscsi_connect(self, call: Any, p: Mapping[str, Any],
                       paths: List[_Path]) -> Dict[str, Any]:
        """Connect-SmbvolIscsi (the caller holds the target locks)."""
        wait = int(p.get("DiskWaitSeconds", 60))
        if not 0 <= wait <= 3600:
            raise self._fail("invalid_parameters", "DiskWaitSeconds %d must be 0 to 3600"
                             % wait, {"field": "DiskWaitSeconds"})
        self._assert_service()
        cred = p.get("ChapCredential")
        use_mpio = False
        if p.get("Multipath") and len(paths) > 1:
            if self.iscsi_mpio:
                use_mpio = True
            else:
                call.warn("multipath was asked for target %s but MPIO does not claim iSCSI "
                          "disks on host %s: one path is used (install Multipath-IO and run "
                          "Enable-MSDSMAutomaticClaim -BusType iSCSI)"
                          % (paths[0].iqn, self.host_name))
        used: List[Dict[str, Any]] = []
        used_paths: List[_Path] = []
        created: List[Session] = []
        added_before = list(self._portals)
        if not use_mpio:
            for path in paths:
                if self._sessions_of(path.iqn):
                    used.append({"portal": path.portal, "target_iqn": path.iqn,
                                 "target_lun": path.lun, "session_created": False})
                    used_paths.append(path)
                    break
        failures: List[Exception] = []
        for path in paths:
            if not use_mpio and used:
                break
            if use_mpio and self._path_session(path) is not None:
                used.append({"portal": path.portal, "target_iqn": path.iqn,
                             "target_lun": path.lun, "session_created": False})
                used_paths.append(path)
                continue
            try:
                self._login_path(call, path, cred, created)
            except Failure as failure:
                failures.append(failure)
                call.warn("path %s %s LUN %d: %s" % (path.portal, path.iqn, path.lun,
                                                      failure.message))
                continue
            used.append({"portal": path.portal, "target_iqn": path.iqn,
                         "target_lun": path.lun, "session_created": True})
            used_paths.append(path)
        if not used:
            raise failures[0]
        call.stage("disk")
        numbers: List[int] = []
        seen: List[int] = []
        for path in used_paths:
            target = self._targets.get(path.iqn.lower())
            if target is None:
                continue
            for lun, disk in target.luns:
                if lun not in seen:
                    seen.append(lun)
                if lun == path.lun and disk not in numbers:
                    numbers.append(disk)
        if not numbers:
            first = paths[0]
            raise self._iscsi_stop(
                "lun_not_found", "no disk of LUN %d of target %s appeared on host %s within "
                "%d s (LUNs seen on the target: %s)" % (first.lun, first.iqn, self.host_name,
                                                        wait, ", ".join(map(str, seen))),
                {"target_iqn": first.iqn, "lun": first.lun, "luns_seen": seen})
        added = [x for x in self._portals if x not in added_before]
        first = used[0]
        return {
            "disk_number": numbers[0],
            "disk_path": "\\\\.\\PHYSICALDRIVE%d" % numbers[0],
            "target_iqn": first["target_iqn"],
            "target_lun": first["target_lun"],
            "paths": used,
            "portals_added": added,
            "sessions_created": len(created),
            "multipath": use_mpio,
            "changed": bool(created or added),
        }

    def _passthrough_holders(self, numbers: Iterable[int], except_vm_id: str = ""
                             ) -> List[Tuple[Any, Any]]:
        wanted = set(numbers)
        out = []
        for vm in self._vms_in_order():
            if except_vm_id and vm.id == except_vm_id:
                continue
            for disk in vm.disks:
                if disk.disk_number is not None and disk.disk_number in wanted:
                    out.append((vm, disk))
        return out

    def _look_up_session_disks(self, call: Any, sessions: Sequence[Session]) -> None:
        """Get-SmbvolIscsiDisks' lookup of the sessions' disks.  A failure injected at stage
        ``disk_lookup`` is that lookup failing for the first session (anything but the
        cmdlet's "no match"): ``unexpected`` naming its target, before anything changed."""
        if not sessions:
            return
        try:
            call.stage("disk_lookup")
        except Failure as failure:
            first = sessions[0]
            raise self._fail("unexpected", "could not look up the disks of iSCSI session %s of "
                             "target %s on host %s: %s (a failed lookup is not taken for \"no "
                             "disk\"; check Get-Disk -iSCSISession and the Storage service, then "
                             "retry)" % (first.id, first.target_iqn, self.host_name,
                                         failure.message),
                             {"target_iqn": first.target_iqn, "session_id": first.id,
                              "cause": failure.message}) from failure

    def _is_iscsi_disk(self, number: int) -> bool:
        """Get-SmbvolDiskBus: in the double a disk number in some target's LUN table is an
        iSCSI disk; any other is a local (non-iSCSI) disk of the host."""
        return any(disk == number for t in self._targets.values() for _, disk in t.luns)

    def _lun_disks(self, call: Any, paths: Sequence[_Path]) -> List[int]:
        """Find-SmbvolLunDisks through the current sessions (no login)."""
        self._look_up_session_disks(
            call, [s for path in paths for s in self._sessions_of(path.iqn)])
        numbers: List[int] = []
        for path in paths:
            if not self._sessions_of(path.iqn):
                continue
            target = self._targets.get(path.iqn.lower())
            disk = target.disk_of(path.lun) if target is not None else None
            if disk is not None and disk not in numbers:
                numbers.append(disk)
        return numbers

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------
    def op_iscsi_connect(self, call: Any, p: Dict[str, Any]) -> Dict[str, Any]:
        """Add portals, log in (CHAP, MPIO), wait for the LUN's disk; sessions reused."""
        self._iscsi_init()
        paths = self._iscsi_paths(p)
        self._check_chap(p.get("ChapCredential"))
        self._check_locks(self._iscsi_lock_keys(paths), p.get("LockTimeoutSeconds"))
        return self._iscsi_connect(call, p, paths)

    def op_iscsi_attach(self, call: Any, p: Dict[str, Any]) -> Dict[str, Any]:
        """Connect, take the disk offline, attach it as a passthrough disk on a free slot
        (idempotent by disk number); everything this call did is undone on failure."""
        self._iscsi_init()
        bus = str(p.get("DiskBus", "scsi")).lower()
        if bus not in ("scsi", "ide"):
            raise self._fail("invalid_parameters", "DiskBus %s for VM %s must be scsi or ide"
                             % (p.get("DiskBus"), p.get("VMName")),
                             {"field": "DiskBus", "vm_name": p.get("VMName")})
        paths = self._iscsi_paths(p)
        self._check_chap(p.get("ChapCredential"))
        vm = self._find_vm(p.get("VMName"))
        self._check_locks([vm.lock_key] + self._iscsi_lock_keys(paths),
                          p.get("LockTimeoutSeconds"))
        self._check_vm_state(vm, "attached")
        conn = self._iscsi_connect(call, p, paths)
        number = conn["disk_number"]
        key = vm.name.lower()
        vm = self._vms[key]

        def result(disk: Any, changed: bool) -> Dict[str, Any]:
            return {"vm_name": vm.name, "vm_id": vm.id, **disk.slot_fields(),
                    "disk_path": conn["disk_path"], "disk_number": number,
                    "target_iqn": conn["target_iqn"], "target_lun": conn["target_lun"],
                    "sessions_created": conn["sessions_created"],
                    "changed": changed or conn["changed"]}

        for disk in vm.disks:
            if disk.disk_number == number:
                return result(disk, False)
        holders = self._passthrough_holders([number], vm.id)
        if holders:
            names = sorted({h[0].name for h in holders}, key=str.lower)
            raise self._fail("disk_in_use", "disk %d (target %s LUN %d) is already attached to "
                             "VM %s; detach it there before attaching it to %s"
                             % (number, conn["target_iqn"], conn["target_lun"],
                                ", ".join(names), vm.name),
                             {"vm_name": vm.name, "disk_number": number,
                              "target_iqn": conn["target_iqn"],
                              "target_lun": conn["target_lun"], "vms": names})
        self._check_free_on_host(vm, number, conn)
        ctype, cnum, loc, add_controller = self._free_slot(vm, bus)
        call.stage("offline")
        if number in self._online:
            # Set-Disk -IsOffline $true: only a disk online on the host is taken offline (a new
            # LUN arrives offline under the default SAN policy, OfflineShared).
            self._online.discard(number)
            call.undo(lambda: self._online.add(number))
            if number not in self._offline:
                self._offline.add(number)
                call.undo(lambda: self._offline.discard(number))
        if number in self._read_only:
            # Set-Disk -IsReadOnly $false: OfflineShared leaves a new LUN read-only.
            self._read_only.discard(number)
            call.undo(lambda: self._read_only.add(number))
        call.stage("attach")
        disk = Disk(ctype, cnum, loc, None, disk_number=number)
        self._add_disk(call, key, disk, add_controller)
        return result(disk, True)

    def _check_free_on_host(self, vm: Any, number: int, conn: Dict[str, Any]) -> None:
        """Assert-SmbvolDiskFreeOnHost: refuse a cluster disk and an online disk with mounted
        partitions (the host may use them)."""
        where = "disk %d (target %s LUN %d)" % (number, conn["target_iqn"], conn["target_lun"])
        data = {"vm_name": vm.name, "disk_number": number, "target_iqn": conn["target_iqn"],
                "target_lun": conn["target_lun"]}
        if number in self._clustered:
            raise self._fail("disk_in_use", "%s is a cluster disk of host %s; remove it from the "
                             "cluster before giving it to VM %s" % (where, self.host_name,
                                                                     vm.name),
                             dict(data, reason="clustered"))
        paths = self._access_paths.get(number)
        if paths and number not in self._offline:
            raise self._fail("disk_in_use", "%s is online on host %s with mounted partitions "
                             "(%s): the host may be using it; dismount it and take it offline "
                             "(Set-Disk -Number %d -IsOffline $true) before giving it to VM %s"
                             % (where, self.host_name, ", ".join(paths), number, vm.name),
                             dict(data, reason="online_on_host", access_paths=list(paths)))

    def op_iscsi_detach(self, call: Any, p: Dict[str, Any]) -> Dict[str, Any]:
        """Remove the VM's passthrough disk of the LUN (found through current sessions)."""
        self._iscsi_init()
        paths = self._iscsi_paths(p)
        vm = self._find_vm(p.get("VMName"))
        self._check_locks([vm.lock_key], p.get("LockTimeoutSeconds"))
        numbers = self._lun_disks(call, paths) if self.iscsi_service_running else []
        nothing = {"vm_name": vm.name, "vm_id": vm.id, "disk_number": None, "disk_path": None,
                   "target_iqn": paths[0].iqn, "target_lun": paths[0].lun, "removed": False,
                   "controller_type": None, "controller_number": None,
                   "controller_location": None, "changed": False}
        if not numbers:
            # Find-SmbvolLostPassthrough / Select-SmbvolLostPassthrough: a passthrough drive
            # whose disk is gone (no path, no disk number) may be this LUN's: only the one.
            found = [d for d in vm.disks_in_order() if d.disk_number is None and not d.path]
            if len(found) > 1:
                slots = ["%s %d:%d" % d.slot for d in found]
                raise self._fail("invalid_state", "LUN %d of target %s has no disk on host %s, "
                                 "and VM %s has %d passthrough drives whose disk is gone (%s): "
                                 "cannot tell which is this LUN; remove the right one with "
                                 "Remove-VMHardDiskDrive" % (paths[0].lun, paths[0].iqn,
                                                             self.host_name, vm.name,
                                                             len(found), ", ".join(slots)),
                                 {"vm_name": vm.name, "target_iqn": paths[0].iqn,
                                  "target_lun": paths[0].lun, "slots": slots})
            if not found:
                call.warn("LUN %d of target %s has no disk on host %s (not logged in): nothing "
                          "to detach from VM %s" % (paths[0].lun, paths[0].iqn, self.host_name,
                                                    vm.name))
                return nothing
            call.warn("LUN %d of target %s has no disk on host %s: removing the only "
                      "passthrough drive of VM %s whose disk is gone (%s %d:%d)"
                      % ((paths[0].lun, paths[0].iqn, self.host_name, vm.name) + found[0].slot))
        else:
            found = [d for d in vm.disks_in_order()
                     if d.disk_number is not None and d.disk_number in numbers]
            if not found:
                return dict(nothing, disk_number=numbers[0],
                            disk_path="\\\\.\\PHYSICALDRIVE%d" % numbers[0])
        self._check_vm_state(vm, "removed")
        self._check_detachable(vm, found, "disk_number")
        call.stage("remove")
        for disk in found:
            self._set_disk(vm.name.lower(), disk, None)
        first = found[0]
        return {"vm_name": vm.name, "vm_id": vm.id, "disk_number": first.disk_number,
                "disk_path": None if first.disk_number is None
                else "\\\\.\\PHYSICALDRIVE%d" % first.disk_number,
                "target_iqn": paths[0].iqn, "target_lun": paths[0].lun, "removed": True,
                **first.slot_fields(), "changed": True}

    def op_iscsi_disconnect(self, call: Any, p: Dict[str, Any]) -> Dict[str, Any]:
        """Log out of the target(s) unless a LUN of them is attached to a VM (disk_in_use).

        Every session of the host has its disks looked up first (a failure → ``unexpected``,
        nothing logged out); a VM's passthrough disk that is an iSCSI disk no session reaches
        may be this target's → ``disk_in_use`` (``reason: unmatched_passthrough_disk``); a
        disk of the target online (or clustered) on the host → ``disk_in_use``
        (``reason: online_on_host``)."""
        self._iscsi_init()
        paths = self._iscsi_paths(p)
        iqns: List[str] = []
        for path in paths:
            if path.iqn.lower() not in [i.lower() for i in iqns]:
                iqns.append(path.iqn)
        self._check_locks(self._iscsi_lock_keys(paths), p.get("LockTimeoutSeconds"))
        sessions = [s for iqn in iqns for s in self._sessions_of(iqn)] \
            if self.iscsi_service_running else []
        if not sessions:
            return {"target_iqns": iqns, "sessions_removed": 0, "logged_out": False,
                    "changed": False}
        self._look_up_session_disks(call, self._sessions)
        placed = self.host_disks()
        disks: Dict[int, int] = {}
        for iqn in iqns:
            target = self._targets.get(iqn.lower())
            if target is not None:
                for lun, disk in target.luns:
                    disks[disk] = lun
        holders = self._passthrough_holders(disks)
        if holders:
            vms: List[str] = []
            luns: List[int] = []
            held: List[int] = []
            for vm, disk in holders:
                if vm.name not in vms:
                    vms.append(vm.name)
                held.append(disk.disk_number)
                if disks[disk.disk_number] not in luns:
                    luns.append(disks[disk.disk_number])
            raise self._fail("disk_in_use", "target %s stays logged in on host %s: LUN %s of it "
                             "is attached to VM %s; detach those disks first"
                             % (", ".join(iqns), self.host_name, ", ".join(map(str, luns)),
                                ", ".join(vms)),
                             {"target_iqns": iqns, "vms": vms, "luns": luns,
                              "disk_numbers": held})
        online = sorted(number for number in disks
                        if number in self._online and number in placed)
        if online:
            online_luns = sorted({disks[number] for number in online})
            raise self._fail("disk_in_use", "target %s stays logged in on host %s: disk %s "
                             "(LUN %s) of it is online or clustered on the host (a mounted "
                             "volume, a cluster disk or another tool may use it) and logging "
                             "out would cut it off; stop using it and take it offline "
                             "(Set-Disk -Number <n> -IsOffline $true) first"
                             % (", ".join(iqns), self.host_name, ", ".join(map(str, online)),
                                ", ".join(map(str, online_luns))),
                             {"target_iqns": iqns, "vms": [], "luns": online_luns,
                              "disk_numbers": online, "reason": "online_on_host"})
        unmatched: List[Tuple[Any, Any]] = [
            (vm, disk) for vm in self._vms_in_order() for disk in vm.disks
            if disk.disk_number is not None and disk.disk_number not in placed
            and self._is_iscsi_disk(disk.disk_number)]
        if unmatched:
            names: List[str] = []
            for vm, _ in unmatched:
                if vm.name not in names:
                    names.append(vm.name)
            numbers = [disk.disk_number for _, disk in unmatched]
            raise self._fail("disk_in_use", "target %s stays logged in on host %s: passthrough "
                             "disk %s of VM %s is an iSCSI disk (or one the host does not list) "
                             "that no iSCSI session of this host could be matched to, so it may "
                             "be a LUN of this target; check it with Get-Disk -Number and "
                             "Get-IscsiSession, and detach it first if it is"
                             % (", ".join(iqns), self.host_name, ", ".join(map(str, numbers)),
                                ", ".join(names)),
                             {"target_iqns": iqns, "vms": names, "luns": [],
                              "disk_numbers": numbers, "reason": "unmatched_passthrough_disk"})
        removed = 0
        for session in sessions:
            call.stage("logout")
            self._remove_session(session)
            call.undo(lambda s=session: self._sessions.append(s))
            removed += 1
        for number in list(disks):
            if number in self._offline and not self.host_disks().get(number):
                self._offline.discard(number)
        return {"target_iqns": iqns, "sessions_removed": removed, "logged_out": True,
                "changed": True}

    def op_iscsi_connector(self, call: Any, p: Dict[str, Any]) -> Dict[str, Any]:
        """The initiator IQN, addresses, names, MPIO and the initiator service state."""
        self._iscsi_init()
        return {
            "host_name": self.host_name, "fqdn": self.fqdn,
            "initiator_iqns": [self.iscsi_initiator],
            **self._address_fields(),
            "multipath": self.iscsi_mpio, "mpio_installed": self.iscsi_mpio,
            "initiator_service": "Running" if self.iscsi_service_running else "Stopped",
        }


class HostDouble(IscsiHostMixin, hostdouble.HostDouble):
    """The host double with iSCSI (what :mod:`smbvol.testing` exports as ``HostDouble``)."""

    STAGES = MappingProxyType(dict(hostdouble.HostDouble.STAGES,
                                   **IscsiHostMixin.ISCSI_STAGES))
    STATE_KEYS = hostdouble.HostDouble.STATE_KEYS + ("iscsi",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._iscsi_init()
