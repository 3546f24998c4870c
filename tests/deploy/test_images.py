"""Dockerfiles: hadolint clean, and what they run matches what the manifests expect."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    ins = instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def one(ins: list[tuple[str, str]], op: str) -> str:
    found = [rest for o, rest in ins if o == op]
    assert len(found) == 1, f"expected one {op}, got {found}"
    return found[0]


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", ["Dockerfile.app", "Dockerfile.operator"])
def test_hadolint_clean(name: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, "--no-color", str(ROOT / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # no blanket ignores hidden in the file
    assert "hadolint ignore" not in (ROOT / name).read_text()


@pytest.mark.parametrize(("name", "script"), [("Dockerfile.app", "gong-webhook-app"),
                                              ("Dockerfile.operator", "gong-webhook-operator")])
def test_image_runtime_contract(name: str, script: str) -> None:
    stage = final_stage(ROOT / name)
    entrypoint = json.loads(one(stage, "ENTRYPOINT"))  # exec form is a JSON array
    assert entrypoint == [script]
    assert script in console_scripts()
    assert one(stage, "USER") == "1000:1000"
    assert any("useradd --uid 1000 --gid 1000" in rest for op, rest in stage if op == "RUN")
    env = " ".join(rest for op, rest in stage if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    labels = " ".join(rest for op, rest in stage if op == "LABEL")
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.version",
                "org.opencontainers.image.licenses"):
        assert key in labels
    # the runtime stage has no compiler toolchain installed
    assert not any("gcc" in rest or "build-essential" in rest for op, rest in stage if op == "RUN")
    base = [rest for op, rest in instructions(ROOT / name) if op == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert base and re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", base[0]), base


def _assert_pod_matches_image(pod_spec: dict[str, Any], container: dict[str, Any], port: int | None) -> None:
    # The Deployment relies on the image's ENTRYPOINT: it must not override the command.
    assert "command" not in container
    psc, csc = pod_spec["securityContext"], container.get("securityContext", {})
    assert psc["runAsUser"] == 1000 and psc["runAsGroup"] == 1000
    assert csc.get("runAsUser", 1000) == 1000 and csc["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    if port is not None:
        assert port in [p["containerPort"] for p in container["ports"]]


def test_operator_rendered_app_deployment_matches_app_image() -> None:
    from gong_operator import children
    from gong_operator.spec import GongWebhookSpec
    from webhook_app import contract

    stage = final_stage(ROOT / "Dockerfile.app")
    exposed = int(one(stage, "EXPOSE"))
    assert exposed == contract.CONTAINER_PORT
    spec = GongWebhookSpec.model_validate({"secrets": {"sourceRef": {"name": "src"}}})
    dep = children.deployment(spec, children.Owner("gw", "ns", "uid-1"), content_hash="h")
    pod = dep["spec"]["template"]["spec"]
    _assert_pod_matches_image(pod, pod["containers"][0], exposed)


def test_operator_manager_deployment_matches_operator_image() -> None:
    stage = final_stage(ROOT / "Dockerfile.operator")
    exposed = int(one(stage, "EXPOSE"))
    dep = yaml.safe_load((ROOT / "config" / "manager" / "manager.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    _assert_pod_matches_image(pod, container, exposed)
    # its arguments are ones the operator CLI accepts
    from gong_operator.cli import parse_args

    parse_args(container["args"])
