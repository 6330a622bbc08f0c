"""The PowerShell script library: every operation, its template and its contract.

Each operation is one Jinja2 template in ``ps_templates/`` named after it
(``attach_vhd`` → ``ps_templates/attach_vhd.ps1.j2``) and one entry of
:data:`OPERATIONS` below, which says what parameters it takes, what its result
holds and which error kinds it may report.  Drivers call :func:`render` with the
operation name; the executor fills the parameters.

Two renderings:

* :func:`render` (parameter mode) returns a :class:`Script` whose text holds no
  value at all: Jinja2 only composes the shared envelope and the option blocks,
  and every value reaches PowerShell through the ``param()`` block.  The text is
  identical for any values.
* :func:`render_standalone` returns a script an operator can read and run by
  hand: the parameter-mode text verbatim inside ``& { ... } @p``, preceded by
  the values written as literals through :func:`smbvol.quoting.ps_literal`.
  Secrets are never written: the script reads them from an environment variable
  or prompts with ``Read-Host -AsSecureString``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Dict, Mapping, Optional, Tuple

import jinja2

from smbvol import exceptions
from smbvol.quoting import ps_literal, ps_quote
from smbvol.secret import Credential, Secret

LOG = logging.getLogger(__name__)

TEMPLATE_PACKAGE = "smbvol.ps_templates"
TEMPLATE_SUFFIX = ".ps1.j2"

#: Parameter types and their PowerShell declaration.
PS_TYPES = {
    "string": "[string]",
    "strings": "[string[]]",
    "int": "[long]",
    "ints": "[long[]]",
    "bool": "[bool]",
    "credential": "[System.Management.Automation.PSCredential]",
    "credentials": "[System.Management.Automation.PSCredential[]]",
    "securestring": "[System.Security.SecureString]",
}
SECRET_TYPES = ("credential", "credentials", "securestring")
#: The binder attributes a required parameter of each type carries, so that an empty value
#: reaches the script's checks instead of failing the binding.
ALLOW_EMPTY = {
    "string": "[AllowEmptyString()]",
    "strings": "[AllowEmptyCollection()][AllowEmptyString()][AllowNull()]",
    "ints": "[AllowEmptyCollection()]",
    "credentials": "[AllowEmptyCollection()][AllowNull()]",
}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of an operation's ``param()`` block."""

    name: str
    type: str
    description: str
    required: bool = False
    #: PowerShell default when not required (source text, never a user value).
    default: Optional[str] = None
    #: For secrets in standalone mode: the environment variable the script reads.
    secret_env: Optional[str] = None

    @property
    def is_secret(self) -> bool:
        return self.type in SECRET_TYPES

    def declaration(self) -> str:
        ps_type = PS_TYPES[self.type]
        if self.required:
            # Mandatory alone makes the binder refuse '', @() and null elements before the
            # script's try: the caller would get no result document. The Allow* attributes let
            # such values through to the script's own checks (invalid_parameters, by field).
            return "[Parameter(Mandatory = $true)]%s%s$%s" % (
                ALLOW_EMPTY.get(self.type, ""), ps_type, self.name)
        default = self.default if self.default is not None else "$null"
        return "%s$%s = %s" % (ps_type, self.name, default)


