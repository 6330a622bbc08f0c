"""Every configuration option of smbvol, in one place.

Register them on a ``ConfigOpts`` you own with :func:`register_opts`; nothing in
smbvol reads a global CONF.  :func:`list_opts` feeds ``oslo-config-generator
--namespace smbvol`` (the ``oslo.config.opts`` entry point).

Groups:

* ``[hyperv]`` — the options whose names Nova's Hyper-V driver already uses
  (``volume_attach_retry_count``, ``volume_attach_retry_interval``) and the
  volume behaviour next to them;
* ``[smbvol]`` — how to reach the host (executor, transport security, timeouts,
  connection retries).
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from oslo_config import cfg, types

from smbvol import exceptions

LOG = logging.getLogger(__name__)

HYPERV_GROUP = "hyperv"
SMBVOL_GROUP = "smbvol"

hyperv_opts = [
    cfg.IntOpt("volume_attach_retry_count", default=10, min=0,
               help="How many times a volume attach is retried after a transient error "
                    "(share unreachable, host busy, connection lost)."),
    cfg.IntOpt("volume_attach_retry_interval", default=5, min=0,
               help="Seconds between volume attach retries."),
    cfg.BoolOpt("allow_read_only_as_read_write", default=False,
                help="Attach volumes whose access_mode is 'ro' even though Hyper-V has no "
                     "verified read-only VHD attach: the VM can write to the image. Unsafe "
                     "for snapshot attach (it can corrupt the image chain); logged loudly."),
    cfg.BoolOpt("smb_mapping_via_scheduled_task", default=False,
                help="Create SMB global mappings through a one-shot scheduled task running "
                     "as SYSTEM. Works around the remoting double hop (error 1312) without "
                     "CredSSP or Kerberos delegation. The secret is never on a command line "
                     "or in the task definition, and the task is removed afterwards."),
    cfg.IntOpt("host_lock_timeout", default=60, min=1,
               help="Seconds a script waits for the host-side lock of a VM or share before "
                    "failing with host_busy."),
    cfg.BoolOpt("use_external_locks", default=False,
                help="Take the per-share and per-VM locks as file locks in lock_path too, "
                     "so several processes on this machine serialise."),
    cfg.StrOpt("lock_path",
               help="Directory for external lock files (with use_external_locks)."),
    cfg.BoolOpt("allow_ide_attach", default=True,
                help="Allow disk_bus='ide' for Generation 1 VMs that are off."),
]

smbvol_opts = [
    cfg.StrOpt("transport", default="local",
               choices=[("local", "PowerShell on this machine (powershell_path); the host "
                                  "option is not used"),
                        ("winrm", "WinRM to the host, through pywinrm"),
                        ("psrp", "PowerShell Remoting Protocol to the host, through pypsrp "
                                 "(what the command line uses with --host)")],
               help="How scripts run: 'local' (powershell.exe on this host), 'winrm' "
                    "(pywinrm) or 'psrp' (pypsrp)."),
    cfg.StrOpt("host", default="localhost",
               help="The Hyper-V host for the remote transports."),
    cfg.PortOpt("port",
                help="WinRM port (default 5986 with ssl, 5985 without)."),
    cfg.StrOpt("auth", default="ntlm",
               choices=[("negotiate", "Kerberos when the host can be reached by its domain "
                                      "name, else NTLM"),
                        ("ntlm", "NTLM with username and password"),
                        ("kerberos", "Kerberos with a ticket of this machine's user (kinit) "
                                     "or username and password"),
                        ("credssp", "CredSSP: the password travels to the host, which can "
                                    "then reach the file server (no double hop)"),
                        ("certificate", "a client certificate (certificate_pem, "
                                        "certificate_key_pem), over HTTPS only"),
                        ("basic", "HTTP basic authentication with a local account; HTTPS "
                                  "only unless allow_unencrypted")],
               help="Authentication mechanism of the remote transports."),
    cfg.StrOpt("username", help="User for the remote transports (DOMAIN\\user or UPN)."),
    cfg.StrOpt("password", secret=True,
               help="Password for the remote transports. Prefer the SMBVOL_PASSWORD "
                    "environment variable or a password file over this option."),
    cfg.BoolOpt("ssl", default=True, help="Use HTTPS for WinRM/PSRP."),
    cfg.StrOpt("ca_file", help="CA bundle that issued the host's certificate."),
    cfg.BoolOpt("cert_validation", default=True,
                help="Validate the host's TLS certificate. Turning this off is insecure and "
                     "logged as a warning on every connection."),
    cfg.StrOpt("message_encryption", default="auto",
               choices=[("auto", "encrypt the messages over HTTP, not over HTTPS"),
                        ("always", "encrypt the messages, over HTTPS too"),
                        ("never", "never encrypt the messages (refused over HTTP unless "
                                  "allow_unencrypted)")],
               help="WinRM message encryption (NTLM/Kerberos/CredSSP over HTTP). 'never' "
                    "is refused over HTTP unless allow_unencrypted is set."),
    cfg.BoolOpt("allow_unencrypted", default=False,
                help="Allow basic auth or unencrypted messages over plain HTTP. Insecure."),
    cfg.StrOpt("certificate_pem", help="Client certificate for certificate auth."),
    cfg.StrOpt("certificate_key_pem", help="Key of the client certificate."),
    cfg.IntOpt("operation_timeout", default=20, min=1,
               help="WSMan operation timeout in seconds (one receive poll)."),
    cfg.IntOpt("read_timeout", default=30, min=2,
               help="HTTP read timeout in seconds; must be greater than operation_timeout."),
    cfg.IntOpt("script_timeout", default=300, min=1,
               help="Seconds one script may run before it is stopped (ExecutorTimeout)."),
    cfg.IntOpt("connection_retry_count", default=3, min=0,
               help="Retries of a call that failed to reach the host."),
    cfg.FloatOpt("connection_retry_interval", default=2.0, min=0,
                 help="Seconds between connection retries."),
    cfg.StrOpt("powershell_path", default="powershell.exe",
               help="PowerShell that the local and WinRM executors start. The default "
                    "powershell.exe means %SystemRoot%\\System32\\WindowsPowerShell\\"
                    "v1.0\\powershell.exe (Sysnative from a 32-bit process; over WinRM, "
                    "which does not expand variables, C:\\Windows\\System32\\...), never "
                    "the first one on PATH; any other value (e.g. pwsh) is used as given."),
    cfg.StrOpt("configuration_name", default="Microsoft.PowerShell",
               help="PSRP session configuration (endpoint) name."),
    cfg.IntOpt("max_output_bytes", default=16 * 1024 * 1024, min=1024,
               help="Most bytes one script may print (all executors). A script that "
                    "prints more is stopped and the call fails with OutputLimitExceeded, "
                    "so a runaway host cannot exhaust this process's memory."),
]


def register_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register every smbvol option on ``conf`` (idempotent) and return it."""
    conf.register_opts(hyperv_opts, group=HYPERV_GROUP)
    conf.register_opts(smbvol_opts, group=SMBVOL_GROUP)
    return conf


