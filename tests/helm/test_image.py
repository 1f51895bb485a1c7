"""The container image, as far as it can be checked without a Docker engine.

The Dockerfile's structure is read as text; what its builder stage does (a wheel from exactly the files
the build context and COPY lines provide, installed with its dependencies) is replayed with pip in a
fresh virtualenv, and the installed console script and packaged Avro schema are exercised from there.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_with_a_slim_python_311_base() -> None:
    instructions = _instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    assert args["PYTHON_VERSION"] == "3.11"
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0][1].startswith("python:${PYTHON_VERSION}-slim")
    builder, final = stages[0], stages[-1]
    assert any(k == "RUN" and "pip wheel" in a for k, a in builder)
    # The final stage installs the builder's wheels offline and carries no compiler or package manager run.
    final_runs = " ".join(a for k, a in final if k == "RUN")
    assert "--no-index" in final_runs and "from=builder" in final_runs
    assert "apt-get" not in final_runs and "build-essential" not in final_runs
    assert "pip uninstall -y pip setuptools wheel" in final_runs


def test_image_runs_the_connector_as_a_non_root_user() -> None:
    final = dict(_stages()[-1])
    user = final["USER"].split(":")
    assert all(part.isdigit() and int(part) != 0 for part in user)  # numeric: runAsNonRoot can verify it
    assert json.loads(final["ENTRYPOINT"]) == ["personalize-connector"]
    assert json.loads(final["CMD"]) == ["run", "--config", "/etc/personalize-connector/config.yaml"]
    assert final["EXPOSE"] == "9400"
    # The chart runs it with the same UID and relies on the entrypoint (it sets args only).
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(user[0])


def _context_files() -> list[Path]:
    """Files of the repository that the .dockerignore allowlist sends to the Docker daemon."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allowlist"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    denied = [p for p in patterns[1:] if not p.startswith("!")]
    files: list[Path] = []
    for path in REPO_ROOT.rglob("*"):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if not path.is_file() or rel.startswith(".venv/"):
            continue
        if not any(rel == a or rel.startswith(a + "/") for a in allowed):
            continue
        # "**/name" excludes any path component matching name
        parts = rel.split("/")
        if any(fnmatch.fnmatch(rel, d) or any(fnmatch.fnmatch(p, d.removeprefix("**/")) for p in parts)
               for d in denied):
            continue
        files.append(path)
    return files


def test_build_context_holds_the_package_and_nothing_heavy() -> None:
    rel = {p.relative_to(REPO_ROOT).as_posix() for p in _context_files()}
    assert {"pyproject.toml", "README.md", "avro_schemas/interaction_event.avsc", "connector/cli.py"} <= rel
    assert not any(r.startswith(("tests/", "helm/", ".git/", "docs/")) or "__pycache__" in r for r in rel)


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    # The builder stage's input: only the build context (.dockerignore) ...
    src = tmp_path / "src"
    for path in _context_files():
        target = src / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    wheels = tmp_path / "wheels"
    # ... built into a wheel (`pip wheel --no-deps .`, as the Dockerfile's last builder step) ...
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(src)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("personalize_kafka_connector-*.whl")
    # ... and installed with its dependencies into an environment that has nothing else.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True, timeout=600,
    )

    help_text = subprocess.run(
        [str(env_dir / "bin" / "personalize-connector"), "--help"],
        capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
    ).stdout
    assert "run" in help_text and "emulator" in help_text
    run_help = subprocess.run(
        [str(env_dir / "bin" / "personalize-connector"), "run", "--help"],
        capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
    ).stdout
    assert "--config" in run_help

    probe = (
        "import json, connector, avro_schemas\n"
        "from importlib.resources import files\n"
        "schema = json.loads((files('avro_schemas') / 'interaction_event.avsc').read_text())\n"
        "import connector.config, connector.app\n"
        "print(json.dumps({'connector': connector.__file__, 'schema': schema['name'],\n"
        "                  'read': json.loads(avro_schemas.read())['name']}))\n"
    )
    out = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
    ).stdout
    found = json.loads(out)
    assert Path(found["connector"]).is_relative_to(env_dir)  # the wheel's copy, not the repository's
    assert found["schema"] == found["read"]
    assert found["schema"]