@dataclasses.dataclass(frozen=True)
class Operation:
    """The contract of one template: parameters, options, result fields, error kinds."""

    name: str
    summary: str
    params: Tuple[Param, ...]
    result_fields: Tuple[str, ...]
    error_kinds: Tuple[str, ...]
    #: Render-time options (they choose blocks of code, never carry values).
    options: Tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return self.name + TEMPLATE_SUFFIX

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclasses.dataclass(frozen=True)
class Script:
    """A rendered script: its operation, options and text (with no value in it)."""

    operation: Operation
    text: str
    options: Tuple[Tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.operation.name

    def check_parameters(self, parameters: Mapping[str, Any]) -> Dict[str, Any]:
        """``parameters`` validated against the operation: names, types, required."""
        known = {p.name: p for p in self.operation.params}
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise exceptions.ScriptError(
                name=self.name, reason="unknown parameter(s) %s" % ", ".join(unknown))
        out: Dict[str, Any] = {}
        for p in self.operation.params:
            if p.name not in parameters or parameters[p.name] is None:
                if p.required:
                    raise exceptions.ScriptError(
                        name=self.name, reason="parameter %s is required" % p.name)
                continue
            value = parameters[p.name]
            _check_type(self.name, p, value)
            if p.name == "LockTimeoutSeconds" and value < 0:
                raise exceptions.InvalidInput(
                    field=p.name, value=value,
                    reason="the seconds to wait for the host lock must be 0 or more")
            out[p.name] = value
        return out


def _check_type(op: str, p: Param, value: Any) -> None:
    ok = {
        "string": lambda v: isinstance(v, str),
        "strings": lambda v: isinstance(v, (list, tuple)) and all(
            isinstance(x, str) for x in v),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "ints": lambda v: isinstance(v, (list, tuple)) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v),
        "bool": lambda v: isinstance(v, bool),
        "credential": lambda v: isinstance(v, Credential),
        "credentials": lambda v: isinstance(v, (list, tuple)) and all(
            x is None or isinstance(x, Credential) for x in v),
        "securestring": lambda v: isinstance(v, Secret),
    }[p.type]
    if not ok(value):
        raise exceptions.ScriptError(
            name=op, reason="parameter %s must be of type %s, not %s"
            % (p.name, p.type, type(value).__name__))
    for s in _strings_of(value):
        if "\x00" in s:
            raise exceptions.InvalidInput(field=p.name, value="<contains NUL>",
                                          reason="NUL characters cannot be passed to PowerShell")
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise exceptions.InvalidInput(
                field=p.name, value="<lone surrogate>",
                reason="the text is not valid Unicode (a lone surrogate); "
                       "pass well-formed UTF-8 text") from None


def _strings_of(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, Credential):
        yield value.username
        yield value.password.reveal()
    elif isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings_of(v)


# --------------------------------------------------------------------------
# The catalog.  Keep it in step with ps_templates/ (tests check both ways).
# --------------------------------------------------------------------------

_LOCK = Param("LockTimeoutSeconds", "int", "bounded wait for the host-side mutex", default="60")
_SHARE = Param("SharePath", "string", "UNC path of the share (\\\\host\\share[\\dir])",
               required=True)
_SHARE_CRED = Param("ShareCredential", "credential", "credentials for the share (none: the "
                    "host's own identity)", secret_env="SMBVOL_SHARE_PASSWORD")
_VM = Param("VMName", "string", "name of the Hyper-V VM", required=True)
_DISK = Param("DiskName", "string", "file name of the VHD/VHDX image on the share",
              required=True)

_MOUNT_ERRORS = ("share_unreachable", "access_denied", "image_not_found", "mapping_conflict",
                 "logon_session_missing", "host_busy", "invalid_parameters", "unexpected")
_ATTACHMENT_FIELDS = ("vm_name", "vm_id", "controller_type", "controller_number",
                      "controller_location", "disk_path", "changed", "mapping_created",
                      "mapping_kind")

#: The fields of each entry of list_attachments' ``attachments`` (the template and the host
#: double answer exactly these): a passthrough disk has ``disk_number`` and ``path``
#: ``\\.\PHYSICALDRIVE<n>``; the ``target_*`` fields name the iSCSI LUN behind it (null for
#: image files and for disks no iSCSI session reaches).
LIST_ATTACHMENTS_ENTRY_FIELDS = ("vm_name", "vm_id", "controller_type", "controller_number",
                                 "controller_location", "path", "disk_number", "target_iqn",
                                 "target_lun", "target_portal", "on_share", "share",
                                 "maximum_iops", "minimum_iops")

# iSCSI: one entry per path (portal, target IQN, LUN); several entries are the multipath form.
_ISCSI_PORTALS = Param("TargetPortals", "strings", "target portal of each path, host:port (IPv6 "
                       "as [addr]:port)", required=True)
_ISCSI_IQNS = Param("TargetIqns", "strings", "target IQN of each path", required=True)
_ISCSI_LUNS = Param("TargetLuns", "ints", "LUN of each path", required=True)
_ISCSI_CHAP = Param("ChapCredential", "credential", "one-way CHAP user name and secret (none: "
                    "no authentication)", secret_env="SMBVOL_CHAP_SECRET")
