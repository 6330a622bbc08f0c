"""An in-memory Hyper-V host that answers the script contract like the real templates.

:class:`HostDouble` holds what a Hyper-V host holds for smbvol — VMs (generation 1 or 2,
running or off, SCSI controllers with 64 locations each, Generation 1's 2 IDE controllers
with 2 locations each), SMB mappings (global or user, their status and the credentials they
were made with), the SMB shares it can reach with the files on them, and shares on the host
itself — and answers every operation of :data:`smbvol.scripts.OPERATIONS` with the envelope
the template would print: the same result fields, the same error kinds, the same rollback.

It is a :class:`~smbvol.executors.fake.FakeExecutor` handler, so everything above the
executor (parameter checks, the envelope parser, the exception mapping) runs for real::

    host = HostDouble("hv01")
    host.add_vm("instance-1")
    host.add_share(r"\\\\fs01\\vols", files=["volume-1.vhdx"])
    result = host.executor().run(scripts.render("attach_vhd"), {...})

What happens on the (simulated) host, per operation, is written in each ``op_*`` method and
in ``tests/contract/README.md``; the contract vectors in ``tests/contract/`` pin it down and
are replayed against Windows by the live suite.

Extending it: an operation ``x`` is the method ``op_x(call, params)``; a mixin adding
operations (iSCSI) defines its ``op_*`` methods, adds its failure stages to :attr:`STAGES`,
its top-level state keys to :attr:`STATE_KEYS`, and overrides :meth:`_load_state` /
:meth:`_dump_state` (calling ``super()``) for its part of :meth:`to_dict` / :meth:`from_dict`.
The host mutex (:attr:`_mutex`), :meth:`_check_locks`, :meth:`_fail` and the per-call undo
list (``call.undo``) are shared.

Thread safety: every operation runs under one lock standing for the host-side mutex, so
concurrent callers (64 threads attaching to one VM) get distinct slots.  :meth:`hold_lock`
simulates another client holding one of the template's named mutexes: an operation that
needs it fails at once with ``host_busy`` (the real template waits ``LockTimeoutSeconds``
first; the double never sleeps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import threading
import uuid
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from typing import Mapping as TMapping

from smbvol import envelope
from smbvol.executors.fake import FakeExecutor
from smbvol.scripts import OPERATIONS
from smbvol.secret import Credential, Secret

LOG = logging.getLogger(__name__)

MAX_SCSI_CONTROLLERS = 4
SCSI_LOCATIONS = 64
IDE_CONTROLLERS = 2
IDE_LOCATIONS = 2
MAPPING_KINDS = ("global", "user")
MAPPING_STATUSES = ("OK", "Disconnected", "Unavailable")

#: Test passwords for the ``password_ref`` names the contract vectors use.  The double
#: resolves a reference with these unless :meth:`HostDouble.from_dict` is given others.
DEFAULT_SECRETS: TMapping[str, str] = MappingProxyType({
    "share": "double-share-password",
    "other": "double-other-password",
    "wrong": "double-wrong-password",
})

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


# --------------------------------------------------------------------------
# The host's objects (frozen: the double replaces them, callers get snapshots)
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Disk:
    """One hard disk drive of a VM (``path`` is the image, or None for a passthrough disk)."""

    controller_type: str
    controller_number: int
    controller_location: int
    path: Optional[str]
    maximum_iops: int = 0
    minimum_iops: int = 0
    disk_number: Optional[int] = None

    @property
    def slot(self) -> Tuple[str, int, int]:
        return (self.controller_type, self.controller_number, self.controller_location)


@dataclasses.dataclass(frozen=True)
class VM:
    """A Hyper-V VM as the double holds it."""

    name: str
    id: str
    generation: int
    running: bool
    scsi_controllers: int
    disks: Tuple[Disk, ...] = ()
    #: Slots taken by DVD drives (New-VM gives a Generation 1 VM one at IDE 1:0).
    dvd_drives: Tuple[Tuple[str, int, int], ...] = ()

    def used_slots(self) -> set:
        return {d.slot for d in self.disks} | set(self.dvd_drives)


@dataclasses.dataclass(frozen=True)
class Share:
    """An SMB share the host can reach (``local_path`` set: the share is on this host)."""

    root: str
    files: Tuple[str, ...] = ()
    credential: Optional[Credential] = None
    local_path: Optional[str] = None
    reachable: bool = True

    @property
    def server(self) -> str:
        return self.root[2:].split("\\")[0]

    @property
    def name(self) -> str:
        return self.root[2:].split("\\")[1]

    def has_file(self, relative: str) -> bool:
        wanted = relative.lower()
        return any(f.lower() == wanted for f in self.files)

    def accepts(self, credential: Optional[Credential]) -> bool:
        if self.credential is None:
            return True
        return credential is not None and _same_credential(self.credential, credential)


@dataclasses.dataclass(frozen=True)
class Mapping:
    """An SMB mapping (``Get-SmbGlobalMapping`` / ``Get-SmbMapping``) of a share root."""

    remote_path: str
    kind: str = "global"
    status: str = "OK"
    credential: Optional[Credential] = None
    #: Created by smbvol (only those are removed by unmount_share without Force).
    owned: bool = False

    @property
    def server(self) -> str:
        return self.remote_path[2:].split("\\")[0]


@dataclasses.dataclass(frozen=True)
class HostCall:
    """One operation the double answered: parameters with secrets masked, and the outcome."""

    operation: str
    parameters: Dict[str, Any]
    options: Dict[str, Any]
    #: ``"ok"`` or the error kind.
    outcome: str


@dataclasses.dataclass(frozen=True)
class _Injected:
    operation: str
    kind: str
    message: Optional[str]
    stage: Optional[str]
    native_code: Optional[int]
    skip: int = 0
    data: Optional[Dict[str, Any]] = None


class _Failure(Exception):
    """An error envelope in the making (never leaves the double)."""

    def __init__(self, kind: str, message: str, data: Optional[Dict[str, Any]] = None,
                 native_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.data = dict(data or {})
        self.native_code = native_code


@dataclasses.dataclass(frozen=True)
class _Location:
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


class _Call:
    """One invocation: options, the failure injected for it, warnings, undo actions."""

    def __init__(self, operation: str, options: TMapping[str, Any],
                 injected: Optional[_Injected]) -> None:
        self.operation = operation
        self.options = dict(options)
        self.injected = injected
        self.warnings: List[str] = []
        self._undo: List[Callable[[], None]] = []

    def stage(self, name: Optional[str]) -> None:
        """Fail here if the injected failure is for stage ``name`` (None: the start)."""
        inj = self.injected
        if inj is None or inj.stage != name:
            return
        if inj.skip > 0:
            self.injected = dataclasses.replace(inj, skip=inj.skip - 1)
            return
        self.injected = None
        message = inj.message or "injected %s failure%s in %s" % (
            inj.kind, " at stage %s" % name if name else "", self.operation)
        raise _Failure(inj.kind, message, inj.data, inj.native_code)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def undo(self, action: Callable[[], None]) -> None:
        self._undo.append(action)

    def roll_back(self) -> None:
        while self._undo:
            self._undo.pop()()


# --------------------------------------------------------------------------
# Path helpers (Windows rules: case-insensitive, backslashes)
# --------------------------------------------------------------------------

def _split_unc(path: Any) -> Optional[Tuple[str, str, Tuple[str, ...]]]:
    if not isinstance(path, str) or not path.startswith("\\\\"):
        return None
    parts = path[2:].rstrip("\\").split("\\")
    if len(parts) < 2 or any(not p for p in parts):
        return None
    return parts[0], parts[1], tuple(parts[2:])


def ipv6_literal(address: str) -> str:
    """The ``ipv6-literal.net`` name Windows uses for an IPv6 address in a UNC path."""
    return address.replace(":", "-").replace("%", "s") + ".ipv6-literal.net"


def _ip(text: str) -> Optional[Any]:
    try:
        return ipaddress.ip_address(text.split("%")[0].strip("[]"))
    except ValueError:
        return None


def _share_root_of(path: Optional[str]) -> Optional[str]:
    """Get-SmbvolShareRootOf: ``\\\\host\\share`` of a UNC path, else None."""
    parts = _split_unc((path or "").replace("/", "\\"))
    if parts is None or parts[0] in ("?", "."):
        return None
    return "\\\\%s\\%s" % parts[:2]


def _same_credential(a: Optional[Credential], b: Optional[Credential]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.username.lower() == b.username.lower() and a.password == b.password


def _controller_order(disk: Disk) -> Tuple[int, int, int]:
    return (0 if disk.controller_type == "IDE" else 1, disk.controller_number,
            disk.controller_location)


def _default_value(text: Optional[str]) -> Any:
    """A catalog Param default (PowerShell source) as a Python value."""
    if text is None or text == "$null":
        return None
    if text == "$false":
        return False
    if text == "$true":
        return True
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return int(text)


def _masked(parameters: TMapping[str, Any]) -> Dict[str, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, Credential):
            return {"username": v.username, "password": "***"}
        if isinstance(v, Secret):
            return "***"
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in parameters.items()}


# --------------------------------------------------------------------------
# The double
# --------------------------------------------------------------------------

class HostDouble:
    """An in-memory Hyper-V host; :meth:`handler` answers scripts like the templates."""

    #: Where :meth:`fail_next` may inject a failure, per operation (None = at the start).
    STAGES: TMapping[str, Tuple[str, ...]] = MappingProxyType({
        "mount_share": ("mapping", "verify"),
        "unmount_share": ("remove",),
        "attach_vhd": ("mapping", "verify", "attach", "qos"),
        "attach_vhds": ("mapping", "verify", "attach", "qos"),
        "detach_vhd": ("remove",),
        "list_attachments": (),
        "host_info": (),
    })
    #: Top-level keys of the :meth:`to_dict` state.
    STATE_KEYS: Tuple[str, ...] = ("host", "vms", "shares", "mappings", "locks_held",
                                   "fail_next")

    def __init__(self, host_name: str = "hv01", *, addresses: Sequence[str] = ("10.0.0.11",),
                 domain: str = "example.test", global_mapping_supported: bool = True,
                 remote_session: bool = False,
                 secrets: Optional[TMapping[str, Any]] = None) -> None:
        self.host_name = host_name
        self.addresses = tuple(addresses)
        self.domain = domain
        self.global_mapping_supported = bool(global_mapping_supported)
        self.remote_session = bool(remote_session)
        self._mutex = threading.RLock()
        self._vms: Dict[str, VM] = {}
        self._shares: Dict[str, Share] = {}
        self._mappings: List[Mapping] = []
        self._held: Dict[str, int] = {}
        self._injected: List[_Injected] = []
        self._calls: List[HostCall] = []
        self._secrets: Dict[str, Secret] = {k: Secret(v) for k, v in DEFAULT_SECRETS.items()}
        for ref, value in (secrets or {}).items():
            self._secrets[ref] = Secret(value)

    def __repr__(self) -> str:
        return "<HostDouble %s: %d VMs, %d shares, %d mappings>" % (
            self.host_name, len(self._vms), len(self._shares), len(self._mappings))

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    @property
    def fqdn(self) -> str:
        return "%s.%s" % (self.host_name, self.domain) if self.domain else self.host_name

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
    def add_vm(self, name: str, *, generation: int = 2, running: bool = False,
               vm_id: Optional[str] = None, scsi_controllers: int = 1,
               dvd_drives: Optional[Iterable[Sequence[Any]]] = None) -> str:
        """Add a VM; returns its id.  A Generation 1 VM gets a DVD drive at IDE 1:0."""
        if generation not in (1, 2):
            raise ValueError("generation must be 1 or 2, not %r" % (generation,))
        if not 0 <= scsi_controllers <= MAX_SCSI_CONTROLLERS:
            raise ValueError("scsi_controllers must be 0..%d" % MAX_SCSI_CONTROLLERS)
        if dvd_drives is None:
            dvd = (("IDE", 1, 0),) if generation == 1 else ()
        else:
            dvd = tuple((str(t).upper(), int(n), int(loc)) for t, n, loc in dvd_drives)
        with self._mutex:
            if name.lower() in self._vms:
                raise ValueError("a VM named %r exists already" % name)
            vm_id = vm_id or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                            "smbvol-hostdouble:" + name.lower()))
            vm = VM(name=name, id=vm_id, generation=generation, running=bool(running),
                    scsi_controllers=scsi_controllers)
            for slot in dvd:
                self._check_slot(vm, *slot)
                vm = dataclasses.replace(vm, dvd_drives=vm.dvd_drives + (slot,))
            self._vms[name.lower()] = vm
            return vm_id

    def set_running(self, vm_name: str, running: bool) -> None:
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            self._vms[vm.name.lower()] = dataclasses.replace(vm, running=bool(running))

    def add_share(self, unc_root: str, *, files: Iterable[str] = (),
                  credential: Optional[Credential] = None, local_path: Optional[str] = None,
                  reachable: bool = True) -> Share:
        """Add a share ``\\\\server\\share``; ``local_path`` set: it is on this host."""
        parts = _split_unc(unc_root)
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
        parts = _split_unc(remote_path)
        if parts is None:
            raise ValueError("a mapping's remote path is a UNC path, not %r" % (remote_path,))
        mapping = Mapping(remote_path="\\\\%s\\%s" % parts[:2], kind=kind, status=status,
                          credential=credential, owned=bool(owned))
        with self._mutex:
            self._mappings.append(mapping)
        return mapping

    def attach_disk(self, vm_name: str, path: Optional[str], controller_type: str = "SCSI",
                    number: int = 0, location: int = 0, *, maximum_iops: int = 0,
                    minimum_iops: int = 0, disk_number: Optional[int] = None) -> Disk:
        """Give a VM a disk that is already attached (no mount, no checks beyond the slot)."""
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            ctype = controller_type.upper()
            self._check_slot(vm, ctype, number, location)
            disk = Disk(ctype, int(number), int(location), path, int(maximum_iops),
                        int(minimum_iops), disk_number)
            self._vms[vm.name.lower()] = dataclasses.replace(vm, disks=vm.disks + (disk,))
            return disk

    def fill_scsi(self, vm_name: str, except_slots: Iterable[Sequence[int]] = (),
                  controllers: Optional[Iterable[int]] = None) -> int:
        """Take every free SCSI location of the VM's controllers (or of ``controllers``) with a
        filler disk on ``\\\\filler.invalid\\fill``, except ``except_slots`` ((controller,
        location) pairs); returns how many were added.  State shorthand in a VM's entry:
        ``"fill_scsi": true`` or ``{"controllers": [0], "except": [[0, 17]]}``."""
        keep = {tuple(int(x) for x in slot) for slot in except_slots}
        added = 0
        with self._mutex:
            vm = self._vm_or_raise(vm_name)
            numbers = range(vm.scsi_controllers) if controllers is None else controllers
            used = vm.used_slots()
            for number in numbers:
                for location in range(SCSI_LOCATIONS):
                    if ("SCSI", number, location) in used or (number, location) in keep:
                        continue
                    self.attach_disk(vm.name, "\\\\filler.invalid\\fill\\%s-%d-%d.vhdx"
                                     % (vm.name, number, location), "SCSI", number, location)
                    added += 1
        return added

    def _check_slot(self, vm: VM, ctype: str, number: int, location: int) -> None:
        if ctype == "SCSI":
            if not (0 <= number < vm.scsi_controllers and 0 <= location < SCSI_LOCATIONS):
                raise ValueError("VM %s has no SCSI slot %d:%d" % (vm.name, number, location))
        elif ctype == "IDE":
            if vm.generation != 1 or not (0 <= number < IDE_CONTROLLERS
                                          and 0 <= location < IDE_LOCATIONS):
                raise ValueError("VM %s has no IDE slot %d:%d" % (vm.name, number, location))
        else:
            raise ValueError("controller_type must be SCSI or IDE, not %r" % (ctype,))
        if (ctype, number, location) in vm.used_slots():
            raise ValueError("slot %s %d:%d of VM %s is taken" % (ctype, number, location,
                                                                  vm.name))

    def fail_next(self, operation: str, kind: str, message: Optional[str] = None, *,
                  stage: Optional[str] = None, native_code: Optional[int] = None,
                  skip: int = 0, data: Optional[Dict[str, Any]] = None) -> None:
        """Make the next call of ``operation`` fail with ``kind`` (once).

        ``stage`` None fails before anything happens; otherwise at that step (see
        :attr:`STAGES`), after what came before it was done — which the operation then rolls
        back as the template does.  ``skip`` lets the stage pass that many times first
        (e.g. the second image of ``attach_vhds``).  The next call of the operation consumes
        the injection even if it never reaches the stage.
        """
        if not callable(getattr(self, "op_" + operation, None)):
            raise ValueError("the double has no operation %r" % (operation,))
        if operation in OPERATIONS and kind not in OPERATIONS[operation].error_kinds:
            raise ValueError("%s does not report %r; its kinds: %s" % (
                operation, kind, ", ".join(OPERATIONS[operation].error_kinds)))
        if stage is not None and stage not in self.STAGES.get(operation, ()):
            raise ValueError("%s has no stage %r; stages: %s" % (
                operation, stage, ", ".join(self.STAGES.get(operation, ())) or "none"))
        with self._mutex:
            self._injected.append(_Injected(operation, kind, message, stage, native_code,
                                            int(skip), dict(data) if data else None))

    @contextlib.contextmanager
    def hold_lock(self, key: str) -> Iterator[None]:
        """Stand for another client holding the host mutex ``key`` ('vm:<id>', 'share:<root>')."""
        key = key.lower()
        with self._mutex:
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._mutex:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]

    def vm_lock_key(self, vm_name: str) -> str:
        """The lock key the templates take for a VM (by id)."""
        return "vm:" + self._vm_or_raise(vm_name).id.lower()

    @staticmethod
    def share_lock_key(share_path: str) -> str:
        """The lock key the templates take for the share of ``share_path`` (its root)."""
        parts = _split_unc(share_path)
        if parts is None:
            raise ValueError("not a UNC path: %r" % (share_path,))
        return ("share:\\\\%s\\%s" % parts[:2]).lower()

    # ------------------------------------------------------------------
    # Read-only views
    # ------------------------------------------------------------------
    @property
    def vms(self) -> TMapping[str, VM]:
        with self._mutex:
            return MappingProxyType({vm.name: vm for vm in self._vms.values()})

    def vm(self, name: str) -> VM:
        with self._mutex:
            return self._vm_or_raise(name)

    @property
    def shares(self) -> TMapping[str, Share]:
        with self._mutex:
            return MappingProxyType({s.root: s for s in self._shares.values()})

    @property
    def mappings(self) -> Tuple[Mapping, ...]:
        with self._mutex:
            return tuple(self._mappings)

    def disks_of(self, vm_name: str) -> Tuple[Disk, ...]:
        with self._mutex:
            return tuple(sorted(self._vm_or_raise(vm_name).disks, key=_controller_order))

    @property
    def calls(self) -> Tuple[HostCall, ...]:
        with self._mutex:
            return tuple(self._calls)

    @property
    def secrets(self) -> TMapping[str, Secret]:
        """``password_ref`` → Secret, as used by :meth:`to_dict` / :meth:`from_dict`."""
        with self._mutex:
            return MappingProxyType(dict(self._secrets))

    def _vm_or_raise(self, name: str) -> VM:
        try:
            return self._vms[name.lower()]
        except KeyError:
            raise KeyError("no VM named %r" % (name,)) from None

    # ------------------------------------------------------------------
    # Executor plumbing
    # ------------------------------------------------------------------
    def executor(self, host: Optional[str] = None) -> FakeExecutor:
        """A FakeExecutor whose scripts this double answers."""
        return FakeExecutor(self.handler, host=host or self.host_name)

    def handler(self, script: Any, parameters: TMapping[str, Any]) -> Dict[str, Any]:
        """Answer ``script`` (a :class:`~smbvol.scripts.Script`) as the host would: an envelope."""
        operation = getattr(script, "name", script)
        options = dict(getattr(script, "options", ()) or ())
        method = getattr(self, "op_" + str(operation), None)
        if not callable(method):
            return envelope.error("unexpected", "the host double does not implement %s"
                                  % (operation,))
        params = self._with_defaults(operation, parameters)
        with self._mutex:
            call = _Call(operation, options, self._pop_injected(operation))
            try:
                call.stage(None)
                result = method(call, params)
            except _Failure as failure:
                call.roll_back()
                self._check_kind(operation, failure.kind)
                doc = envelope.error(failure.kind, failure.message, failure.data,
                                     failure.native_code, call.warnings)
                outcome = failure.kind
            else:
                doc = envelope.ok(result, call.warnings)
                outcome = "ok"
            self._calls.append(HostCall(operation, _masked(params), options, outcome))
        LOG.debug("host double %s answered %s: %s", self.host_name, operation, outcome)
        return doc

    @staticmethod
    def _check_kind(operation: str, kind: str) -> None:
        if operation in OPERATIONS and kind not in OPERATIONS[operation].error_kinds:
            raise AssertionError("the double answered %s with %r, which the catalog does not "
                                 "list for it" % (operation, kind))

    @staticmethod
    def _with_defaults(operation: str, parameters: TMapping[str, Any]) -> Dict[str, Any]:
        params = {k: v for k, v in dict(parameters).items() if v is not None}
        op = OPERATIONS.get(operation)
        if op is not None:
            for p in op.params:
                if p.name not in params and not p.required:
                    default = _default_value(p.default)
                    if default is not None:
                        params[p.name] = default
        return params

    def _pop_injected(self, operation: str) -> Optional[_Injected]:
        for i, inj in enumerate(self._injected):
            if inj.operation == operation:
                return self._injected.pop(i)
        return None

    # ------------------------------------------------------------------
    # Shared steps (what the templates' helper functions do)
    # ------------------------------------------------------------------
    @staticmethod
    def _fail(kind: str, message: str, data: Optional[Dict[str, Any]] = None,
              native_code: Optional[int] = None) -> _Failure:
        return _Failure(kind, message, data, native_code)

    def _check_locks(self, keys: Iterable[str], timeout: Any) -> None:
        """Enter-SmbvolLock for each key: host_busy when another client holds it."""
        for key in keys:
            if self._held.get(key.lower()):
                raise self._fail("host_busy", "another client holds the host lock for %s for "
                                 "more than %s s" % (key, timeout), {"lock": key})

    def _find_vm(self, name: Any) -> VM:
        """Get-SmbvolVM: the VM named exactly ``name`` (case-insensitive, no wildcards)."""
        if not name:
            raise self._fail("invalid_parameters", "VMName is empty", {"field": "VMName"})
        vm = self._vms.get(str(name).lower())
        if vm is None:
            raise self._fail("vm_not_found", "no VM named %s on host %s"
                             % (name, self.host_name), {"vm_name": name})
        return vm

    def _split_share_path(self, value: Any, field: str = "SharePath") -> _Location:
        """Split-SmbvolSharePath: ``\\\\host\\share[\\dir]`` ('/' read as '\\')."""
        text = str(value or "").replace("/", "\\")
        parts = _split_unc(text)
        if parts is None or any(c in _BAD_PATH_CHARS or ord(c) < 32 for c in text):
            raise self._fail("invalid_parameters", "%s %s is not a UNC path "
                             "\\\\host\\share[\\dir]" % (field, text), {"field": field})
        if any(segment in (".", "..") for segment in parts[:2] + parts[2]):
            raise self._fail("invalid_parameters", "%s %s contains a . or .. segment"
                             % (field, text), {"field": field})
        return _Location(server=parts[0], share_name=parts[1], subdir=parts[2],
                         local=self.is_local_host(parts[0]))

    def _check_disk_name(self, value: Any, field: str = "DiskName") -> str:
        """Assert-SmbvolDiskName: a plain file name."""
        if (not isinstance(value, str) or value in ("", ".", "..")
                or any(c in _BAD_NAME_CHARS or ord(c) < 32 for c in value)):
            raise self._fail("invalid_parameters", "%s %s is not a plain file name (no "
                             "directory, no \\ / : * ? \" < > |)" % (field, value),
                             {"field": field})
        return value

    def _check_iops(self, maximum: Any, minimum: Any, disk_name: str) -> Tuple[int, int]:
        """Assert-SmbvolIops."""
        maximum, minimum = int(maximum or 0), int(minimum or 0)
        if maximum < 0 or minimum < 0:
            raise self._fail("invalid_parameters", "QoS of %s: IOPS limits cannot be negative"
                             % disk_name, {"field": "MaximumIops", "disk": disk_name})
        if maximum and minimum > maximum:
            raise self._fail("invalid_parameters", "QoS of %s: minimum IOPS %d exceeds maximum "
                             "IOPS %d" % (disk_name, minimum, maximum),
                             {"field": "MinimumIops", "disk": disk_name})
        return maximum, minimum

    def _local_share(self, name: str) -> Optional[Share]:
        """Get-SmbShare on this host: the share named ``name``."""
        for share in self._shares.values():
            if share.local_path and share.name.lower() == name.lower():
                return share
        return None

    def _share_prefixes(self, loc: _Location) -> List[str]:
        """Folders a disk of the share may be attached by: its UNC root, its local folder."""
        prefixes = [loc.root]
        local = self._local_share(loc.share_name) if loc.local else None
        if local is not None:
            prefixes.append(local.local_path)
        return prefixes

    def _users_of(self, prefixes: Sequence[str], except_vm: Optional[str] = None) -> List[str]:
        """Names of the VMs with a hard disk under one of ``prefixes`` (Get-VM order)."""
        folders = tuple(p.rstrip("\\").lower() + "\\" for p in prefixes)
        return [vm.name for vm in sorted(self._vms.values(), key=lambda v: v.name.lower())
                if vm.id != except_vm and any(
                    d.path and d.path.replace("/", "\\").lower().startswith(folders)
                    for d in vm.disks)]

    def _first_mapping(self, root: str) -> Optional[Mapping]:
        """Get-SmbvolMapping: the global mapping of the root, else the user mapping."""
        found = [m for m in self._mappings if m.remote_path.lower() == root.lower()]
        found.sort(key=lambda m: MAPPING_KINDS.index(m.kind))
        return found[0] if found else None

    def _remove_mapping(self, mapping: Mapping) -> None:
        if mapping in self._mappings:
            self._mappings.remove(mapping)

    def _win32(self, kind: str, context: str, code: int, data: Dict[str, Any],
               root: str) -> _Failure:
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

    def _unreachable_code(self, loc: _Location, share: Optional[Share]) -> int:
        known_server = any(s.server.lower() == loc.server.lower() and s.reachable
                           for s in self._shares.values())
        return ERROR_BAD_NET_NAME if share is None and known_server else ERROR_BAD_NETPATH

    def _create_mapping(self, call: _Call, loc: _Location, share: Optional[Share],
                        credential: Credential) -> str:
        """New-SmbvolMapping: a global mapping, else a user one (warning); returns its kind."""
        context = "creating the SMB mapping of %s for %s" % (loc.root, credential.username)
        data = {"share": loc.root, "user": credential.username}
        kind = "global" if self.global_mapping_supported else "user"
        if kind == "user":
            call.warn("New-SmbGlobalMapping is not available on this host: created a user "
                      "mapping of %s in the logon session of this script; the Hyper-V VMMS "
                      "service may not see it, so the computer account of this host needs "
                      "access to the share" % loc.root)
        elif self.remote_session and not call.options.get("mapping_via_task"):
            raise self._win32("logon_session_missing", context, ERROR_NO_SUCH_LOGON_SESSION,
                              data, loc.root)
        if share is None or not share.reachable:
            raise self._win32("share_unreachable", context,
                              self._unreachable_code(loc, share), data, loc.root)
        for m in self._mappings:
            if (m.kind == kind and m.server.lower() == loc.server.lower()
                    and not _same_credential(m.credential, credential)):
                raise self._win32("mapping_conflict", context,
                                  ERROR_SESSION_CREDENTIAL_CONFLICT, data, loc.root)
        if not share.accepts(credential):
            raise self._win32("access_denied", context, ERROR_LOGON_FAILURE, data, loc.root)
        mapping = Mapping(loc.root, kind, "OK", credential, owned=True)
        self._mappings.append(mapping)
        call.undo(lambda: self._undo_mount(call, loc.root, mapping))
        return kind

    def _undo_mount(self, call: _Call, root: str, mapping: Mapping) -> None:
        """Undo-SmbvolMount: remove the mapping this call created unless a VM now uses it."""
        users = self._users_of([root])
        if users:
            call.warn("kept the mapping of %s: used by %s" % (root, ", ".join(users)))
            return
        self._remove_mapping(mapping)

    def _mount(self, call: _Call, loc: _Location, disk_name: str,
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
        created = changed = False
        existing = self._first_mapping(loc.root)
        if existing is not None and existing.status != "OK":
            call.warn("removed the %s %s mapping of %s to recreate it"
                      % (existing.status, existing.kind, loc.root))
            self._remove_mapping(existing)
            changed = True
            existing = None
        if existing is not None:
            kind = existing.kind
        elif credential is not None:
            call.stage("mapping")
            kind = self._create_mapping(call, loc, share, credential)
            created = changed = True
        if disk_name:
            call.stage("verify")
            context = "cannot read %s (share %s) to find the image %s" % (
                loc.unc_dir, loc.root, disk_name)
            data = {"share": loc.unc_dir, "disk": disk_name, "path": unc_disk}
            if share is None or not share.reachable:
                raise self._win32("share_unreachable", context,
                                  self._unreachable_code(loc, share), data, loc.root)
            if kind == "none" and not share.accepts(None):
                raise self._win32("access_denied", context, ERROR_ACCESS_DENIED, data, loc.root)
            if not share.has_file(relative):
                raise self._image_not_found(loc, loc.unc_dir, disk_name, unc_disk)
        return _Mount(loc.unc_dir, unc_disk, unc_disk, False, None, created, kind, changed)

    def _image_not_found(self, loc: _Location, folder: str, disk_name: str,
                         path: Optional[str]) -> _Failure:
        return self._fail("image_not_found", "image %s not found in %s (share %s)"
                          % (disk_name, folder, loc.unc_dir),
                          {"share": loc.unc_dir, "disk": disk_name, "path": path})

    def _free_slot(self, vm: VM, bus: str) -> Tuple[str, int, int, bool]:
        """Find-SmbvolFreeSlot: (type, controller, location, add a controller?)."""
        used = vm.used_slots()
        state = "Running" if vm.running else "Off"
        if bus == "ide":
            if vm.generation != 1:
                raise self._fail("invalid_state", "VM %s is Generation %d and has no IDE "
                                 "controller; attach on SCSI" % (vm.name, vm.generation),
                                 {"vm_name": vm.name, "generation": vm.generation})
            if vm.running:
                raise self._fail("invalid_state", "VM %s is %s: IDE disks can only be attached "
                                 "while it is off" % (vm.name, state),
                                 {"vm_name": vm.name, "state": state})
            for number in range(IDE_CONTROLLERS):
                for location in range(IDE_LOCATIONS):
                    if ("IDE", number, location) not in used:
                        return ("IDE", number, location, False)
            raise self._fail("no_free_slot", "both IDE controllers of VM %s are full" % vm.name,
                             {"vm_name": vm.name, "controller_type": "IDE"})
        for number in range(vm.scsi_controllers):
            for location in range(SCSI_LOCATIONS):
                if ("SCSI", number, location) not in used:
                    return ("SCSI", number, location, False)
        data = {"vm_name": vm.name, "controller_type": "SCSI",
                "controllers": vm.scsi_controllers}
        if vm.scsi_controllers >= MAX_SCSI_CONTROLLERS:
            raise self._fail("no_free_slot", "all %d SCSI controllers (%d locations each) of VM "
                             "%s are full" % (MAX_SCSI_CONTROLLERS, SCSI_LOCATIONS, vm.name),
                             data)
        if vm.running:
            raise self._fail("no_free_slot", "every SCSI controller of VM %s is full and no "
                             "controller can be added while it is %s" % (vm.name, state),
                             dict(data, state=state))
        return ("SCSI", vm.scsi_controllers, 0, True)

    def _set_disk(self, vm_key: str, old: Disk, new: Optional[Disk],
                  controllers_delta: int = 0) -> None:
        vm = self._vms[vm_key]
        disks = tuple(d for d in vm.disks if d.slot != old.slot)
        if new is not None:
            disks += (new,)
        self._vms[vm_key] = dataclasses.replace(
            vm, disks=disks, scsi_controllers=vm.scsi_controllers + controllers_delta)

    def _attach_one(self, call: _Call, vm_name: str, loc: _Location, disk_name: str,
                    credential: Optional[Credential], bus: str,
                    qos: Tuple[int, int]) -> Dict[str, Any]:
        """Mount-SmbvolShare then Add-SmbvolAttachment (the caller holds the locks)."""
        mount = self._mount(call, loc, disk_name, credential)
        key = vm_name.lower()
        vm = self._vms[key]
        wanted = {p.lower() for p in (mount.unc_disk_path, mount.disk_path) if p}

        def result(disk: Disk, changed: bool) -> Dict[str, Any]:
            return {
                "vm_name": vm.name, "vm_id": vm.id, "controller_type": disk.controller_type,
                "controller_number": disk.controller_number,
                "controller_location": disk.controller_location, "disk_path": disk.path,
                "changed": changed or mount.changed, "mapping_created": mount.mapping_created,
                "mapping_kind": mount.mapping_kind,
            }

        for disk in sorted(vm.disks, key=_controller_order):
            if not (disk.path and disk.path.replace("/", "\\").lower() in wanted):
                continue
            new_qos = (qos[0] or disk.maximum_iops, qos[1] or disk.minimum_iops)
            changed = new_qos != (disk.maximum_iops, disk.minimum_iops)
            if changed:
                call.stage("qos")
                new = dataclasses.replace(disk, maximum_iops=new_qos[0],
                                          minimum_iops=new_qos[1])
                self._set_disk(key, disk, new)
                call.undo(lambda old=disk, new=new: self._set_disk(key, new, old))
                disk = new
            return result(disk, changed)
        holders = [v.name for v in sorted(self._vms.values(), key=lambda v: v.name.lower())
                   if v.id != vm.id and any(d.path and d.path.lower() in wanted
                                            for d in v.disks)]
        if holders:
            raise self._fail("disk_in_use", "image %s is already attached to VM %s; detach it "
                             "there before attaching it to %s"
                             % (mount.disk_path, ", ".join(holders), vm.name),
                             {"vm_name": vm.name, "share": mount.share_path, "disk": disk_name,
                              "vms": holders})
        ctype, number, location, add_controller = self._free_slot(vm, bus)
        call.stage("attach")
        disk = Disk(ctype, number, location, mount.disk_path)
        delta = 1 if add_controller else 0
        self._set_disk(key, disk, disk, delta)
        call.undo(lambda added=disk: self._set_disk(key, added, None, -delta))
        if qos != (0, 0):
            call.stage("qos")
            new = dataclasses.replace(disk, maximum_iops=qos[0], minimum_iops=qos[1])
            self._set_disk(key, disk, new)
            call.undo(lambda old=disk, new=new: self._set_disk(key, new, old))
            disk = new
        return result(disk, True)

    # ------------------------------------------------------------------
    # Operations (one per template)
    # ------------------------------------------------------------------
    def op_mount_share(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Local folder for a share on this host; else reuse a healthy mapping, recreate a
        stale one, create one when credentials are given (global, else user + warning);
        verify the image when DiskName is given."""
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

    def op_unmount_share(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Remove the root's mapping smbvol created (any with Force) unless a VM disk lies
        under the share (disk_in_use); a foreign mapping is left with a warning."""
        loc = self._split_share_path(p.get("SharePath"))
        self._check_locks([loc.lock_key], p.get("LockTimeoutSeconds"))
        users = self._users_of(self._share_prefixes(loc))
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

    def op_attach_vhd(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Mount, then attach by path (idempotent) on the first free slot, apply QoS; a
        failure after the mount removes the mapping this call created."""
        bus = p.get("DiskBus", "scsi")
        if not isinstance(bus, str) or bus.lower() not in ("scsi", "ide"):
            raise self._fail("invalid_parameters", "DiskBus %s for VM %s must be scsi or ide"
                             % (bus, p.get("VMName")),
                             {"field": "DiskBus", "vm_name": p.get("VMName")})
        loc = self._split_share_path(p.get("SharePath"))
        disk_name = self._check_disk_name(p.get("DiskName"))
        qos = self._check_iops(p.get("MaximumIops"), p.get("MinimumIops"), disk_name)
        vm = self._find_vm(p.get("VMName"))
        self._check_locks(["vm:" + vm.id.lower(), loc.lock_key], p.get("LockTimeoutSeconds"))
        return self._attach_one(call, vm.name, loc, disk_name, p.get("ShareCredential"),
                                bus.lower(), qos)

    def op_attach_vhds(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """attach_vhd for every image on one VM; any failure undoes the whole call."""
        vm_name = p.get("VMName")
        share_paths = list(p.get("SharePaths") or ())
        names = list(p.get("DiskNames") or ())
        count = len(share_paths)
        if not count or len(names) != count:
            raise self._fail("invalid_parameters", "SharePaths and DiskNames for VM %s must be "
                             "non-empty and of the same length (%d and %d)"
                             % (vm_name, count, len(names)),
                             {"field": "DiskNames", "vm_name": vm_name})
        lists: Dict[str, List[Any]] = {}
        for field in ("ShareCredentials", "MaximumIops", "MinimumIops"):
            if p.get(field) is not None:
                lists[field] = list(p[field])
                if len(lists[field]) != count:
                    raise self._fail("invalid_parameters", "%s for VM %s must have one element "
                                     "per image (%d)" % (field, vm_name, count),
                                     {"field": field, "vm_name": vm_name})
        creds = lists.get("ShareCredentials") or [None] * count
        maxima = lists.get("MaximumIops") or [0] * count
        minima = lists.get("MinimumIops") or [0] * count
        items = []
        for i in range(count):
            loc = self._split_share_path(share_paths[i])
            name = self._check_disk_name(names[i], "DiskNames[%d]" % i)
            items.append((loc, name, creds[i], self._check_iops(maxima[i], minima[i], name)))
        vm = self._find_vm(vm_name)
        keys = ["vm:" + vm.id.lower()] + sorted({item[0].lock_key for item in items})
        self._check_locks(keys, p.get("LockTimeoutSeconds"))
        attachments = []
        for loc, name, cred, qos in items:
            att = self._attach_one(call, vm.name, loc, name, cred, "scsi", qos)
            att["share_path"] = loc.unc_dir
            att["disk_name"] = name
            attachments.append(att)
        return {"attachments": attachments, "changed": any(a["changed"] for a in attachments)}

    def op_detach_vhd(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Remove the VM's disks whose path is the image (UNC, or local for a share on this
        host), compared case-insensitively; none → changed=false.  The mapping stays."""
        loc = self._split_share_path(p.get("SharePath"))
        disk_name = self._check_disk_name(p.get("DiskName"))
        paths = [loc.unc_dir + "\\" + disk_name]
        local = self._local_share(loc.share_name) if loc.local else None
        if local is not None:
            paths.append("\\".join((local.local_path,) + loc.subdir + (disk_name,)))
        wanted = {x.lower() for x in paths}
        vm = self._find_vm(p.get("VMName"))
        self._check_locks(["vm:" + vm.id.lower()], p.get("LockTimeoutSeconds"))
        found = [d for d in sorted(vm.disks, key=_controller_order)
                 if d.path and d.path.replace("/", "\\").lower() in wanted]
        if not found:
            return {"vm_name": vm.name, "vm_id": vm.id, "disk_path": paths[0], "removed": False,
                    "controller_type": None, "controller_number": None,
                    "controller_location": None, "changed": False}
        state = "Running" if vm.running else "Off"
        for disk in found:
            if disk.controller_type == "IDE" and vm.running:
                raise self._fail("invalid_state", "disk %s is on IDE %d:%d of VM %s, which is %s: "
                                 "IDE disks can only be removed while the VM is off"
                                 % (disk.path, disk.controller_number, disk.controller_location,
                                    vm.name, state),
                                 {"vm_name": vm.name, "state": state, "disk_path": disk.path})
        for disk in found:
            call.stage("remove")
            self._set_disk(vm.name.lower(), disk, None)
        first = found[0]
        return {"vm_name": vm.name, "vm_id": vm.id, "disk_path": first.path, "removed": True,
                "controller_type": first.controller_type,
                "controller_number": first.controller_number,
                "controller_location": first.controller_location, "changed": True}

    def op_list_attachments(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Every hard disk of the VM (every VM when VMName is empty), in controller order;
        ``share`` is the UNC root of a UNC path (a loopback disk's local path has none).
        A passthrough disk's ``path`` is ``\\\\.\\PHYSICALDRIVE<n>``; its ``target_iqn``,
        ``target_lun`` and ``target_portal`` come from :meth:`_disk_targets` (none here: the
        iSCSI mixin knows which LUN backs which disk)."""
        name = p.get("VMName") or ""
        if name:
            vm = self._vms.get(name.lower())
            if vm is None:
                raise self._fail("vm_not_found", "no VM named %s on host %s"
                                 % (name, self.host_name), {"vm_name": name})
            vms = [vm]
        else:
            vms = sorted(self._vms.values(), key=lambda v: v.name.lower())
        out = []
        targets = self._disk_targets(call) if any(
            d.disk_number is not None for vm in vms for d in vm.disks) else {}
        for vm in vms:
            for disk in sorted(vm.disks, key=_controller_order):
                path = disk.path
                target: TMapping[str, Any] = {}
                if disk.disk_number is not None:
                    path = "\\\\.\\PHYSICALDRIVE%d" % disk.disk_number
                    target = targets.get(disk.disk_number) or {}
                root = _share_root_of(path)
                out.append({
                    "vm_name": vm.name, "vm_id": vm.id,
                    "controller_type": disk.controller_type,
                    "controller_number": disk.controller_number,
                    "controller_location": disk.controller_location,
                    "path": path, "disk_number": disk.disk_number,
                    "target_iqn": target.get("target_iqn"),
                    "target_lun": target.get("target_lun"),
                    "target_portal": target.get("target_portal"),
                    "on_share": root is not None, "share": root,
                    "maximum_iops": disk.maximum_iops, "minimum_iops": disk.minimum_iops,
                })
        return {"attachments": out}

    def _disk_targets(self, call: _Call) -> Dict[int, Dict[str, Any]]:
        """Disk number → ``{"target_iqn", "target_lun", "target_portal"}`` of the disks an
        iSCSI session reaches (Get-SmbvolIscsiDiskTargets); a host without iSCSI has none."""
        return {}

    def op_host_info(self, call: _Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Names, addresses, versions and capabilities, as host_info.ps1 reports them."""
        return {
            "host_name": self.host_name, "fqdn": self.fqdn, "domain": self.domain,
            "ipv4": [a for a in self.addresses if ":" not in a],
            "ipv6": [a for a in self.addresses if ":" in a],
            "os_version": "10.0.17763", "os_build": "17763",
            "os_caption": "Microsoft Windows Server 2019 Datacenter",
            "ps_version": "5.1.17763.1", "hyperv_module": True,
            "smb_global_mapping": self.global_mapping_supported,
            "iscsi_initiator_iqns": ["iqn.1991-05.com.microsoft:" + self.fqdn.lower()],
            "multipath": False,
        }

    # ------------------------------------------------------------------
    # State as JSON-able data (the contract vectors' "state")
    # ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The whole state; credentials as ``{"username", "password_ref"}``, never a password."""
        with self._mutex:
            state: Dict[str, Any] = {}
            self._dump_state(state)
            return state

    @classmethod
    def from_dict(cls, state: TMapping[str, Any], *,
                  secrets: Optional[TMapping[str, Any]] = None) -> "HostDouble":
        """A double in ``state`` (the :meth:`to_dict` schema; every key optional).

        ``secrets`` maps the ``password_ref`` names to passwords; :data:`DEFAULT_SECRETS`
        are known without it.
        """
        unknown = sorted(set(state) - set(cls.STATE_KEYS))
        if unknown:
            raise ValueError("unknown state key(s) %s; known: %s"
                             % (", ".join(unknown), ", ".join(cls.STATE_KEYS)))
        host = dict(state.get("host") or {})
        known_host = {"name", "addresses", "domain", "global_mapping_supported",
                      "remote_session"}
        if set(host) - known_host:
            raise ValueError("unknown host key(s) %s" % ", ".join(sorted(set(host) - known_host)))
        double = cls(host.get("name", "hv01"),
                     addresses=tuple(host.get("addresses", ("10.0.0.11",))),
                     domain=host.get("domain", "example.test"),
                     global_mapping_supported=host.get("global_mapping_supported", True),
                     remote_session=host.get("remote_session", False), secrets=secrets)
        with double._mutex:
            double._load_state(state)
        return double

    def _credential_to_dict(self, cred: Optional[Credential]) -> Optional[Dict[str, str]]:
        if cred is None:
            return None
        for ref, secret in sorted(self._secrets.items()):
            if secret == cred.password:
                return {"username": cred.username, "password_ref": ref}
        ref = "secret-%d" % (len(self._secrets) + 1)
        self._secrets[ref] = cred.password
        return {"username": cred.username, "password_ref": ref}

    def _credential_from_dict(self, data: Any) -> Optional[Credential]:
        if data is None:
            return None
        if not isinstance(data, dict) or set(data) != {"username", "password_ref"}:
            raise ValueError("a credential is {\"username\": ..., \"password_ref\": ...}, "
                             "not %r" % (sorted(data) if isinstance(data, dict) else data,))
        ref = data["password_ref"]
        if ref not in self._secrets:
            raise ValueError("unknown password_ref %r; pass secrets={%r: ...}" % (ref, ref))
        return Credential(data["username"], self._secrets[ref])

    def _dump_state(self, state: Dict[str, Any]) -> None:
        """Fill ``state`` with this part's keys (mixins extend, calling super())."""
        state["host"] = {
            "name": self.host_name, "domain": self.domain, "addresses": list(self.addresses),
            "global_mapping_supported": self.global_mapping_supported,
            "remote_session": self.remote_session,
        }
        state["vms"] = {
            vm.name: {
                "id": vm.id, "generation": vm.generation, "running": vm.running,
                "scsi_controllers": vm.scsi_controllers,
                "dvd_drives": [{"controller_type": t, "controller_number": n,
                                "controller_location": loc} for t, n, loc in vm.dvd_drives],
                "disks": [dataclasses.asdict(d) for d in sorted(vm.disks,
                                                                key=_controller_order)],
            } for vm in sorted(self._vms.values(), key=lambda v: v.name.lower())}
        state["shares"] = {
            s.root: {"files": sorted(s.files, key=str.lower),
                     "credential": self._credential_to_dict(s.credential),
                     "local_path": s.local_path, "reachable": s.reachable}
            for s in sorted(self._shares.values(), key=lambda s: s.root.lower())}
        state["mappings"] = [
            {"remote_path": m.remote_path, "kind": m.kind, "status": m.status,
             "credential": self._credential_to_dict(m.credential), "owned": m.owned}
            for m in sorted(self._mappings, key=lambda m: (m.remote_path.lower(), m.kind))]
        state["locks_held"] = sorted(k for k, n in self._held.items() if n)
        state["fail_next"] = [
            {k: v for k, v in dataclasses.asdict(inj).items() if v not in (None, 0)}
            for inj in self._injected]

    def _load_state(self, state: TMapping[str, Any]) -> None:
        """Build this part from ``state`` (mixins extend, calling super())."""
        vm_keys = {"id", "generation", "running", "scsi_controllers", "dvd_drives", "disks",
                   "fill_scsi"}
        for name, spec in (state.get("vms") or {}).items():
            extra = set(spec) - vm_keys
            if extra:
                raise ValueError("VM %s: unknown key(s) %s" % (name, ", ".join(sorted(extra))))
            dvd = spec.get("dvd_drives")
            self.add_vm(name, generation=spec.get("generation", 2),
                        running=spec.get("running", False), vm_id=spec.get("id"),
                        scsi_controllers=spec.get("scsi_controllers", 1),
                        dvd_drives=None if dvd is None else [
                            (d["controller_type"], d["controller_number"],
                             d["controller_location"]) for d in dvd])
            for d in spec.get("disks") or ():
                self.attach_disk(name, d.get("path"), d.get("controller_type", "SCSI"),
                                 d.get("controller_number", 0), d.get("controller_location", 0),
                                 maximum_iops=d.get("maximum_iops", 0),
                                 minimum_iops=d.get("minimum_iops", 0),
                                 disk_number=d.get("disk_number"))
            fill = spec.get("fill_scsi")
            if fill:
                fill = fill if isinstance(fill, dict) else {}
                self.fill_scsi(name, except_slots=fill.get("except") or (),
                               controllers=fill.get("controllers"))
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
        for key in state.get("locks_held") or ():
            self._held[key.lower()] = self._held.get(key.lower(), 0) + 1
        for f in state.get("fail_next") or ():
            self.fail_next(f["operation"], f["kind"], f.get("message"), stage=f.get("stage"),
                           native_code=f.get("native_code"), skip=f.get("skip", 0),
                           data=f.get("data"))
