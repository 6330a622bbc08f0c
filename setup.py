"""Packaging for smbvol.

The PowerShell templates live at the top level in ``ps_templates/`` and are
installed as the ``smbvol.ps_templates`` package data directory, so an
installed smbvol finds them from any working directory.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def _read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def _requirements():
    lines = (line.split("#", 1)[0].strip() for line in _read("requirements.txt").splitlines())
    return [line for line in lines if line]


setup(
    name="smbvol",
    version="0.1.0",
    description="Attach VHD/VHDX volumes on SMB shares (and iSCSI LUNs) to Hyper-V VMs",
    long_description=_read("README.rst"),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["smbvol", "smbvol.*"]) + ["smbvol.ps_templates"],
    package_dir={"smbvol.ps_templates": "ps_templates"},
    # py.typed: smbvol's annotations are for its users' type checkers too (PEP 561).
    package_data={"smbvol": ["py.typed"], "smbvol.ps_templates": ["*.ps1", "*.j2"]},
    include_package_data=False,
    install_requires=_requirements(),
    # Kerberos needs the system's GSSAPI/krb5 libraries, so it is an extra.
    extras_require={"kerberos": ["pywinrm[kerberos]", "pypsrp[kerberos]"]},
    entry_points={
        "console_scripts": ["smbvol = smbvol.cli.app:main"],
        "oslo.config.opts": ["smbvol = smbvol.opts:list_opts"],
        "smbvol.drivers": [],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: OS Independent",
        "Topic :: System :: Systems Administration",
    ],
)