_ISCSI_MULTIPATH = Param("Multipath", "bool", "log in to every path with MPIO (when MPIO claims "
                         "iSCSI disks); else the first path that works", default="$false")
_ISCSI_WAIT = Param("DiskWaitSeconds", "int", "bounded wait for the LUN's disk to appear after "
                    "login", default="60")
_ISCSI_TARGET = (_ISCSI_PORTALS, _ISCSI_IQNS, _ISCSI_LUNS)
_ISCSI_CONNECT_ERRORS = ("target_unreachable", "chap_auth_failed", "lun_not_found",
                         "access_denied", "host_busy", "invalid_state", "invalid_parameters",
                         "unexpected")

OPERATIONS: Dict[str, Operation] = {op.name: op for op in (
    Operation(
        "mount_share",
        "Make a share usable by Hyper-V: local path for a share on this host, else reuse a "
        "healthy mapping or create a global (VMMS-visible) one; verify the image exists.",
        (_SHARE, Param("DiskName", "string", "image file to verify ('' for none)",
                       default="''"), _SHARE_CRED, _LOCK),
        ("share_path", "disk_path", "local", "local_path", "mapping_created", "mapping_kind",
         "changed"),
        _MOUNT_ERRORS,
        options=("mapping_via_task",),
    ),
    Operation(
        "unmount_share",
        "Remove the mapping of a share when no disk of any VM lies under it; only a mapping "
        "smbvol created, unless forced.",
        (_SHARE, Param("Force", "bool", "remove a mapping smbvol did not create",
                       default="$false"), _LOCK),
        ("share_path", "removed", "mapping_kind", "owned", "in_use_by", "changed"),
        ("disk_in_use", "host_busy", "access_denied", "invalid_parameters", "unexpected"),
    ),
    Operation(
        "attach_vhd",
        "Mount the share, then attach the image to the VM on the first free slot (idempotent "
        "by path), apply QoS; remove a mapping this call created if the attach fails.",
        (_VM, _SHARE, _DISK, _SHARE_CRED,
         Param("DiskBus", "string", "'scsi', or 'ide' (Generation 1 VM that is off)",
               default="'scsi'"),
         Param("MaximumIops", "int", "QoS maximum normalised IOPS (0: none)", default="0"),
         Param("MinimumIops", "int", "QoS minimum normalised IOPS (0: none)", default="0"),
         _LOCK),
        _ATTACHMENT_FIELDS,
        ("vm_not_found",) + _MOUNT_ERRORS + ("no_free_slot", "invalid_state", "disk_in_use"),
        options=("mapping_via_task",),
    ),
    Operation(
        "attach_vhds",
        "attach_vhd for several images on one VM in one invocation; all or nothing.",
        (_VM,
         Param("SharePaths", "strings", "UNC path of each image's share", required=True),
         Param("DiskNames", "strings", "file name of each image", required=True),
         Param("ShareCredentials", "credentials", "credentials of each share ($null: none)",
               secret_env="SMBVOL_SHARE_PASSWORD"),
         Param("MaximumIops", "ints", "QoS maximum of each image (0: none)"),
         Param("MinimumIops", "ints", "QoS minimum of each image (0: none)"),
         _LOCK),
        ("attachments", "changed"),
        ("vm_not_found",) + _MOUNT_ERRORS + ("no_free_slot", "invalid_state", "disk_in_use"),
        options=("mapping_via_task",),
    ),
    Operation(
        "detach_vhd",
        "Remove the VM's disk whose path is the image (UNC, or local for a share on this "
        "host); absent is success with changed=false.",
        (_VM, _SHARE, _DISK, _LOCK),
        ("vm_name", "vm_id", "disk_path", "removed", "controller_type", "controller_number",
         "controller_location", "changed"),
        ("vm_not_found", "host_busy", "access_denied", "invalid_state", "invalid_parameters",
         "unexpected"),
    ),
    Operation(
        "list_attachments",
        "Every hard disk of one VM, or of every VM: path, controller, share, QoS; a "
        "passthrough disk's number and iSCSI target (IQN, LUN, portal).",
        (Param("VMName", "string", "one VM ('' for every VM)", default="''"),),
        ("attachments",),
        ("vm_not_found", "access_denied", "unexpected"),
    ),
    Operation(
        "host_info",
        "Facts about the host: names, addresses, versions, Hyper-V and SMB capabilities.",
        (),
        ("host_name", "fqdn", "ipv4", "ipv6", "os_version", "os_build", "ps_version",
         "hyperv_module", "smb_global_mapping", "iscsi_initiator_iqns", "multipath"),
        ("unexpected",),
    ),
    Operation(
        "iscsi_connect",
        "Add the target portal(s) if missing, log in to the target (persistent, CHAP when given, "
        "MPIO when asked and present), wait for the LUN's disk; idempotent when logged in.",
        _ISCSI_TARGET + (_ISCSI_CHAP, _ISCSI_MULTIPATH, _ISCSI_WAIT, _LOCK),
        ("disk_number", "disk_path", "target_iqn", "target_lun", "paths", "portals_added",
         "sessions_created", "multipath", "changed"),
        _ISCSI_CONNECT_ERRORS,
    ),
    Operation(
        "iscsi_attach",
        "iscsi_connect, take the disk offline on the host, attach it to the VM as a passthrough "
        "disk on the first free slot (idempotent by disk number); log out of sessions this "
        "call created if the attach fails.",
        (_VM,) + _ISCSI_TARGET + (
            _ISCSI_CHAP, _ISCSI_MULTIPATH,
            Param("DiskBus", "string", "'scsi', or 'ide' (Generation 1 VM that is off)",
                  default="'scsi'"),
            _ISCSI_WAIT, _LOCK),
        ("vm_name", "vm_id", "controller_type", "controller_number", "controller_location",
         "disk_path", "disk_number", "target_iqn", "target_lun", "sessions_created", "changed"),
        ("vm_not_found",) + _ISCSI_CONNECT_ERRORS + ("no_free_slot", "disk_in_use"),
    ),
    Operation(
        "iscsi_detach",
        "Remove the VM's passthrough disk of the LUN (found by target IQN and LUN); absent is "
        "success with changed=false.",
        (_VM,) + _ISCSI_TARGET + (_LOCK,),
        ("vm_name", "vm_id", "disk_number", "disk_path", "target_iqn", "target_lun", "removed",
         "controller_type", "controller_number", "controller_location", "changed"),
        ("vm_not_found", "host_busy", "access_denied", "invalid_state", "invalid_parameters",
         "unexpected"),
    ),
    Operation(
        "iscsi_disconnect",
        "Log out of the target(s) (and drop the persistent login) only when no LUN of them is "
        "attached to any VM; disk_in_use (with the VMs and LUNs) otherwise.",
        _ISCSI_TARGET + (_LOCK,),
        ("target_iqns", "sessions_removed", "logged_out", "changed"),
        ("disk_in_use", "host_busy", "access_denied", "invalid_parameters", "unexpected"),
    ),
    Operation(
        "iscsi_connector",
        "The host's iSCSI initiator: IQN(s), IP addresses, host name, MPIO capability.",
        (),
        ("host_name", "fqdn", "initiator_iqns", "ipv4", "ipv6", "multipath", "mpio_installed",
         "initiator_service"),
        ("access_denied", "unexpected"),
    ),
)}


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise exceptions.ScriptError(
            name=name, reason="no such operation; known: %s" % ", ".join(sorted(OPERATIONS))
        ) from None


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: templates by name from the installed package."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("smbvol", "ps_templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # There are no values in parameter mode; in standalone mode the preamble is
    # written in Python with ps_literal, so no template has a value filter.
    return env


