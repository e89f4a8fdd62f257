import json
import os
import subprocess
import sys

import pytest

from feedback_loop import cli, registry


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "feedback_loop.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )


def test_register_promote_list_rollback_history_through_the_cli(conn, capsys):
    assert cli.main(["model", "register", "--model", "digits", "--train", "--promote", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["version"] == 1 and first["promoted"] is True and first["accuracy"] > 0.8
    assert cli.main(["model", "register", "--model", "digits", "--train"]) == 0
    assert "registered digits v2" in capsys.readouterr().out
    assert cli.main(["model", "promote", "--model", "digits", "--version", "2", "--reason", "better"]) == 0
    capsys.readouterr()
    assert cli.main(["model", "list", "--model", "digits", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["champion"]) for v in listed] == [(1, False), (2, True)]
    assert cli.main(["model", "rollback", "--model", "digits", "--reason", "regression", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert registry.champion(conn, "digits").version == 1
    assert cli.main(["model", "history", "--model", "digits", "--json"]) == 0
    actions = [e["action"] for e in json.loads(capsys.readouterr().out)]
    assert actions == ["promote", "promote", "rollback"]


def test_rollback_with_no_earlier_version_exits_non_zero_with_one_line(conn):
    assert cli.main(["model", "register", "--model", "digits", "--train", "--promote"]) == 0
    result = run_cli("model", "rollback", "--model", "digits")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nothing earlier to roll back to" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "rollback", "--model", "ghost"], "unknown model 'ghost'"),
        (["model", "promote", "--model", "ghost", "--version", "1"], "unknown model 'ghost'"),
        (["model", "register", "--model", "ghost", "--train"], "unknown model 'ghost'; configured models"),
        (["model", "promote", "--model", "digits", "--version", "0"], "expected a positive integer"),
        (["model", "promote", "--model", "digits"], "--version"),
    ],
)
def test_bad_input_exits_2_with_a_reason(conn, args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_unknown_version_exits_2(conn):
    assert cli.main(["model", "register", "--model", "digits", "--train"]) == 0
    result = run_cli("model", "promote", "--model", "digits", "--version", "7")
    assert result.returncode == 2
    assert "has no version 7" in result.stderr


def test_every_command_has_help():
    for args in (
        ["--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["model", "--help"],
        ["model", "list", "--help"],
        ["model", "register", "--help"],
        ["model", "promote", "--help"],
        ["model", "rollback", "--help"],
        ["model", "history", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(args)
        assert exit_info.value.code == 0
