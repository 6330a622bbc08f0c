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
    host.add_share("//fs01/vols", files=["volume-1.vhdx"])
    result = host.executor().run(scripts.render("attach_vhd"), {...})

(:mod:`smbvol.testing` has a complete example that runs as it is.)

What happens on the (simulated) host, per operation, is written in each ``op_*`` method and
in ``tests/contract/README.md``; the contract vectors in ``tests/contract/`` pin it down and
are replayed against Windows by the live suite.

The double is composed of parts, one module each: :mod:`~smbvol.testing.state` (the host's
objects), :mod:`~smbvol.testing.calls` (one call: injected failure, warnings, undo),
:mod:`~smbvol.testing.hyperv` (VMs, controllers, slots, disks, ``list_attachments``),
:mod:`~smbvol.testing.smb` (shares, mappings, this host's names, ``mount_share`` /
``unmount_share``) and :mod:`~smbvol.testing.vhd` (``attach_vhd``, ``attach_vhds``,
``detach_vhd``); this module puts them together and answers scripts.  The iSCSI part
(:mod:`smbvol.testing.iscsi`) is mixed in on top by :mod:`smbvol.testing`.

Extending it: an operation ``x`` is the method ``op_x(call, params)``; a mixin adding
operations (iSCSI) defines its ``op_*`` methods, adds its failure stages to :attr:`STAGES`,
its top-level state keys to :attr:`STATE_KEYS`, and overrides :meth:`_load_state` /
:meth:`_dump_state` (calling ``super()``) for its part of :meth:`to_dict` / :meth:`from_dict`.
The host mutex (:attr:`_mutex`), :meth:`_check_locks`, :meth:`_fail` and the per-call undo
list (``call.undo``) are shared.

Thread safety: by default every operation runs under one lock standing for the templates'
named host mutexes, so concurrent callers (64 threads attaching to one VM) get distinct slots
whatever the client does.  ``HostDouble(..., serialize=False)`` models a host *without* that
mutex: the host lock then only keeps each step atomic and is let go between choosing the free
slot (Find-SmbvolFreeSlot) and adding the disk there (Add-VMHardDiskDrive), where
``race_window()`` runs (default: ``time.sleep(0)``, letting other threads run) — so two
unsynchronised attaches to one VM can take the same slot, and only the client's own locks
(:mod:`smbvol.locks`) keep the slots apart.  :meth:`hold_lock`
simulates another client holding one of the template's named mutexes: an operation that
needs it fails at once with ``host_busy`` (the real template waits ``LockTimeoutSeconds``
first; the double never sleeps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from typing import Mapping as TMapping

from smbvol import envelope
from smbvol.executors.fake import FakeExecutor
from smbvol.scripts import OPERATIONS
from smbvol.secret import Credential, Secret
from smbvol.testing.calls import Call, Failure, HostCall, Injected
from smbvol.testing.hyperv import HyperVMixin
from smbvol.testing.smb import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NET_NAME,
    ERROR_BAD_NETPATH,
    ERROR_LOGON_FAILURE,
    ERROR_NO_SUCH_LOGON_SESSION,
    ERROR_SESSION_CREDENTIAL_CONFLICT,
    WIN32_MESSAGES,
    SmbMixin,
    ipv6_literal,
)
from smbvol.testing.state import (
    DEFAULT_SECRETS,
    IDE_CONTROLLERS,
    IDE_LOCATIONS,
    MAPPING_KINDS,
    MAPPING_STATUSES,
    MAX_SCSI_CONTROLLERS,
    SCSI_LOCATIONS,
    VM,
    Disk,
    Mapping,
    Share,
)
from smbvol.testing.vhd import VhdMixin