def new_conf(args: Sequence[str] = (), **overrides: Any) -> cfg.ConfigOpts:
    """A fresh ``ConfigOpts`` with smbvol's options, parsed from ``args``.

    ``overrides`` are ``group_option=value`` pairs, e.g. ``smbvol_transport='psrp'``.
    """
    conf = register_opts(cfg.ConfigOpts())
    conf(list(args), project="smbvol", default_config_files=[])
    for key, value in overrides.items():
        group, _, name = key.partition("_")
        conf.set_override(name, value, group=group)
    return conf


def list_opts() -> List[Tuple[str, list]]:
    """For oslo-config-generator."""
    return [(HYPERV_GROUP, list(hyperv_opts)), (SMBVOL_GROUP, list(smbvol_opts))]


# --------------------------------------------------------------------------- checking


def _raw_values(conf: cfg.ConfigOpts) -> Dict[str, Dict[str, str]]:
    """``{group: {key: value}}`` as written in the configuration files read (last wins)."""
    files = list(conf.config_file or ())
    for folder in conf.config_dir or ():
        if os.path.isdir(folder):
            files += sorted(os.path.join(folder, n) for n in os.listdir(folder)
                            if n.endswith(".conf"))
    values: Dict[str, Dict[str, str]] = {}
    for path in files:
        sections: Dict[str, Dict[str, List[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError) as exc:
            LOG.debug("cannot read %s again for its keys: %s", path, exc)
            continue
        for group, keys in sections.items():
            for key, found in keys.items():
                values.setdefault(group, {})[key] = found[-1] if found else ""
    return values


def _expected(opt: cfg.Opt) -> str:
    """What a valid value of ``opt`` is, in words."""
    kind = opt.type
    choices = getattr(kind, "choices", None)
    if choices:
        return "one of %s" % ", ".join(str(c) for c in choices)
    if isinstance(kind, types.Boolean):
        return "true or false"
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    what = ("a port number" if isinstance(kind, types.Port) else "a whole number"
            if isinstance(kind, types.Integer) else "a number")
    if low is not None and high is not None:
        return "%s from %s to %s" % (what, low, high)
    if low is not None:
        return "%s of at least %s" % (what, low)
    if high is not None:
        return "%s of at most %s" % (what, high)
    return what


def bad_value(group: str, name: str, raw: Any) -> str:
    """Why ``raw`` is no value of option ``name`` of ``group``: ``'ftp' is not one of
    local, winrm, psrp`` (a secret option's value is never shown)."""
    opt = {o.dest: o for g, options in list_opts() if g == group for o in options}[name]
    shown = "the value" if raw is None else "***" if opt.secret else "'%s'" % (raw,)
    return "%s is not %s" % (shown, _expected(opt))


def _value_error(group: str, opt: cfg.Opt, raw: Optional[str]) -> exceptions.ConfigError:
    return exceptions.ConfigError(option="[%s] %s" % (group, opt.name),
                                  reason=bad_value(group, opt.dest, raw))


def unknown_keys(conf: cfg.ConfigOpts) -> List[Tuple[str, str, Optional[str]]]:
    """``(group, key, closest known option or None)`` for every key of smbvol's groups
    in the configuration files that is not an smbvol option (oslo.config ignores them)."""
    known = {group: {opt.dest for opt in options} for group, options in list_opts()}
    found = []
    for group, keys in _raw_values(conf).items():
        if group not in known:
            continue
        for key in sorted(keys):
            if key not in known[group]:
                close = difflib.get_close_matches(key, sorted(known[group]), n=1)
                found.append((group, key, close[0] if close else None))
    return found


def check_conf(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Read every smbvol option of ``conf`` now and return ``conf``.

    A bad value raises :class:`~smbvol.exceptions.ConfigError` worded for an
    operator: ``[smbvol] transport: 'ftp' is not one of local, winrm, psrp``.
    A key of ``[smbvol]`` or ``[hyperv]`` that is no smbvol option is logged as a
    WARNING (with the option it was probably meant to be).
    """
    raw: Optional[Dict[str, Dict[str, str]]] = None
    for group, options in list_opts():
        for opt in options:
            try:
                getattr(getattr(conf, group), opt.dest)
            except (cfg.ConfigFileValueError, ValueError):
                raw = _raw_values(conf) if raw is None else raw
                raise _value_error(group, opt, raw.get(group, {}).get(opt.dest)) from None
    for group, key, close in unknown_keys(conf):
        LOG.warning("[%s] %s is not an smbvol option and is ignored%s", group, key,
                    "; did you mean %s?" % close if close else "")
    return conf
