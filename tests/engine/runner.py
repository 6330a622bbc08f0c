"""Contract vectors through the real PowerShell engine and the fake host.

Path of one vector: the template rendered with the vector's options → the real bootstrap
(:data:`smbvol.executors.base.BOOTSTRAP`) and stdin payload (:func:`encode_payload`, secrets
included) → pwsh, in a fresh runspace of one long-lived engine process
(``tests/engine/harness.ps1``) whose fake host starts in the vector's state → the printed
envelope → :meth:`Executor.run` (the parser, the exception mapping) → compared by
:mod:`tests.contract_runner`, and the fake host's state afterwards with ``expect_state``.

The fake host gets the state as the host double normalises it
(``HostDouble.from_dict(state).to_dict()``) plus what Windows keeps outside the double's
schema: the registry (smbvol's records of the mappings it created), the services, name
resolution, the injected faults (``fail_next`` as a failing cmdlet), and credentials as a
SHA-256 of the password (the fake compares, it never holds a password).  Locks another client
holds (``locks_held``) are real named mutexes held by another thread of the engine.

Run ``python -m tests.engine.runner [--op OP] [--id TEXT] [-v]`` to see every vector's outcome.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))

from smbvol import exceptions  # noqa: E402
from smbvol.executors.base import BOOTSTRAP, Executor, RawOutput, encode_payload  # noqa: E402
from smbvol.scripts import Script  # noqa: E402
from tests import contract_runner as cr  # noqa: E402
from tests.engine import fakehost  # noqa: E402
from tests.engine.locate import find_pwsh  # noqa: E402

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness.ps1")
RECORD_KEY = "HKLM:\\SOFTWARE\\smbvol\\Mappings"
MPIO_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\msdsm"
#: Where a share server that is not this host resolves (TEST-NET-2: never this host).
REMOTE_ADDRESS = "198.51.100.20"

#: ``fail_next`` stage → the cmdlet (or CIM method) that fails, per operation.
FAULT_CMDLETS: Mapping[Tuple[str, Optional[str]], List[str]] = {
    ("attach_vhd", "attach"): ["Add-VMHardDiskDrive"],
    ("attach_vhd", "qos"): ["Set-VMHardDiskDrive"],
    ("attach_vhds", "attach"): ["Add-VMHardDiskDrive"],
    ("attach_vhds", "verify"): ["Test-Path"],
    ("mount_share", "verify"): ["Test-Path"],
    ("detach_vhd", "remove"): ["Remove-VMHardDiskDrive"],
    ("unmount_share", "remove"): ["Remove-SmbGlobalMapping", "Remove-SmbMapping"],
    ("iscsi_attach", "attach"): ["Add-VMHardDiskDrive"],
    ("iscsi_connect", "login"): ["MSFT_iSCSITarget.Connect"],
    ("iscsi_detach", "remove"): ["Remove-VMHardDiskDrive"],
    ("iscsi_detach", "disk_lookup"): ["Get-Disk"],
    ("iscsi_disconnect", "logout"): ["Disconnect-IscsiTarget"],
    ("iscsi_disconnect", "disk_lookup"): ["Get-Disk"],
    ("list_attachments", "iscsi_lookup"): ["Get-IscsiSession"],
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def mutex_name(key: str) -> str:
    """Get-SmbvolMutexName of _envelope.ps1.j2 (the name another client holds)."""
    digest = hashlib.sha256(key.lower().encode("utf-8")).hexdigest().upper()
    return "Global\\smbvol-" + digest[:32]


# --------------------------------------------------------------------------
# State: double schema ↔ fake host
# --------------------------------------------------------------------------

def _hash_credentials(value: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"username", "password_ref"}:
            return {"username": value["username"],
                    "password_sha256": sha256(secrets[value["password_ref"]])}
        return {k: _hash_credentials(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_credentials(v, secrets) for v in value]
    return value


def _unhash_credentials(value: Any, by_hash: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"username", "password_sha256"}:
            return {"username": value["username"],
                    "password_ref": by_hash.get(value["password_sha256"], "?unknown")}
        return {k: _unhash_credentials(v, by_hash) for k, v in value.items()}
    if isinstance(value, list):
        return [_unhash_credentials(v, by_hash) for v in value]
    return value


def _fault(operation: str, spec: Mapping[str, Any]) -> Dict[str, Any]:
    stage = spec.get("stage")
    cmdlets = FAULT_CMDLETS.get((operation, stage), ["*"]) if stage else ["*"]
    kind = spec.get("kind", "unexpected")
    message = spec.get("message") or "the operation failed (injected)"
    error: Dict[str, Any] = {"exception": "message", "message": message, "category": "NotSpecified"}
    native = spec.get("native_code")
    if kind == "access_denied":
        error = {"exception": "win32", "native_code": native or 5, "message": message,
                 "category": "PermissionDenied"}
    elif kind == "invalid_state":
        error = {"exception": "hyperv", "message": message, "category": "InvalidOperation",
                 "error_id": "InvalidState,Microsoft.HyperV.PowerShell.Commands.AddVMHardDiskDrive"}
    elif native is not None:
        error = {"exception": "win32", "native_code": native, "message": message,
                 "category": "NotSpecified"}
    return {"cmdlet": cmdlets, "skip": int(spec.get("skip") or 0), "error": error}


def to_fake(state: Mapping[str, Any], operation: str,
            secrets: Mapping[str, str]) -> Dict[str, Any]:
    """The fake host's state for a (normalised) double state."""
    fake = _hash_credentials(copy.deepcopy(dict(state)), secrets)
    records = {m["remote_path"].lower(): m["kind"] for m in fake.get("mappings", [])
               if m.get("owned")}
    registry: Dict[str, Dict[str, str]] = {}
    if records:
        registry[RECORD_KEY] = records
    iscsi = fake.get("iscsi") or {}
    if iscsi.get("mpio"):
        registry[MPIO_KEY] = {}
    fake["registry"] = registry
    fake["services"] = {"MSiSCSI": {"status": "Running" if iscsi.get("service_running", True)
                                    else "Stopped", "start_type": "Automatic"}}
    dns: Dict[str, List[str]] = {}
    for root in list(fake.get("shares", {})) + [m["remote_path"] for m in fake.get("mappings", [])]:
        server = root[2:].split("\\")[0].lower()
        if not server.endswith(".invalid"):
            dns.setdefault(server, [REMOTE_ADDRESS])
    fake["dns"] = dns
    fake["faults"] = [_fault(operation, f) for f in fake.pop("fail_next", [])
                      if f.get("operation") in (None, operation)]
    fake.pop("locks_held", None)
    return fake


