"""Every code example of README.md runs as written.

Each ```python block is written to its own file and run in a fresh interpreter (so a block cannot
lean on names defined by the block before it, and spawned ranks can re-import it); a block that
defines ``test_*`` functions is run under pytest. The shell examples of the command-line table are
run by ``test_command_table`` (all but the ones that start the main job or a GPU run).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)

# Commands of the README's tables and shell blocks that are not run here, with the reason.
NOT_RUN = {
    "theorylab verify": "the main job: .ci/run runs it as installed",
    "--device cuda": "needs a GPU",
    "--full": "the full budget: a separate documented job",
    "--calibrate": "starts a gloo ping-pong; covered by tests/test_calibrate.py",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_readme_has_examples():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.distributed
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs_as_written(index, tmp_path):
    code = PYTHON_BLOCKS[index]
    path = tmp_path / f"readme_block_{index}.py"
    path.write_text(code, encoding="utf-8")
    if re.search(r"^def test_", code, flags=re.M):
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    else:
        cmd = [sys.executable, str(path)]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"block {index}:\n{code}\n{proc.stdout}\n{proc.stderr}"
    assert not list(tmp_path.glob("*.json")) or "--out" in code


def _table_commands() -> list[str]:
    cmds = re.findall(r"^\| `(theorylab [^`]+)` \|", README, flags=re.M)
    return [c for c in cmds if not any(skip in c for skip in NOT_RUN)]


@pytest.mark.parametrize("command", _table_commands())
def test_command_table(command, tmp_path):
    argv = shlex.split(command)
    cmd = [sys.executable, "-m", "theorylab.cli", *argv[1:]]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
