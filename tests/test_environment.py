"""The pins: requirements.txt (pip) and environment.yml (conda) must say the same thing."""

import sys
from importlib.metadata import version

import yaml
from packaging.requirements import Requirement

from conftest import ROOT


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier per line ...
        assert spec.operator == "==", f"{line!r} must be pinned exactly with =="
        pins[req.name.lower()] = spec.version
    return pins


def requirement_pins():
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def conda_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip_section,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    return env, _pins(pip_section)


def test_conda_and_pip_pins_agree():
    env, pins = conda_pins()
    assert pins == requirement_pins()
    assert "python=3.11" in env["dependencies"]
    assert "-e ." in [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]


def test_required_pins():
    pins = requirement_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"] == "1.0.4.post1"
    assert pins["nbgrader"] == "0.9.6"


def test_venv_has_the_pinned_versions():
    assert sys.version_info[:2] == (3, 11)
    for name, pinned in requirement_pins().items():
        installed = version(name).split("+")[0]  # torch reports 2.13.0+cpu
        assert installed == pinned, f"{name}: installed {installed}, pinned {pinned}"