def from_fake(fake: Mapping[str, Any], secrets: Mapping[str, str],
              locks: List[str]) -> Dict[str, Any]:
    """The double schema of the fake host's state after a run."""
    by_hash = {sha256(v): k for k, v in secrets.items()}
    out = _unhash_credentials(copy.deepcopy(dict(fake)), by_hash)
    records = {k.lower(): v for k, v in ((out.get("registry") or {}).get(RECORD_KEY) or {}).items()}
    for m in out.get("mappings", []):
        m["owned"] = m["remote_path"].lower() in records
    for key in ("registry", "services", "dns", "faults", "acls", "scheduled_tasks",
                "left_behind"):
        out.pop(key, None)
    out["locks_held"] = list(locks)
    out["fail_next"] = []
    return out


#: What a run may leave on the fake host's drive: the scheduled-task mapping's private
#: directories (%ProgramData%\smbvol and its tasks folder), which stay by design.
KEPT_ON_DRIVE = ("C:\\ProgramData\\smbvol", "C:\\ProgramData\\smbvol\\tasks")


def left_behind(fake: Mapping[str, Any], drive: str) -> List[str]:
    """What a run left on the fake host that nothing should outlive it by: a scheduled task
    still registered, any file or folder on its drive (``drive``, removed here) but the private
    directories, which must be empty."""
    found = ["the scheduled task %s is still registered" % name
             for name in sorted(fake.get("scheduled_tasks") or {})]
    if os.path.isdir(drive):
        for entry in sorted(os.listdir(drive)):
            if entry not in KEPT_ON_DRIVE or not os.path.isdir(os.path.join(drive, entry)):
                found.append("%s was left on the host's drive" % entry)
        shutil.rmtree(drive, ignore_errors=True)
    return found


# --------------------------------------------------------------------------
# The engine process
# --------------------------------------------------------------------------

class EngineError(RuntimeError):
    """The engine process failed (not a script outcome)."""


