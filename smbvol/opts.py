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

from typing import List, Tuple

from oslo_config import cfg

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
    cfg.StrOpt("transport", default="local", choices=["local", "winrm", "psrp"],
               help="How scripts run: 'local' (powershell.exe on this host), 'winrm' "
                    "(pywinrm) or 'psrp' (pypsrp)."),
    cfg.StrOpt("host", default="localhost",
               help="The Hyper-V host for the remote transports."),
    cfg.PortOpt("port",
                help="WinRM port (default 5986 with ssl, 5985 without)."),
    cfg.StrOpt("auth", default="ntlm",
               choices=["negotiate", "ntlm", "kerberos", "credssp", "certificate", "basic"],
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
    cfg.StrOpt("message_encryption", default="auto", choices=["auto", "always", "never"],
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
               help="PowerShell of the local executor (powershell.exe, or pwsh)."),
    cfg.StrOpt("configuration_name", default="Microsoft.PowerShell",
               help="PSRP session configuration (endpoint) name."),
]


def register_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register every smbvol option on ``conf`` (idempotent) and return it."""
    conf.register_opts(hyperv_opts, group=HYPERV_GROUP)
    conf.register_opts(smbvol_opts, group=SMBVOL_GROUP)
    return conf


def new_conf(args: List[str] = (), **overrides) -> cfg.ConfigOpts:
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
