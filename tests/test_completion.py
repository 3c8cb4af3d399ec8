"""`dkron-trio completion bash|zsh`: scripts derived from the parser, run in real shells."""

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from dkron_trio.cli import _build_parser, main
from dkron_trio.completion import Shell, command_words, completion_script


def test_command_words_follow_the_parser() -> None:
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run")
    run.add_argument("--mode", choices=("fast", "slow"))
    run.add_argument("name")
    tree = command_words(parser)
    assert tree[""].subcommands == ("run",)
    assert "--verbose" in tree[""].options
    assert tree["run"].choices == {"--mode": ("fast", "slow")}
    assert set(tree) == {"", "run"}


def test_every_cli_command_is_in_the_tree() -> None:
    tree = command_words(_build_parser())
    assert {"agent", "jobs", "jobs run", "raft remove-peer", "completion"} <= set(tree)
    assert "--server" in tree["agent"].options
    assert tree["completion"].subcommands == ("bash", "zsh")


def test_completion_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    assert "complete -F _dkron_trio dkron-trio" in capsys.readouterr().out
    assert main(["completion", "fish"]) == 2


def _bash_complete(script: Path, words: list[str]) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_dkron_trio; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_bash_script_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "dkron-trio.bash"
    script.write_text(completion_script(_build_parser(), Shell.BASH))
    assert _bash_complete(script, ["dkron-trio", "jo"]) == ["jobs"]
    assert set(_bash_complete(script, ["dkron-trio", "jobs", ""])) >= {"run", "list", "--help"}
    assert _bash_complete(script, ["dkron-trio", "agent", "--serv"]) == ["--server"]
    assert _bash_complete(script, ["dkron-trio", "keygen", "--bytes", ""]) == ["16", "24", "32"]
    assert _bash_complete(script, ["dkron-trio", "--json", "raft", "l"]) == ["list-peers"]


def _zsh_complete(script: Path, words: list[str]) -> list[str]:
    """Run the completion function with zsh's `words`/`CURRENT` and a `compadd` that prints."""
    line = " ".join(f"'{w}'" for w in words)
    program = (
        "compdef() { :; }\n"
        'compadd() { shift; print -l -- "$@"; }\n'
        f"source {script}\n"
        f"words=({line}); CURRENT={len(words)}\n"
        "_dkron_trio\n"
    )
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, check=True)
    prefix = words[-1]
    return [w for w in done.stdout.split() if w.startswith(prefix)]


def test_zsh_script_completes_commands_options_and_choices(tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.fail("zsh is needed (scripts/test installs it)")
    script = tmp_path / "_dkron-trio"
    script.write_text(completion_script(_build_parser(), Shell.ZSH))
    subprocess.run(["zsh", "-n", str(script)], check=True)
    assert _zsh_complete(script, ["dkron-trio", "jo"]) == ["jobs"]
    assert "remove-peer" in _zsh_complete(script, ["dkron-trio", "raft", ""])
    assert _zsh_complete(script, ["dkron-trio", "keygen", "--bytes", ""]) == ["16", "24", "32"]
