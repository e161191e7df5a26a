"""A results folder is untrusted input (issue 7, item 10).

Every hostile entry is skipped with a :class:`ResultFileWarning` naming it, and a claim whose
saved result is invalid is recomputed; nothing hangs (a FIFO), crashes (a directory, deep
nesting, a string ``wall_s``), writes outside the folder (a ``claim`` of ``../../x/y``) or
resumes a result stored for another configuration. A SIGALRM guard turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from verify.claims import CLAIMS, Claim, ClaimContext, stats
from verify.report import (
    MAX_JSON_DEPTH,
    ResultFileError,
    ResultFileWarning,
    format_results,
    load_result,
    load_results,
    result_path,
    run_claims,
)

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and SIGALRM")


class _Toy(Claim):
    name = "faults_toy"
    kind = "bound"
    issue = "Foundation"
    description = "toy claim for the results-folder tests"
    calls = 0

    def config(self, budget):
        return {"R": 20}

    def run(self, ctx):
        type(self).calls += 1
        x = np.random.default_rng(0).normal(1.0, 0.01, size=(20, 3))
        return self.make_result({"toy": stats.bound_rule([10.0] * 3, x)})


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(CLAIMS, _Toy.name, _Toy())
    _Toy.calls = 0
    return _Toy


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) if the test blocks for 20 s."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def alarm(signum, frame):
        raise TimeoutError("blocked for 20 s (a FIFO opened for reading?)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _ctx():
    return ClaimContext(world_size=2)  # the toy never starts the pool


def _path(tmp_path):
    return result_path(tmp_path, _Toy.name, CLAIMS[_Toy.name].full_config(_ctx()))


def _good_result(tmp_path) -> dict:
    """Run the toy once and return its saved JSON (the toy's call count is then 1)."""
    run_claims([_Toy.name], _ctx(), tmp_path, figures=False)
    return json.loads(_path(tmp_path).read_text())


def _rerun_recomputes(tmp_path, toy, match: str) -> None:
    """Running again warns (``match``), recomputes, and leaves a valid result behind."""
    before = toy.calls
    with pytest.warns(ResultFileWarning, match=match):
        (result,) = run_claims([_Toy.name], _ctx(), tmp_path, figures=False)
    assert result.verdict == "pass" and toy.calls == before + 1
    assert format_results([result])  # the table can be printed
    assert load_result(_path(tmp_path)).verdict == "pass"  # replaced by a valid file
    run_claims([_Toy.name], _ctx(), tmp_path, figures=False)
    assert toy.calls == before + 1  # ... which the next run resumes


def test_valid_result_round_trips_and_is_resumed(tmp_path, toy):
    data = _good_result(tmp_path)
    assert load_result(_path(tmp_path)).to_dict() == data
    run_claims([_Toy.name], _ctx(), tmp_path, figures=False)
    assert toy.calls == 1


def test_claim_with_path_traversal_is_refused_and_never_names_a_file(tmp_path, toy):
    data = _good_result(tmp_path)
    data["claim"] = "../../x/y"
    (tmp_path / "evil.json").write_text(json.dumps(data))
    with pytest.warns(ResultFileWarning, match=r"evil\.json: field 'claim' must be a claim name"):
        results = load_results(tmp_path)
    assert [r.claim for r in results] == [_Toy.name]
    with pytest.raises(ValueError, match="names a file"):
        result_path(tmp_path, "../../x/y", {})
    # figures.plot goes through load_results: nothing is drawn outside the folder
    from figures.plot import redraw

    with pytest.warns(ResultFileWarning):
        paths = redraw(tmp_path)
    assert [p.name for p in paths] == [f"{_Toy.name}.png"]
    assert not (tmp_path.parent.parent / "x").exists()


@posix_only
def test_fifo_named_like_a_result_does_not_hang(tmp_path, toy, no_hang):
    os.mkfifo(_path(tmp_path))
    os.mkfifo(tmp_path / "other-000000000000.json")
    with pytest.warns(ResultFileWarning, match="not a regular file"):
        assert load_results(tmp_path) == []
    # the run recomputes and replaces the FIFO by the result (os.replace swaps the name)
    _rerun_recomputes(tmp_path, toy, "not a regular file")


@posix_only
def test_symlink_to_a_device_is_refused(tmp_path, toy, no_hang):
    os.symlink("/dev/zero", _path(tmp_path))  # an endless "file"
    _rerun_recomputes(tmp_path, toy, "not a regular file")


def test_directory_named_like_a_result(tmp_path, toy):
    _path(tmp_path).mkdir(parents=True)
    (_path(tmp_path) / "inside").write_text("x")
    with pytest.warns(ResultFileWarning) as record:
        (result,) = run_claims([_Toy.name], _ctx(), tmp_path, figures=False)
    messages = [str(w.message) for w in record]
    assert any("is a directory" in m for m in messages)
    assert any("result not saved" in m for m in messages)  # the folder is not deleted
    assert result.verdict == "pass" and toy.calls == 1
    assert (_path(tmp_path) / "inside").read_text() == "x"


def test_deeply_nested_json(tmp_path, toy):
    _path(tmp_path).write_text("[" * 200_000)  # RecursionError in json.loads
    _rerun_recomputes(tmp_path, toy, "nests deeper than")
    # moderately deep JSON (parsed fine) is refused too: later recursion could not take it
    data = _good_result(tmp_path)
    nested: list = []
    for _ in range(MAX_JSON_DEPTH + 1):
        nested = [nested]
    data["series"] = {"deep": nested}
    _path(tmp_path).write_text(json.dumps(data))
    _rerun_recomputes(tmp_path, toy, "nests deeper than")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("wall_s", "12.5", "'wall_s' must be a finite number"),
        ("wall_s", float("nan"), "'wall_s' must be a finite number"),
        ("wall_s", -1, "'wall_s' must be a finite number"),
        ("measured", "abc", "'measured' must be a number"),
        ("predicted", [1], "'predicted' must be a number"),
        ("interval", [1.0], "'interval' must be a list of two numbers"),
        ("interval", "x", "'interval' must be a list of two numbers"),
        ("verdict", "maybe", "'verdict' must be one of"),
        ("claim", 5, "'claim' must be a claim name"),
        ("kind", None, "'kind' must be a string"),
        ("detail", 3, "'detail' must be a string"),
        ("checks", "x", "'checks' must be a list of objects"),
        ("checks", [{"passed": "yes"}], r"'checks'\[0\]\['passed'\] has the wrong type"),
        ("series", [], "'series' must be an object"),
        ("config", [], "'config' must be an object"),
        ("seeds", [1.5], "'seeds' must be a list of integers"),
        ("versions", {"torch": 2}, "'versions' must be an object of strings"),
        ("world_size", True, "'world_size' must be an integer"),
        ("bytes_sent", -1, "'bytes_sent' must be an integer >= 0"),
        ("timestamp", 0, "'timestamp' must be a string"),
        ("traceback", 1, "'traceback' must be a string or null"),
    ],
)
def test_wrong_types_are_skipped_and_recomputed(tmp_path, toy, field, value, message):
    data = _good_result(tmp_path)
    data[field] = value
    _path(tmp_path).write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match=message):
        load_result(_path(tmp_path))
    _rerun_recomputes(tmp_path, toy, message)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "holds a JSON list"),
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ('{"claim": "faults_toy"}', "'kind' is missing"),
    ],
)
def test_not_a_result_is_skipped_and_recomputed(tmp_path, toy, content, message):
    _path(tmp_path).write_text(content)
    _rerun_recomputes(tmp_path, toy, message)