#: Importable from here: the double and the host's objects, limits and error codes.
__all__ = [
    "DEFAULT_SECRETS", "ERROR_ACCESS_DENIED", "ERROR_BAD_NETPATH", "ERROR_BAD_NET_NAME",
    "ERROR_LOGON_FAILURE", "ERROR_NO_SUCH_LOGON_SESSION", "ERROR_SESSION_CREDENTIAL_CONFLICT",
    "IDE_CONTROLLERS", "IDE_LOCATIONS", "MAPPING_KINDS", "MAPPING_STATUSES",
    "MAX_SCSI_CONTROLLERS", "SCSI_LOCATIONS", "VM", "WIN32_MESSAGES", "Disk", "HostCall",
    "HostDouble", "Mapping", "Share", "ipv6_literal",
]

LOG = logging.getLogger(__name__)


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
    """The parameters as :class:`HostCall` records them: credentials and secrets masked."""
    def one(v: Any) -> Any:
        if isinstance(v, Credential):
            return {"username": v.username, "password": "***"}
        if isinstance(v, Secret):
            return "***"
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in parameters.items()}


class _UnserializedCall(Call):
    """A call on a host without the named mutex: the host lock is let go at :attr:`WINDOW`."""

    #: The stage right after the free slot was chosen and before the disk is added there
    #: (attach_vhd, attach_vhds, attach_iscsi).
    WINDOW = "attach"

    def __init__(self, operation: str, options: TMapping[str, Any],
                 injected: Optional[Injected], mutex: Any,
                 race_window: Callable[[], None]) -> None:
        super().__init__(operation, options, injected)
        self._mutex = mutex
        self._race_window = race_window

    def stage(self, name: Optional[str]) -> None:
        if name == self.WINDOW:
            self._mutex.release()
            try:
                self._race_window()
            finally:
                self._mutex.acquire()
        super().stage(name)


