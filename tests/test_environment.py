"""The pins: requirements.txt, requirements.lock, environment.yml and the venv agree."""

import sys
import sysconfig
from importlib.metadata import distributions, version
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier per line ...
        assert spec.operator == "==", f"{path.name}: {line!r} must be pinned exactly with =="
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def requirement_pins():
    return _pins(ROOT / "requirements.txt")


def lock_pins():
    return _pins(ROOT / "requirements.lock")


def test_required_pins():
    pins = requirement_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"] == "1.0.4.post1"
    assert pins["nbgrader"] == "0.9.6"


def test_lock_pins_every_direct_dependency_at_its_version():
    lock = lock_pins()
    for name, pinned in requirement_pins().items():
        assert lock.get(name) == pinned, f"{name}: requirements.txt {pinned}, lock {lock.get(name)}"
    # no local label: conda's CPU build of torch must satisfy the lock too
    assert "+" not in lock["torch"]


def test_conda_environment_installs_the_lock_and_cpu_torch():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    (pip_section,) = [d["pip"] for d in deps if isinstance(d, dict)]
    assert pip_section == ["-r requirements.lock", "-e ."]
    assert "python=3.11" in deps
    lock = lock_pins()
    assert f"pip={lock['pip']}" in deps
    assert f"pytorch={lock['torch']}=cpu_*" in deps, "conda must install torch's CPU-only build"


def test_venv_has_exactly_the_locked_packages():
    assert sys.version_info[:2] == (3, 11)
    lock = lock_pins()
    # Only what pip installed into the venv: setuptools puts its own vendored copies (jaraco.*,
    # more-itertools, ...) on sys.path once something imports it; those are not installed.
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in distributions()
        if Path(str(d.locate_file(""))).resolve() == site
    }
    installed.pop("bptt", None)  # the course package itself, installed editable
    unlocked = sorted(set(installed) - set(lock))
    assert not unlocked, f"installed but not in requirements.lock (run make lock): {unlocked}"
    for name, pinned in lock.items():
        got = installed.get(name, "missing").split("+")[0]  # torch reports 2.13.0+cpu
        assert got == pinned, f"{name}: installed {got}, locked {pinned}"
    assert version("torch").endswith("+cpu") or not __import__("torch").version.cuda