def _option_tuple(op: Operation, options: Mapping[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    unknown = sorted(set(options) - set(op.options))
    if unknown:
        raise exceptions.ScriptError(
            name=op.name, reason="unknown option(s) %s; known: %s"
            % (", ".join(unknown), ", ".join(op.options) or "none"))
    return tuple((k, bool(options.get(k, False))) for k in op.options)


@functools.lru_cache(maxsize=256)
def _render_cached(name: str, options: Tuple[Tuple[str, Any], ...]) -> str:
    op = get_operation(name)
    try:
        template = environment().get_template(op.template)
        return template.render(
            operation=op.name,
            param_block=param_block(op),
            **dict(options),
        )
    except jinja2.TemplateError as exc:
        raise exceptions.ScriptError(
            name=name, reason="%s: %s" % (type(exc).__name__, exc)) from exc


def param_block(op: Operation) -> str:
    """The ``param()`` block of ``op`` (names and types only)."""
    if not op.params:
        return "param()"
    decls = ",\n".join("    " + p.declaration() for p in op.params)
    return "[CmdletBinding()]\nparam(\n%s\n)" % decls


def render(name: str, **options: Any) -> Script:
    """The parameter-mode script of operation ``name`` under ``options``."""
    op = get_operation(name)
    opts = _option_tuple(op, options)
    return Script(operation=op, text=_render_cached(name, opts), options=opts)


_READ_SECRET = r"""function Read-SmbvolSecret {
    param([string]$Variable, [string]$Prompt)
    $plain = [System.Environment]::GetEnvironmentVariable($Variable)
    if ([string]::IsNullOrEmpty($plain)) {
        return (Read-Host -Prompt $Prompt -AsSecureString)
    }
    $secure = New-Object -TypeName System.Security.SecureString
    foreach ($c in $plain.ToCharArray()) { $secure.AppendChar($c) }
    $secure.MakeReadOnly()
    return $secure
}
"""


def _standalone_value(op: Operation, p: Param, value: Any, index: Optional[int] = None) -> str:
    if p.type == "credential" or (p.type == "credentials" and index is not None):
        if value is None:
            return "$null"
        env = p.secret_env or "SMBVOL_PASSWORD"
        prompt = "Password for %s" % value.username
        return ("(New-Object -TypeName System.Management.Automation.PSCredential "
                "-ArgumentList %s, (Read-SmbvolSecret -Variable %s -Prompt %s))"
                % (ps_quote(value.username), ps_quote(env), ps_quote(prompt)))
    if p.type == "credentials":
        return "@(" + ", ".join(
            _standalone_value(op, p, v, i) for i, v in enumerate(value)) + ")"
    if p.type == "securestring":
        env = p.secret_env or "SMBVOL_PASSWORD"
        return "(Read-SmbvolSecret -Variable %s -Prompt %s)" % (
            ps_quote(env), ps_quote("Secret for %s" % p.name))
    return ps_literal(value)


def render_standalone(name: str, parameters: Mapping[str, Any], **options: Any) -> str:
    """A script to read and run by hand on the host, values inlined, secrets read there."""
    script = render(name, **options)
    values = script.check_parameters(parameters)
    op = script.operation
    lines = [
        "# smbvol %s (standalone). Run on the Hyper-V host in an elevated Windows PowerShell."
        % op.name,
    ]
    secret_envs = sorted({p.secret_env or "SMBVOL_PASSWORD" for p in op.params
                          if p.is_secret and p.name in values})
    if secret_envs:
        lines.append("# Secrets are read from %s, or prompted for when unset."
                     % ", ".join("$env:" + e for e in secret_envs))
        lines.append(_READ_SECRET.rstrip("\n"))
    lines.append("$SmbvolParameters = @{}")
    for p in op.params:
        if p.name in values:
            lines.append("$SmbvolParameters[%s] = %s"
                         % (ps_quote(p.name), _standalone_value(op, p, values[p.name])))
    lines.append("& {")
    lines.append(script.text.rstrip("\n"))
    lines.append("} @SmbvolParameters")
    return "\n".join(lines) + "\n"


def template_names() -> Tuple[str, ...]:
    """Every operation template file name, from the catalog."""
    return tuple(sorted(op.template for op in OPERATIONS.values()))


def catalog_table() -> str:
    """The README's table of templates (RST list-table), generated from the catalog."""
    rows = [
        "   * - ``%s``\n     - %s\n     - %s\n     - %s\n     - %s" % (
            op.name,
            op.summary,
            ", ".join("``%s``%s" % (p.name, "" if p.required else " (opt)")
                      for p in op.params) or "none",
            ", ".join("``%s``" % f for f in op.result_fields),
            ", ".join("``%s``" % k for k in op.error_kinds))
        for op in sorted(OPERATIONS.values(), key=lambda o: o.name)
    ]
    head = (".. list-table::\n   :header-rows: 1\n   :widths: 12 30 22 20 16\n\n"
            "   * - Template\n     - Operation\n     - Parameters\n     - Result fields\n"
            "     - Error kinds\n")
    return head + "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates the README's table
    print(catalog_table(), end="")