class HostDouble(VhdMixin, SmbMixin, HyperVMixin):
    """An in-memory Hyper-V host (SMB part); :meth:`handler` answers scripts like the
    templates.  Use :class:`smbvol.testing.HostDouble`, which adds the iSCSI part."""

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
                 secrets: Optional[TMapping[str, Any]] = None, serialize: bool = True,
                 race_window: Optional[Callable[[], None]] = None) -> None:
        """``serialize=False``: no host mutex around a whole operation; ``race_window`` (no
        arguments) runs between slot choice and disk add (see the module docstring)."""
        if race_window is not None and serialize:
            raise ValueError("race_window only applies with serialize=False")
        self.host_name = host_name
        self.addresses = tuple(addresses)
        self.domain = domain
        self.global_mapping_supported = bool(global_mapping_supported)
        self.remote_session = bool(remote_session)
        self._mutex = threading.RLock()
        self.serialize = bool(serialize)
        self._race_window: Callable[[], None] = race_window or (lambda: time.sleep(0))
        self._vms: Dict[str, VM] = {}
        self._shares: Dict[str, Share] = {}
        self._mappings: List[Mapping] = []
        self._held: Dict[str, int] = {}
        self._injected: List[Injected] = []
        self._calls: List[HostCall] = []
        self._secrets: Dict[str, Secret] = {k: Secret(v) for k, v in DEFAULT_SECRETS.items()}
        for ref, value in (secrets or {}).items():
            self._secrets[ref] = Secret(value)

    def add_share(self, unc_root: str, *, files: Iterable[str] = (),
                  credential: Optional[Credential] = None, local_path: Optional[str] = None,
                  reachable: bool = True) -> Share:
        """Add the share ``//server/share`` (or ``\\\\server\\share``) holding ``files``.

        ``credential`` set: the share is reached only with that user and password;
        ``local_path`` set: the share is on this host; ``reachable=False``: the server
        does not answer.
        """
        if unc_root.startswith("//"):
            unc_root = unc_root.replace("/", "\\")
        return super().add_share(unc_root, files=files, credential=credential,
                                 local_path=local_path, reachable=reachable)

    def __repr__(self) -> str:
        return "<HostDouble %s: %d VMs, %d shares, %d mappings>" % (
            self.host_name, len(self._vms), len(self._shares), len(self._mappings))

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    @property
    def fqdn(self) -> str:
        return "%s.%s" % (self.host_name, self.domain) if self.domain else self.host_name

    def _address_fields(self) -> Dict[str, List[str]]:
        """``ipv4`` and ``ipv6``: the host's addresses as the templates report them."""
        return {"ipv4": [a for a in self.addresses if ":" not in a],
                "ipv6": [a for a in self.addresses if ":" in a]}

    def op_host_info(self, call: Call, p: Dict[str, Any]) -> Dict[str, Any]:
        """Names, addresses, versions and capabilities, as host_info.ps1 reports them."""
        return {
            "host_name": self.host_name, "fqdn": self.fqdn, "domain": self.domain,
            **self._address_fields(),
            "os_version": "10.0.17763", "os_build": "17763",
            "os_caption": "Microsoft Windows Server 2019 Datacenter",
            "ps_version": "5.1.17763.1", "hyperv_module": True,
            "smb_global_mapping": self.global_mapping_supported,
            "iscsi_initiator_iqns": ["iqn.1991-05.com.microsoft:" + self.fqdn.lower()],
            "multipath": False,
        }

    # ------------------------------------------------------------------
    # Failures, locks, calls (tests)
    # ------------------------------------------------------------------
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
            self._injected.append(Injected(operation, kind, message, stage, native_code,
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

    @property
    def calls(self) -> Tuple[HostCall, ...]:
        with self._mutex:
            return tuple(self._calls)

    @property
    def secrets(self) -> TMapping[str, Secret]:
        """``password_ref`` → Secret, as used by :meth:`to_dict` / :meth:`from_dict`."""
        with self._mutex:
            return MappingProxyType(dict(self._secrets))

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
            injected = self._pop_injected(operation)
            if self.serialize:
                call = Call(operation, options, injected)
            else:
                call = _UnserializedCall(operation, options, injected, self._mutex,
                                         self._race_window)
            try:
                call.stage(None)
                result = method(call, params)
            except Failure as failure:
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

    def _pop_injected(self, operation: str) -> Optional[Injected]:
        for i, inj in enumerate(self._injected):
            if inj.operation == operation:
                return self._injected.pop(i)
        return None

    # ------------------------------------------------------------------
    # Shared steps
    # ------------------------------------------------------------------
    @staticmethod
    def _fail(kind: str, message: str, data: Optional[Dict[str, Any]] = None,
              native_code: Optional[int] = None) -> Failure:
        return Failure(kind, message, data, native_code)

    def _check_locks(self, keys: Iterable[str], timeout: Any) -> None:
        """Enter-SmbvolLock for each key: invalid_parameters for a negative wait, host_busy
        when another client holds the lock."""
        if isinstance(timeout, int) and timeout < 0:
            raise self._fail("invalid_parameters", "LockTimeoutSeconds %d is negative: give the "
                             "seconds to wait for the host lock (0 or more)" % timeout,
                             {"field": "LockTimeoutSeconds"})
        for key in keys:
            if self._held.get(key.lower()):
                raise self._fail("host_busy", "another client holds the host lock for %s for "
                                 "more than %s s" % (key, timeout), {"lock": key})

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
        self._dump_vms(state)
        self._dump_smb(state)
        state["locks_held"] = sorted(k for k, n in self._held.items() if n)
        state["fail_next"] = [
            {k: v for k, v in dataclasses.asdict(inj).items() if v not in (None, 0)}
            for inj in self._injected]

    def _load_state(self, state: TMapping[str, Any]) -> None:
        """Build this part from ``state`` (mixins extend, calling super())."""
        self._load_vms(state)
        self._load_smb(state)
        for key in state.get("locks_held") or ():
            self._held[key.lower()] = self._held.get(key.lower(), 0) + 1
        for f in state.get("fail_next") or ():
            self.fail_next(f["operation"], f["kind"], f.get("message"), stage=f.get("stage"),
                           native_code=f.get("native_code"), skip=f.get("skip", 0),
                           data=f.get("data"))
