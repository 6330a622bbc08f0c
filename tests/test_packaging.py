"""A plain (non-editable) install ships every template and renders it from anywhere."""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))

PROBE = r"""
import itertools, os, sys
import smbvol
from smbvol import scripts
from smbvol.secret import Credential, Secret
here = os.path.dirname(smbvol.__file__)
assert here.startswith(sys.argv[1]), (here, sys.argv[1])
SAMPLE = {"string": "x", "strings": ["a"], "int": 1, "ints": [1], "bool": True,
          "credential": Credential("u", Secret("p")), "credentials": [Credential("u", Secret("p"))],
          "securestring": Secret("p")}
count = 0
for name, op in sorted(scripts.OPERATIONS.items()):
    assert os.path.exists(os.path.join(here, "ps_templates", op.template)), (
        "the template %s of %s is not installed" % (op.template, name))
    for values in itertools.product((False, True), repeat=len(op.options)):
        opts = dict(zip(op.options, values))
        assert scripts.render(name, **opts).text
        params = {p.name: SAMPLE[p.type] for p in op.params}
        assert scripts.render_standalone(name, params, **opts)
        count += 1
print("rendered", count)
"""


def test_plain_install_renders_every_template(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-compile", "--target", str(target), ROOT],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    installed = os.listdir(target / "smbvol" / "ps_templates")
    source = [f for f in os.listdir(os.path.join(ROOT, "ps_templates")) if f.endswith(".j2")]
    assert sorted(f for f in installed if f.endswith(".j2")) == sorted(source)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", PROBE, str(target)], cwd=str(workdir),
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) >= len(
        [f for f in source if not f.startswith("_")])


def test_sdist_installs_and_renders_every_template(tmp_path):
    dist = tmp_path / "dist"
    sdist = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)],
                           cwd=ROOT, capture_output=True, text=True)
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    (archive,) = list(dist.iterdir())
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-compile", "--target", str(target), str(archive)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", PROBE, str(target)], cwd=str(workdir),
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
