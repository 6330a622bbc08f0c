"""HTTP requests per script invocation, and the Python-side cost of one operation.

Run from the repository root: ``python3 bench/requests_per_op.py`` (a few seconds).

* Requests are counted against the test doubles of ``tests/``: the loopback
  WSMan/PSRP endpoint (``tests/psrp_server.py``, real HTTP, genuine PSRP
  messages) for pypsrp and the PSRP executor, and the ``responses``-based WinRM
  server (``tests/winrm_server.py``) for pywinrm and the WinRM executor.
* "cold" is the first call of a new executor (it opens the connection / pool),
  "warm" a later call of the same executor.
* render + parse: :func:`smbvol.scripts.render` of the operation (cached
  template) plus :func:`smbvol.envelope.parse` of a typical output, per call.
* ``--engine``: the PSRP figures again against the relay of ``tests/psrp_server.py``
  (each shell a real ``pwsh -s`` runspace pool, so every answer is PowerShell's own
  CLIXML), next to the loopback endpoint's: requests, CLIXML bytes each way and the
  time of a warm call, for ``host_info`` and a credentialed ``mount_share``.  Without a
  PowerShell engine (``tests/engine/locate.py``) it says so and fails.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import responses  # noqa: E402
import winrm  # noqa: E402
from pypsrp.client import Client  # noqa: E402

from smbvol import envelope, exceptions, opts, scripts  # noqa: E402
from smbvol.executors.psrp import PSRPExecutor  # noqa: E402
from smbvol.secret import Credential, Secret  # noqa: E402
from tests.outofproc import clixml_size  # noqa: E402
from tests.psrp_server import NS, PSRPRelay, PSRPServer  # noqa: E402

USER, PASSWORD = "bench", "bench-password"
TARGET_WARM_PSRP = 3
TARGET_RENDER_PARSE_US = 1000.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def row(label: str, value: str, note: str = "") -> None:
    print("  %-44s %12s  %s" % (label, value, note))


def host_output(inv):
    return ["noise before", envelope.format_envelope(envelope.ok({"host_name": "HV01"}))]


def psrp_conf(port: int):
    return opts.new_conf(smbvol_host="127.0.0.1", smbvol_port=port, smbvol_ssl=False,
                         smbvol_auth="basic", smbvol_username=USER, smbvol_password=PASSWORD,
                         smbvol_allow_unencrypted=True, smbvol_connection_retry_count=0)


def count_psrp() -> bool:
    script = scripts.render("host_info")
    with PSRPServer(host_output, username=USER, password=PASSWORD) as srv:
        client = Client("127.0.0.1", port=srv.port, ssl=False, auth="basic", username=USER,
                        password=PASSWORD, encryption="never")
        srv.reset_counts()
        client.execute_ps("'reference'")
        row("pypsrp Client.execute_ps (reference)", str(srv.count()), "new pool per call")

        ex = PSRPExecutor.from_conf(psrp_conf(srv.port))
        srv.reset_counts()
        ex.run(script)
        row("smbvol psrp executor, cold", str(srv.count()), "Create+Receive, then the call")
        warm = []
        for _ in range(3):
            srv.reset_counts()
            ex.run(script)
            warm.append(srv.count())
        ok = max(warm) <= TARGET_WARM_PSRP
        row("smbvol psrp executor, warm", str(max(warm)),
            "%s (target <= %d: %s)" % (verdict(ok), TARGET_WARM_PSRP,
                                       "+".join(r.action for r in srv.requests)))
        ex.close()

        # with a secret: the session key exchange happens once per pool
        op = scripts.Operation("with_secret", "bench", (
            scripts.Param("ShareCredential", "credential", "a credential"),), (), ())
        secret_script = scripts.Script(operation=op, text="param($ShareCredential)\n")
        params = {"ShareCredential": Credential("u", Secret("s3cret"))}
        ex = PSRPExecutor.from_conf(psrp_conf(srv.port))
        srv.reset_counts()
        ex.run(secret_script, params)
        row("smbvol psrp executor, cold, with a secret", str(srv.count()),
            "+ key exchange (Send+Receive)")
        srv.reset_counts()
        ex.run(secret_script, params)
        secret_ok = srv.count() <= TARGET_WARM_PSRP
        row("smbvol psrp executor, warm, with a secret", str(srv.count()),
            "%s (target <= %d)" % (verdict(secret_ok), TARGET_WARM_PSRP))
        ex.close()
    return ok and secret_ok


def count_winrm() -> None:
    try:
        from smbvol.executors.winrm import WinRMExecutor
        from tests.winrm_server import FakeWinRMServer
    except ImportError as exc:
        row("pywinrm Session.run_ps (reference)", "n/a", "(%s)" % exc)
        row("smbvol winrm executor", "n/a (winrm executor missing)")
        return
    class NoStdinServer(FakeWinRMServer):
        """run_ps sends no stdin: the command runs as soon as it is created."""

        def _command(self, req):
            answer = super()._command(req)
            for cmd in self._shell(req).values():
                cmd.ended = True
            return answer

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        srv = NoStdinServer(program=lambda cmd, args, stdin: (b"ok\r\n", b"", 0),
                            username=USER, password=PASSWORD).install(rsps)
        session = winrm.Session("https://winhost:5986/wsman", auth=(USER, PASSWORD),
                                transport="basic")
        session.run_ps("'reference'")
        row("pywinrm Session.run_ps (reference)", str(len(srv.requests)), "shell per call")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        srv = FakeWinRMServer(username=USER, password=PASSWORD).install(rsps)
        conf = opts.new_conf(smbvol_host="winhost", smbvol_port=5986, smbvol_ssl=True,
                             smbvol_auth="basic", smbvol_username=USER,
                             smbvol_password=PASSWORD, smbvol_connection_retry_count=0)
        try:
            ex = WinRMExecutor.from_conf(conf)
            script = scripts.render("host_info")
            ex.run(script)
            cold = len(srv.requests)
            ex.run(script)
            warm = len(srv.requests) - cold
        except exceptions.SmbvolError as exc:
            row("smbvol winrm executor", "n/a", "(%s)" % exc)
            return
        row("smbvol winrm executor, cold", str(cold), "shell per call (stdin payload)")
        row("smbvol winrm executor, warm", str(warm))


def sample_output(op: scripts.Operation) -> str:
    result = {field: "value-of-%s" % field for field in op.result_fields}
    return ("WARNING: something the host said\r\n"
            + envelope.format_envelope(envelope.ok(result, ["a warning"])) + "\r\n")


def render_parse() -> bool:
    all_ok = True
    for name in sorted(scripts.OPERATIONS):
        op = scripts.OPERATIONS[name]
        scripts._render_cached.cache_clear()
        try:
            first = time.perf_counter()
            script = scripts.render(name)
            first_us = (time.perf_counter() - first) * 1e6
        except exceptions.ScriptError as exc:
            row(name, "n/a", "(cannot render: %s)" % exc.kwargs.get("reason", exc))
            continue
        out = sample_output(op)
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            script = scripts.render(name)
            envelope.parse(out, operation=script.name, host="bench")
        us = (time.perf_counter() - start) / n * 1e6
        ok = us < TARGET_RENDER_PARSE_US
        all_ok = all_ok and ok
        row(name, "%.1f us" % us, "%s (target < %.0f us; uncached render: "
            "%.0f us)" % (verdict(ok), TARGET_RENDER_PARSE_US, first_us))
    return all_ok


class Traffic:
    """PSRP bytes each way through one endpoint (wraps its request handler)."""

    def __init__(self, srv: PSRPServer) -> None:
        self.srv = srv
        self.down = bytearray()
        handle = srv.handle

        def counted(body: bytes, authorization: str):
            status, answer, what = handle(body, authorization)
            if status == 200 and b"ReceiveResponse" in answer:
                for stream in ET.fromstring(answer).iter("{%s}Stream" % NS["rsp"]):
                    self.down.extend(base64.b64decode(stream.text or ""))
            return status, answer, what

        srv.handle = counted  # type: ignore[method-assign]

    def reset(self) -> None:
        self.srv.reset_counts()
        self.down.clear()

    def figures(self) -> dict:
        up = b"".join(r.payload for r in self.srv.requests)
        return {"requests": self.srv.count(), "up": clixml_size(up),
                "down": clixml_size(bytes(self.down))}


def mount_share_call():
    script = scripts.render("mount_share")
    params = {"SharePath": "\\\\fs01.example.test\\smbvol", "DiskName": "disk1.vhdx",
              "ShareCredential": Credential("EXAMPLE\\svc-share", Secret("bench-share-pw"))}
    return script, params


def call_figures(srv: PSRPServer, script, params) -> dict:
    """Cold and warm figures of one call through a new executor on ``srv``."""
    traffic = Traffic(srv)
    ex = PSRPExecutor.from_conf(psrp_conf(srv.port))

    def call():
        try:
            ex.run(script, params)
        except exceptions.HostOperationError:
            pass  # an error envelope is an answer too (no host modules behind the relay)

    traffic.reset()
    call()
    cold = traffic.figures()["requests"]
    warm, times = [], []
    for _ in range(5):
        traffic.reset()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        warm.append(traffic.figures())
    ex.close()
    best = min(times)
    last = warm[-1]
    counts = sorted(w["requests"] for w in warm)
    return {"cold": cold, "warm": counts[-1], "warm_min": counts[0], "up": last["up"],
            "down": last["down"], "ms": best * 1000}


def compare_engine() -> bool:
    """The PSRP figures against the loopback endpoint and against the real runspace."""
    from tests.engine.locate import find_pwsh

    pwsh, why = find_pwsh()
    if pwsh is None:
        row("PSRP against a real runspace (--engine)", "n/a", "(%s)" % why)
        return False
    calls = [("host_info", scripts.render("host_info"), {})]
    script, params = mount_share_call()
    calls.append(("mount_share, with a credential", script, params))
    print("  %-44s %12s %12s" % ("", "loopback", "real pwsh"))
    with PSRPServer(host_output, username=USER, password=PASSWORD) as fake, \
            PSRPRelay(pwsh, username=USER, password=PASSWORD) as relay:
        for label, script, params in calls:
            a = call_figures(fake, script, params)
            b = call_figures(relay, script, params)
            print("  %s" % label)
            print("    %-42s %12s %12s" % ("requests, warm (min-max of 5)",
                                           "%d-%d" % (a["warm_min"], a["warm"]),
                                           "%d-%d" % (b["warm_min"], b["warm"])))
            for key, name in (("cold", "requests, cold"),
                              ("up", "CLIXML sent per warm call (bytes)"),
                              ("down", "CLIXML received per warm call (bytes)")):
                print("    %-42s %12d %12d" % (name, a[key], b[key]))
            print("    %-42s %12.1f %12.1f" % ("warm call (ms)", a["ms"], b["ms"]))
    # Not a target: a real runspace may send the output before the pipeline's final
    # state, and a Receive answers as soon as there is data, so one more Receive follows.
    print("  (a real runspace answers a warm call in %d requests when the output and the "
          "final state\n   come in one Receive, one more when the state follows later)"
          % TARGET_WARM_PSRP)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", action="store_true",
                        help="also run the PSRP figures against a real PowerShell runspace "
                             "(the relay of tests/psrp_server.py)")
    args = parser.parse_args(argv)
    # the loopback endpoint is plain HTTP (its insecurity warnings are expected) and the
    # sample output carries a script warning: keep the figures readable.
    logging.basicConfig(level=logging.ERROR)
    start = time.perf_counter()
    print("HTTP requests per script invocation")
    psrp_ok = count_psrp()
    count_winrm()
    engine_ok = True
    if args.engine:
        print("PSRP: the loopback endpoint (psrpcore answers) next to a real runspace (pwsh -s)")
        engine_ok = compare_engine()
    print("Python-side render + envelope parse per operation")
    rp_ok = render_parse()
    all_ok = psrp_ok and rp_ok and engine_ok
    print("done in %.1f s: %s" % (time.perf_counter() - start, verdict(all_ok)))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
