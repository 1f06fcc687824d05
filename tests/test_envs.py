"""The conda environments of the rules ask for the same packages and versions as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"simpleitk": "simpleitk", "pyyaml": "pyyaml", "matplotlib-base": "matplotlib", "pytorch": "torch"}
NOT_PYTHON_PACKAGES = {"pip"}


def _pyproject() -> dict[str, SpecifierSet]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [Requirement(d) for d in deps]
    return {r.name.lower(): r.specifier for r in reqs}


def _env_specs(path: Path) -> dict[str, SpecifierSet]:
    env = yaml.safe_load(path.read_text())
    out = {}
    for dep in env["dependencies"]:
        for line in (dep["pip"] if isinstance(dep, dict) else [dep]):
            name, spec = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", line.strip()).groups()
            if name in NOT_PYTHON_PACKAGES:
                continue
            out[CONDA_TO_PYPI.get(name.lower(), name.lower())] = SpecifierSet(spec.replace(" ", ""))
    return out


ENVS = sorted((REPO / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env_file", ENVS, ids=[p.name for p in ENVS])
def test_env_names_only_pyproject_packages_with_the_same_versions(env_file):
    pinned = _pyproject()
    for name, spec in _env_specs(env_file).items():
        if name == "python":
            requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
            assert spec == SpecifierSet(requires), f"{env_file.name}: python {spec} != requires-python {requires}"
            continue
        assert name in pinned, f"{env_file.name} installs {name}, which pyproject.toml does not list"
        assert spec == pinned[name], f"{env_file.name}: {name} {spec} differs from pyproject.toml's {pinned[name]}"


def test_every_rule_has_a_conda_env_that_exists():
    rules = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    n_rules = len(re.findall(r"^\s*rule \w+:", rules, flags=re.M))
    envs = re.findall(r'conda:\s*\n\s*"([^"]+)"', rules)
    assert len(envs) == n_rules, f"{n_rules} rules but {len(envs)} conda: directives"
    for env in envs:
        assert (REPO / "rules" / env).resolve().is_file(), f"missing conda env {env}"


def test_torch_is_a_range_that_keeps_an_installed_torch():
    """Installing cmdnet into a MONAI or nnU-Net environment must not replace its torch (and its CUDA build)."""
    torch_spec = _pyproject()["torch"]
    assert not any(s.operator == "==" for s in torch_spec), f"torch is pinned exactly: {torch_spec}"
    for version in ("2.3.0", "2.5.1", "2.13.0", "2.14.1"):
        assert version in torch_spec, f"torch {version} should satisfy cmdnet's requirement {torch_spec}"


def test_pip_install_of_cmdnet_into_an_environment_with_torch_installs_no_torch(tmp_path):
    """pip's own resolver, on this environment: installing cmdnet (editable) plans cmdnet alone."""
    import json
    import subprocess
    import sys

    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-build-isolation", "--quiet",
                           "--disable-pip-version-check", "--report", str(report), "-e", str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    planned = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
    assert planned == ["cmdnet"], f"pip would also install {planned}"