def test_invalid_utf8_is_skipped(tmp_path, toy):
    _path(tmp_path).write_bytes(b"\xff\xfe{}")
    _rerun_recomputes(tmp_path, toy, "not UTF-8")


def test_result_whose_configuration_does_not_hash_to_its_name_is_not_resumed(tmp_path, toy):
    data = _good_result(tmp_path)
    data["config"]["R"] = 21  # edited in place: the file is not the result of this config
    _path(tmp_path).write_text(json.dumps(data))
    _rerun_recomputes(tmp_path, toy, "name does not match its content")
    # a copy under another name is not loaded either
    good = _path(tmp_path).read_text()
    (tmp_path / "copy.json").write_text(good)
    with pytest.warns(ResultFileWarning, match=r"copy\.json: its name does not match"):
        assert len(load_results(tmp_path)) == 1
    assert len(load_results(tmp_path, check_name=False)) == 2  # opting out of the name check


def test_result_of_another_claim_under_this_name_is_not_resumed(tmp_path, toy):
    data = _good_result(tmp_path)
    data["config"]["claim"] = "gossip_decay"
    _path(tmp_path).write_text(json.dumps(data))
    _rerun_recomputes(tmp_path, toy, "configuration is of claim 'gossip_decay'")


def test_results_folder_that_is_a_file_is_a_clear_error(tmp_path, toy):
    target = tmp_path / "results"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="exists but is not a folder"):
        run_claims([_Toy.name], _ctx(), target, figures=False)


def test_cli_survives_a_hostile_results_folder(tmp_path, toy, capsys, no_hang):
    # the CLI path end to end: every kind of bad entry at once, twice (the last used to repeat
    # on every rerun)
    from theorylab.cli import main

    data = _good_result(tmp_path)
    data["wall_s"] = "12"
    _path(tmp_path).write_text(json.dumps(data))
    (tmp_path / "nested.json").write_text("[" * 200_000)
    (tmp_path / "dir.json").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.json")
    args = ["verify", "--quiet", "--results", str(tmp_path), "--no-figures", "--world-size", "2"]
    with pytest.warns(ResultFileWarning, match="'wall_s' must be"):
        assert main([*args, "--claims", _Toy.name]) == 0
    assert main([*args, "--claims", _Toy.name]) == 0
    assert toy.calls == 2
    assert "1/1 claims pass" in capsys.readouterr().out
