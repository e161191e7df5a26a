"""``theorylab verify`` / ``python -m verify``: flags, table and JSON output, exit codes, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from theorylab.cli import main
from verify.claims import CLAIMS, Claim, stats


class _Toy(Claim):
    kind = "bound"
    issue = "Foundation"
    description = "toy bound claim for the CLI tests"

    def __init__(self, bound):
        self.bound = bound

    def config(self, budget):
        return {"bound": self.bound, "R": 20}

    def run(self, ctx):
        if self.bound is None:
            raise ValueError("toy error inside a claim")
        rng = np.random.default_rng(self.full_config(ctx)["seed"])
        x = rng.normal(1.0, 0.01, size=(20, 3))
        return self.make_result({"toy": stats.bound_rule([self.bound] * 3, x)})


@pytest.fixture
def toys(monkeypatch):
    for name, bound in (("cli_pass", 10.0), ("cli_fail", 0.5), ("cli_error", None)):
        cls = type(name, (_Toy,), {"name": name})
        monkeypatch.setitem(CLAIMS, name, cls(bound))


def _verify(tmp_path, *args):
    return main(["verify", "--quiet", "--results", str(tmp_path), "--no-figures", *args])


def test_exit_codes_and_table(tmp_path, toys, capsys):
    assert _verify(tmp_path, "--claims", "cli_pass") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:6] == [
        "claim", "kind", "predicted", "measured", "interval", "verdict"
    ]  # fmt: skip
    assert "cli_pass" in out and "bound/measured = " in out and "1/1 claims pass" in out
    assert _verify(tmp_path, "--claims", "cli_pass", "cli_fail") == 1
    assert _verify(tmp_path, "--claims", "cli_error") == 1
    captured = capsys.readouterr()
    assert "ERROR" in captured.out and "ValueError: toy error" in captured.err
    # unknown claim names are bad arguments (exit 2), reported before anything runs
    assert _verify(tmp_path, "--claims", "no_such_claim") == 2
    assert "unknown claim" in capsys.readouterr().err


def test_json_output_and_resume(tmp_path, toys, capsys):
    assert _verify(tmp_path, "--claims", "cli_pass", "cli_fail", "--json", "--seed", "3") == 1
    payload = json.loads(capsys.readouterr().out)
    rows = {r["claim"]: r for r in payload["results"]}
    assert rows["cli_pass"]["verdict"] == "pass" and rows["cli_fail"]["verdict"] == "fail"
    assert rows["cli_pass"]["config"]["seed"] == 3
    assert rows["cli_pass"]["predicted"] == 10.0
    assert len(list(tmp_path.glob("cli_*.json"))) == 2
    stamp = rows["cli_pass"]["timestamp"]
    # a second run resumes from the saved results (same timestamps), --force recomputes
    _verify(tmp_path, "--claims", "cli_pass", "--json", "--seed", "3")
    assert json.loads(capsys.readouterr().out)["results"][0]["timestamp"] == stamp


def test_list(toys, capsys):
    assert main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    assert "cli_pass" in out and "toy bound claim" in out
    assert main(["verify", "--list", "--json"]) == 0
    names = [c["claim"] for c in json.loads(capsys.readouterr().out)["claims"]]
    assert "cli_fail" in names


def test_bad_flags_exit_2(tmp_path, capsys):
    assert _verify(tmp_path, "--world-size", "1") == 2
    assert _verify(tmp_path, "--backend", "nccl") == 2  # nccl needs --device cuda
    if not torch.cuda.is_available():
        assert _verify(tmp_path, "--device", "cuda") == 2  # fails before any claim runs
        assert not list(tmp_path.rglob("*.json"))
    with pytest.raises(SystemExit):
        _verify(tmp_path, "--quick", "--full")


def test_python_m_verify_lists_claims():
    proc = subprocess.run(
        [sys.executable, "-m", "verify", "--list"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    # grouped by lecture question: "QUESTION?" then "  name (kind): sentence" per claim
    assert proc.stdout.splitlines()[0].endswith("?")
    listed = {
        line.split()[0]
        for line in proc.stdout.splitlines()
        if line.startswith("  ") and " (" in line
    }
    foundation = {"gossip_decay", "dsgd_exact_curve", "executors_agree", "psgd_floor_shape"}
    assert foundation | {"dsgd_bound"} <= listed


@pytest.mark.distributed
def test_end_to_end_quick_run_and_resume(tmp_path):
    # the real thing: two foundation claims (one on a 2-rank gloo pool, one simulated) through
    # `python -m verify`, then a resumed second run that starts no process and recomputes nothing
    pytest.importorskip("theorylab.topology")
    pytest.importorskip("theorylab.spectral")
    cmd = [
        sys.executable, "-m", "verify", "--quick", "--world-size", "2", "--results",
        str(tmp_path), "--claims", "executors_agree", "psgd_floor_shape", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert rows["executors_agree"][1] == "exact" and rows["executors_agree"][-2] == "pass"
    assert rows["psgd_floor_shape"][1] == "shape" and rows["psgd_floor_shape"][-2] == "pass"
    assert "2/2 claims pass" in proc.stdout
    saved = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.json"))
    assert saved == ["executors_agree", "psgd_floor_shape"]
    assert (tmp_path / "figures" / "executors_agree.png").exists()
    result = json.loads(next(tmp_path.glob("executors_agree-*.json")).read_text())
    assert result["backend"] == "gloo" and result["world_size"] == 2
    assert result["bytes_sent"] > 0 and result["measured"] <= 1e-10

    again = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    payload = json.loads(again.stdout)
    stamps = {r["claim"]: r["timestamp"] for r in payload["results"]}
    assert stamps["executors_agree"] == result["timestamp"]  # resumed, not recomputed


# ---- the plugin registry: theorylab finds `verify` without importing it -------------------------
def _theorylab_alone(tmp_path, *argv):
    """Run ``theorylab ARGV`` where only the theorylab package is importable (no verify)."""
    from pathlib import Path

    import theorylab

    alone = tmp_path / "alone"
    if not alone.exists():
        alone.mkdir()
        (alone / "theorylab").symlink_to(Path(theorylab.__file__).parent)
    # an installed checkout (CI: pip install -e .) has verify's entry point and an editable
    # finder for it: hide the package itself, as if only theorylab were installed
    code = (
        "import sys\n"
        "class HideVerify:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'verify' or name.startswith('verify.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, HideVerify())\n"
        "from theorylab.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(alone), "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=alone,
        env=env,
    )


def test_theorylab_alone_has_every_theory_command(tmp_path):
    proc = _theorylab_alone(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("topology", "weights", "design", "compressors"):
        assert name in proc.stdout
    assert "\n    verify " not in proc.stdout  # no `verify` subcommand line
    proc = _theorylab_alone(tmp_path, "topology", "ring", "--n", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    # design --calibrate needs verify's calibrator: a clear message, no traceback
    proc = _theorylab_alone(
        tmp_path, "design", "--n", "8", "--max-degree", "2", "--calibrate", "--json"
    )
    assert proc.returncode == 2
    assert "needs the `verify` package" in proc.stderr and "Traceback" not in proc.stderr
    proc = _theorylab_alone(tmp_path, "verify", "--list")
    assert proc.returncode == 2 and "invalid choice: 'verify'" in proc.stderr


def test_verify_registers_itself_from_a_checkout():
    # PYTHONPATH runs have no entry-point metadata: the fallback import finds verify.cli
    from theorylab.commands import Registry, registry

    registry.load_plugins()
    assert registry.commands["verify"] == "verify.cli"
    assert "gloo-ping-pong" in registry.calibrators
    fresh = Registry({})
    fresh.load_plugins()
    assert set(fresh.commands) == {"verify", "figures"} and fresh.errors == {}
    proc = subprocess.run(
        [sys.executable, "-m", "theorylab.cli", "verify", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith("?") and "dsgd_exact_curve (exact)" in proc.stdout


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch):
    # an installed package adds a command through the `theorylab.commands` entry-point group
    from importlib.metadata import EntryPoint

    import theorylab.commands as commands

    (tmp_path / "toy_plugin.py").write_text(
        "HELP = 'a toy command'\n"
        "def add_arguments(parser):\n    parser.add_argument('--x', type=int, default=1)\n"
        "def run(args):\n    print('toy', args.x)\n    return 0\n"
        "def register(registry):\n    registry.add_command('toy', __name__)\n"
        "    registry.add_calibrator('toy', lambda: None)\n"
        "def broken(registry):\n    raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = commands.ENTRY_POINT_GROUP
    eps = [
        EntryPoint(name="toy", value="toy_plugin:register", group=group),
        EntryPoint(name="broken", value="toy_plugin:broken", group=group),
    ]
    monkeypatch.setattr(commands, "entry_points", lambda group: eps)
    reg = commands.Registry(commands.BUILTIN)
    reg.load_plugins()
    assert "RuntimeError: boom" in reg.errors["broken"]  # recorded, the others still load
    assert reg.commands["toy"] == "toy_plugin" and "verify" in reg.commands  # + the fallback
    assert reg.load_command("toy").HELP == "a toy command"
    with pytest.raises(ValueError, match="already provided"):
        reg.add_command("toy", "another_module")
    with pytest.raises(ValueError, match="unknown command 'nope'"):
        reg.load_command("nope")
    with pytest.raises(ValueError, match="unknown calibrator 'nope'"):
        reg.calibrator("nope")
    # through the real command line
    monkeypatch.setattr(commands, "registry", reg)
    import theorylab.cli as cli

    monkeypatch.setattr(cli, "registry", reg)
    assert cli.main(["toy", "--x", "3"]) == 0


def test_calibrator_missing_is_a_clear_error(monkeypatch):
    import theorylab.commands as commands

    monkeypatch.setattr(commands, "FALLBACK_PLUGINS", ())
    monkeypatch.setattr(commands, "entry_points", lambda group: [])
    reg = commands.Registry(commands.BUILTIN)
    with pytest.raises(ValueError, match="needs the `verify` package .* give --alpha and --beta"):
        reg.calibrator()


def test_wall_clock_claims_run_only_when_asked():
    from verify.claims import CLAIMS
    from verify.report import select_claims

    timing = {c.name for c in CLAIMS.values() if c.wall_clock}
    assert {"psgd_dsgd_speedup", "async_straggler_wallclock"} <= timing
    default = {c.name for c in select_claims(None)}
    assert not default & timing and default | timing == set(CLAIMS)
    assert {c.name for c in select_claims(None, wall_clock=True)} == set(CLAIMS)
    assert [c.name for c in select_claims(["psgd_dsgd_speedup"])] == ["psgd_dsgd_speedup"]