class EngineSession:
    """One pwsh running tests/engine/harness.ps1; runs jobs one after the other."""

    def __init__(self, pwsh: Optional[str] = None, job_timeout: float = 60.0,
                 plain: bool = False) -> None:
        """``plain``: a process for :meth:`run_plain` only, whose module path is pwsh's own
        (none of the fake host's modules can be found, as on a host without them)."""
        self.plain = plain
        if pwsh is None:
            pwsh, why = find_pwsh()
            if pwsh is None:
                raise EngineError(why)
        self.pwsh = pwsh
        self.job_timeout = job_timeout
        self.modules = fakehost.module_dir(pwsh)
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self._counter = 0
        self.tmp = tempfile.mkdtemp(prefix="smbvol-engine-run-")
        self.host_id = fakehost.new_host_id()

    def _start(self) -> subprocess.Popen:
        env = fakehost.engine_env(None, self.pwsh, host_id=self.host_id)
        if self.plain:
            env["PSModulePath"] = os.environ.get("PSModulePath", "")
            if not env["PSModulePath"]:
                env.pop("PSModulePath")
        self._proc = subprocess.Popen(
            [self.pwsh, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", HARNESS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.write(b"\n")
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> "EngineSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run_plain(self, text: str, payload: str = "") -> RawOutput:
        """``text`` run alone in a fresh runspace *without* the fake host (for tests that bring
        their own fake modules, or scripts that stop before any host cmdlet), ``payload``'s
        lines as its input: its pipeline output and its errors."""
        with self._lock:
            self._counter += 1
            job = {"id": self._counter, "bootstrap": text, "payload": payload, "state_path": "",
                   "computer_name": "hv01", "locks": [], "coverage": None, "plain": True}
            answer = self._answer(job)
        return RawOutput(stdout=answer["stdout"], stderr=answer["stderr"], exit_code=0)

    def _answer(self, job: Mapping[str, Any]) -> Dict[str, Any]:
        """The harness's answer to ``job`` (the process started again if it is gone)."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None \
            else self._start()
        line = self._exchange(proc, json.dumps(job) + "\n")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise EngineError("the engine answered %r" % line[:500]) from exc

    def run(self, payload: str, state: Mapping[str, Any], computer_name: str,
            locks: List[str] = (), coverage_lines: Optional[List[int]] = None
            ) -> Tuple[RawOutput, Dict[str, Any], Optional[List[int]], float]:
        """``(output, state after, lines hit, seconds)`` of one script run."""
        with self._lock:
            self._counter += 1
            state_path = os.path.join(self.tmp, "state-%d.json" % self._counter)
            with open(state_path, "w", encoding="utf-8") as f:
                json.dump(state, f)
            job: Dict[str, Any] = {"id": self._counter, "bootstrap": BOOTSTRAP,
                                   "payload": payload, "state_path": state_path,
                                   "computer_name": computer_name,
                                   "locks": [fakehost.host_mutex(n, self.host_id) for n in locks],
                                   "coverage": None}
            if coverage_lines is not None:
                job["coverage"] = {"path": os.path.join(self.tmp, "script-%d.ps1" % self._counter),
                                   "lines": coverage_lines}
            answer = self._answer(job)
            with open(state_path, encoding="utf-8-sig") as f:
                after = json.load(f)
            os.unlink(state_path)
            after["left_behind"] = left_behind(after, state_path + ".fs")
        return (RawOutput(stdout=answer["stdout"], stderr=answer["stderr"], exit_code=0),
                after, answer.get("hits"), float(answer.get("seconds") or 0))

    def _exchange(self, proc: subprocess.Popen, text: str) -> str:
        result: Dict[str, Any] = {}

        def read() -> None:
            result["line"] = proc.stdout.readline()

        reader = threading.Thread(target=read, daemon=True)
        try:
            proc.stdin.write(text.encode("utf-8"))
            proc.stdin.flush()
        except OSError as exc:
            raise EngineError("the engine process is gone: %s" % exc) from exc
        reader.start()
        reader.join(self.job_timeout)
        if reader.is_alive() or not result.get("line"):
            err = b""
            proc.kill()
            try:
                _, err = proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                pass
            self._proc = None
            raise EngineError("no answer from the engine within %s s: %s"
                              % (self.job_timeout, err.decode("utf-8", "replace")[-2000:]))
        return result["line"].decode("utf-8")


class EngineExecutor(Executor):
    """An executor whose host is the fake host in the engine: the real bootstrap and payload."""

    kind = "engine"

    def __init__(self, session: EngineSession, state: Mapping[str, Any],
                 computer_name: str = "hv01", locks: List[str] = (),
                 coverage_lines: Optional[List[int]] = None) -> None:
        super().__init__(host="engine", default_timeout=60.0)
        self.session = session
        self.state = dict(state)
        self.computer_name = computer_name
        self.locks = list(locks)
        self.coverage_lines = coverage_lines
        self.hits: Optional[List[int]] = None
        self.seconds = 0.0
        self.last: Optional[RawOutput] = None

    def handle(self, script: Script, parameters: Mapping[str, Any], timeout: float) -> RawOutput:
        payload = encode_payload(script.text, parameters)
        out, self.state, self.hits, self.seconds = self.session.run(
            payload, self.state, self.computer_name, self.locks, self.coverage_lines)
        self.last = out
        return out


class PlainEngineExecutor(Executor):
    """An executor whose host is a fresh runspace of a plain engine process (no fake host):
    the real bootstrap and payload, for scripts that answer before they need a host."""

    kind = "engine"

    def __init__(self, session: EngineSession) -> None:
        super().__init__(host="engine", default_timeout=60.0)
        self.session = session

    def handle(self, script: Script, parameters: Mapping[str, Any], timeout: float) -> RawOutput:
        return self.session.run_plain(BOOTSTRAP, encode_payload(script.text, parameters))


# --------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------

def engine_vectors() -> List[Dict[str, Any]]:
    return cr.load_vectors()


def prepare(vector: Mapping[str, Any], secrets: Mapping[str, str] = cr.DOUBLE_SECRETS
            ) -> Tuple[Dict[str, Any], Dict[str, Any], List[str]]:
    """``(substituted vector, fake state, mutex names held by another client)``."""
    filled = cr.substitute(vector, cr.DOUBLE_NAMES)
    double = cr.double_for(filled, secrets)
    state = double.to_dict()
    locks = [mutex_name(k) for k in state.get("locks_held", [])]
    op = filled["operation"]
    if locks and any(p.name == "LockTimeoutSeconds" for p in cr.scripts.OPERATIONS[op].params):
        # The wait for a held lock is real on the engine: one second shows it as well as the
        # default minute does.
        filled.setdefault("parameters", {}).setdefault("LockTimeoutSeconds", 1)
    if filled["expect"].get("error") == "lun_not_found" and any(
            p.name == "DiskWaitSeconds" for p in cr.scripts.OPERATIONS[op].params):
        # Likewise the wait for a LUN that never appears.
        filled.setdefault("parameters", {}).setdefault("DiskWaitSeconds", 1)
    return filled, to_fake(state, filled["operation"], secrets), locks


def run(session: EngineSession, vector: Mapping[str, Any],
        secrets: Mapping[str, str] = cr.DOUBLE_SECRETS,
        coverage_lines: Optional[List[int]] = None) -> Dict[str, Any]:
    """Run one vector on the engine: outcome, problems, state after, output."""
    filled, fake, locks = prepare(vector, secrets)
    name = (filled.get("state") or {}).get("host", {}).get("name") or "hv01"
    executor = EngineExecutor(session, fake, computer_name=name, locks=locks,
                              coverage_lines=coverage_lines)
    script = cr.script_for(filled)
    try:
        outcome = cr.run_vector(executor, filled, secrets, script=script)
    except exceptions.SmbvolError as exc:
        outcome = exc
    problems = cr.compare(outcome, filled)
    problems += list(executor.state.get("left_behind") or [])
    after = from_fake(executor.state, secrets, (filled.get("state") or {}).get("locks_held", []))
    if "expect_state" in filled:
        problems += cr.compare_state(after, filled["expect_state"])
    return {"vector": filled, "outcome": outcome, "problems": problems, "state": after,
            "output": executor.last, "hits": executor.hits, "seconds": executor.seconds,
            "script": script}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", action="append", help="only this operation (repeatable)")
    parser.add_argument("--id", help="only vectors whose id contains this text")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show stderr and the outcome of failures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    vectors = [v for v in engine_vectors()
               if (not args.op or v["operation"] in args.op)
               and (not args.id or args.id in v["id"])]
    passed = failed = skipped = 0
    start = time.monotonic()
    with EngineSession() as session:
        for vector in vectors:
            if vector.get("engine") is False:
                skipped += 1
                print("SKIP %s: %s" % (vector["id"], vector.get("engine_reason")))
                continue
            try:
                res = run(session, vector)
            except EngineError as exc:
                failed += 1
                print("FAIL %s: engine: %s" % (vector["id"], exc))
                continue
            if res["problems"]:
                failed += 1
                print("FAIL %s (%.2f s)" % (vector["id"], res["seconds"]))
                for p in res["problems"]:
                    print("     - %s" % p[:600])
                if args.verbose and res["output"] is not None:
                    print("     stderr: %s" % res["output"].stderr[:3000])
                    print("     stdout: %s" % res["output"].stdout[:3000])
            else:
                passed += 1
                print("PASS %s (%.2f s)" % (vector["id"], res["seconds"]))
    print("%d passed, %d failed, %d skipped in %.1f s"
          % (passed, failed, skipped, time.monotonic() - start))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
