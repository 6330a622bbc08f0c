"""The live suite's lab: settings from the environment, and the scripts that build the lab.

The lab scripts are templates like smbvol's own (they extend the same envelope and get
their values only through ``param()``); they live here because only the suite uses them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets as _random
from typing import Dict, List, Optional, Tuple

import jinja2

from smbvol import opts, scripts
from smbvol.connection import normalise_export, unc_path
from smbvol.secret import Credential, Secret

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIRED = ("SMBVOL_TEST_HOST", "SMBVOL_TEST_USERNAME", "SMBVOL_TEST_PASSWORD",
            "SMBVOL_TEST_EXPORT")

LAB_OPERATIONS: Dict[str, scripts.Operation] = {op.name: op for op in (
    scripts.Operation(
        "lab_setup", "Create the lab's VMs and images (names start with Prefix).",
        (scripts.Param("Prefix", "string", "name prefix of this run", required=True),
         scripts.Param("SharePath", "string", "UNC path of the test share", required=True),
         scripts.Param("ImageCount", "int", "images of each format", default="4")),
        ("vms", "images"), ("unexpected",)),
    scripts.Operation(
        "lab_teardown", "Remove every VM and image whose name starts with Prefix.",
        (scripts.Param("Prefix", "string", "name prefix of this run", required=True),
         scripts.Param("SharePath", "string", "UNC path of the test share", required=True)),
        ("removed", "left"), ("unexpected",)),
    scripts.Operation(
        "lab_power", "Turn a lab VM on, or hard off.",
        (scripts.Param("VMName", "string", "the lab VM", required=True),
         scripts.Param("Running", "bool", "on ($true) or off ($false)", required=True)),
        ("name", "state"), ("unexpected",)),
    scripts.Operation(
        "lab_apply", "Put the lab VMs into a contract vector's starting state.",
        (scripts.Param("VMNames", "strings", "lab VMs to reset", required=True),
         scripts.Param("Running", "ints", "1: start the VM after its disks are set",
                       required=True),
         scripts.Param("DiskVMs", "strings", "VM of each disk to add", required=True),
         scripts.Param("DiskPaths", "strings", "path of each disk", required=True),
         scripts.Param("DiskControllerTypes", "strings", "IDE or SCSI", required=True),
         scripts.Param("DiskNumbers", "ints", "controller number", required=True),
         scripts.Param("DiskLocations", "ints", "controller location", required=True),
         scripts.Param("SharePath", "string", "UNC path of the test share", required=True),
         scripts.Param("RemoveMappings", "bool", "remove mappings to the share",
                       default="$false")),
        ("vms", "disks", "mappings_removed"), ("unexpected",)),
    scripts.Operation(
        "lab_checkpoint", "Take or remove a checkpoint of a lab VM.",
        (scripts.Param("VMName", "string", "the lab VM", required=True),
         scripts.Param("Name", "string", "the checkpoint's name", required=True),
         scripts.Param("Remove", "bool", "remove it instead of taking it", default="$false")),
        ("name", "checkpoints"), ("unexpected",)),
    scripts.Operation(
        "lab_disk", "Read a host disk's offline and read-only flags and the SAN policy.",
        (scripts.Param("Number", "int", "the host disk number", required=True),),
        ("number", "is_offline", "is_read_only", "new_disk_policy"), ("unexpected",)),
)}


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    host: str
    transports: Tuple[str, ...]
    auth: str
    username: str
    password: Secret
    ssl: bool
    ca_file: Optional[str]
    export: str
    share_credential: Optional[Credential]
    prefix: str

    @property
    def share_path(self) -> str:
        return unc_path(*normalise_export(self.export))

    def conf(self, transport: str):
        """A ConfigOpts for ``transport`` (the password is set as an override, never logged)."""
        overrides = dict(smbvol_transport=transport, smbvol_host=self.host,
                         smbvol_auth=self.auth, smbvol_username=self.username,
                         smbvol_password=self.password.reveal(), smbvol_ssl=self.ssl)
        if self.ca_file:
            overrides["smbvol_ca_file"] = self.ca_file
        return opts.new_conf([], **overrides)


#: The iSCSI LUN the live iSCSI scenarios use (all three, or those scenarios are skipped).
ISCSI_VARIABLES = ("SMBVOL_TEST_ISCSI_PORTAL", "SMBVOL_TEST_ISCSI_IQN", "SMBVOL_TEST_ISCSI_LUN")


def missing_variables(environ=os.environ) -> List[str]:
    return [name for name in REQUIRED if not environ.get(name)]


def settings_from_env(environ=os.environ) -> LiveSettings:
    share_user = environ.get("SMBVOL_TEST_SHARE_USERNAME")
    share_cred = None
    if share_user:
        share_cred = Credential(share_user, Secret(environ.get("SMBVOL_TEST_SHARE_PASSWORD", "")))
    transports = tuple(t.strip() for t in environ.get("SMBVOL_TEST_TRANSPORTS", "psrp,winrm")
                       .split(",") if t.strip())
    return LiveSettings(
        host=environ["SMBVOL_TEST_HOST"], transports=transports,
        auth=environ.get("SMBVOL_TEST_AUTH", "ntlm"),
        username=environ["SMBVOL_TEST_USERNAME"],
        password=Secret(environ["SMBVOL_TEST_PASSWORD"]),
        ssl=environ.get("SMBVOL_TEST_SSL", "1") not in ("0", "false", "no"),
        ca_file=environ.get("SMBVOL_TEST_CA_FILE") or None,
        export=environ["SMBVOL_TEST_EXPORT"], share_credential=share_cred,
        prefix=environ.get("SMBVOL_TEST_PREFIX") or "smbvolt-" + _random.token_hex(3))


def lab_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([
            jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
            jinja2.PackageLoader("smbvol", "ps_templates")]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True)


def render_lab(name: str) -> scripts.Script:
    op = LAB_OPERATIONS[name]
    text = lab_environment().get_template(op.template).render(
        operation=op.name, param_block=scripts.param_block(op))
    return scripts.Script(operation=op, text=text)
