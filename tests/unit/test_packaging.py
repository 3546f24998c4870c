"""The installed environment: import names and console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_stdlib_operator_is_not_shadowed() -> None:
    # Run in a fresh interpreter from the repo root, where the operator/ folder sits,
    # with -I so only the installed environment decides what `operator` is.
    root = Path(__file__).resolve().parents[2]
    code = "import operator, gong_operator; print(operator.__file__); print(operator.itemgetter(1)([5, 7]))"
    for flags in ([], ["-I"]):
        out = subprocess.run(
            [sys.executable, *flags, "-c", code], cwd=root, capture_output=True, text=True, check=True
        ).stdout.split()
        assert "site-packages" not in out[0] and not out[0].startswith(str(root)), out[0]
        assert out[1] == "7"


def test_python_dash_m_works_from_the_repo_root() -> None:
    # `python -m` puts the working directory first on sys.path before runpy (and with it
    # collections -> operator) is imported; an operator/__init__.py at the root once broke
    # `python -m pip` in CI this way. operator/ must stay a plain folder.
    root = Path(__file__).resolve().parents[2]
    assert not (root / "operator" / "__init__.py").exists()
    for module in ("pip", "pytest"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", ["gong-webhook-operator", "gong-webhook-app", "gong-webhook-loader"])
def test_console_scripts_answer_help(script: str) -> None:
    exe = Path(sys.executable).parent / script
    assert exe.exists() or shutil.which(script), f"{script} is not installed"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
