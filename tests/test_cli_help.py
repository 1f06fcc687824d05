"""`cmdnet --help` says what the tool does; every command has a one-line description and an example; every
argument has help text that states its default; `--version` prints the version."""

from __future__ import annotations

import argparse

import pytest

from cmdnet import __version__
from cmdnet.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: str = "cmdnet"):
    """(name, parser) of the tool and of every subcommand, recursively."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


def test_top_level_help_says_what_the_tool_does():
    text = build_parser().format_help()
    assert "microvascular invasion" in text and "HCC" in text and "not a medical device" in text
    for command in ("convert", "synth", "predict", "export", "stats"):
        assert f"    {command}" in text, f"{command} missing from the command list"


@pytest.mark.parametrize("name,parser", list(_commands(build_parser())), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_a_description_an_example_and_documented_arguments(name, parser):
    assert parser.description and len(parser.description.splitlines()[0]) > 20, f"{name}: no description"
    if name != "cmdnet":
        assert parser.epilog and parser.epilog.startswith("example") and "cmdnet " in parser.epilog, \
            f"{name}: no example"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} {label}: no help text"
        has_default = action.option_strings and action.default not in (None, False) and not action.required
        if has_default and not isinstance(action, argparse._VersionAction):
            assert "default" in action.help, f"{name} {label}: help does not state the default {action.default!r}"


def test_predict_help_says_which_arguments_single_patient_mode_needs():
    text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    assert "--pre DIR --pre-mask FILE --hbp DIR --hbp-mask FILE" in text.splitlines()[0]
    assert "required unless --cohort" in text


def test_version_prints_the_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"cmdnet {__version__}"


def test_an_input_error_stays_one_line_on_stderr(tmp_path, capsys):
    assert main(["predict", "--bundle", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cmdnet: error:") and "not a model bundle" in err[0]
