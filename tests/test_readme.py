"""The README's template table is the catalog's, and its two commands are the CI's."""

import os
import re

from smbvol import scripts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def test_template_table_matches_the_catalog():
    text = read("README.rst")
    m = re.search(r"\.\. BEGIN TEMPLATE TABLE[^\n]*\n\n(.*?)\.\. END TEMPLATE TABLE", text, re.S)
    assert m, "README has no template table markers"
    assert m.group(1) == scripts.catalog_table()


def test_every_operation_has_a_template_file_and_a_row():
    text = read("README.rst")
    for op in scripts.OPERATIONS.values():
        assert os.path.exists(os.path.join(ROOT, "ps_templates", op.template)), op.template
        assert "* - ``%s``" % op.name in text


def test_ci_runs_the_readme_test_command():
    readme, ci = read("README.rst"), read(".ci/run")
    command = [line.strip() for line in readme.splitlines()
               if "-m pytest" in line and "test-requirements.txt" in line]
    assert len(command) == 1
    assert command[0] in ci


def test_readme_main_job_is_the_dry_run():
    readme = read("README.rst")
    assert ("smbvol volume attach --dry-run instance-0001 --export //fs01/vols "
            "--name volume-1.vhdx") in readme
