"""CLI polish (issue 25, item 7): every option of ``python -m ingest``, ``queries``, ``simulator`` (and the fake
Graph server) has help and shows its default; bad arguments exit 2 with one line and no traceback; a missing input
file is named in the summary line; ``simulator --end`` defaults to this hour, so its data is in the default view."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

import pytest

from ingest import cliargs, exitcodes
from tests.conftest import run_cli


def parsers() -> dict[str, argparse.ArgumentParser]:
    from ingest.cli import build_parser as ingest_parser
    from queries.cli import build_parser as queries_parser
    from simulator.__main__ import build_parser as simulator_parser
    from simulator.graph_server import build_parser as graph_server_parser

    return {"ingest": ingest_parser(), "queries": queries_parser(), "simulator": simulator_parser(),
            "simulator.graph_server": graph_server_parser()}


def walk(parser: argparse.ArgumentParser, path: str):
    """(path, parser) for ``parser`` and every subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


def every_parser():
    for name, parser in parsers().items():
        yield from walk(parser, name)


def test_every_option_has_help_and_shows_its_default():
    missing, no_default, checked = [], [], 0
    for path, parser in every_parser():
        assert isinstance(parser, cliargs.Parser), path  # one-line errors, defaults in the help
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            checked += 1
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {name}")
                continue
            default = action.default
            if action.option_strings and default not in (None, False, [], argparse.SUPPRESS):
                shown = formatter._expand_help(action)
                if "default" not in shown.lower():
                    no_default.append(f"{path} {name}")
    assert missing == [] and no_default == []
    assert checked > 100  # the walk reached the subcommands' options
    demo = dict(every_parser())["ingest demo"].format_help()
    assert "(default: 7)" in demo and "(default: 200)" in demo  # the seed and users of the demo


@pytest.mark.parametrize("argv", [
    ["simulator", "--users", "20", "--out", "{tmp}/out"],
    ["simulator", "--days", "0", "--out", "{tmp}/out"],
    ["simulator", "--users", "20"],
    ["simulator", "--end", "tomorrow", "--out", "{tmp}/out"],
    ["simulator.graph_server", "--fault", "3:teapot"],
    ["ingest", "demo", "--users", "20", "--db", "{tmp}/d.duckdb"],
    ["ingest", "demo", "--days", "0", "--db", "{tmp}/d.duckdb"],
    ["ingest", "demo", "--end", "soon", "--db", "{tmp}/d.duckdb"],
    ["ingest", "graph", "--top", "lots", "--db", "{tmp}/d.duckdb"],
    ["ingest", "files", "--db", "{tmp}/d.duckdb"],
    ["ingest", "fetch-everything"],
    ["queries", "export", "events", "--db", "{tmp}/d.duckdb"],
    ["queries", "export", "events", "--format", "xml", "--out", "{tmp}/e.xml"],
])
def test_bad_arguments_exit_2_with_one_line(argv, tmp_path):
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv], timeout=120)
    assert proc.returncode == exitcodes.USAGE, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_the_reason_is_in_the_line(tmp_path):
    proc = run_cli("ingest", "demo", "--users", "20", "--db", str(tmp_path / "d.duckdb"))
    assert "--users" in proc.stderr and "at least 25" in proc.stderr
    proc = run_cli("simulator", "--days", "0", "--out", str(tmp_path / "o"))
    assert "--days" in proc.stderr and "more than 0" in proc.stderr


def test_a_missing_input_file_is_named_in_the_summary(sim_dir, tmp_path):
    absent = tmp_path / "exports" / "march.json"
    proc = run_cli("ingest", "files", str(sim_dir / "graph"), str(absent), "--db", str(tmp_path / "f.duckdb"), "-q")
    summary = next(line for line in proc.stderr.splitlines() if line.startswith("ingest files:"))
    assert "1 rejected" in summary and f"not found: {absent}" in summary
    proc = run_cli("ingest", "scim", str(absent), "--db", str(tmp_path / "s.duckdb"), "-q")
    summary = next(line for line in proc.stderr.splitlines() if line.startswith("ingest scim:"))
    assert f"not found: {absent}" in summary


def test_simulator_end_defaults_to_this_hour(tmp_path):
    def hour() -> datetime:
        return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)

    before = hour()
    proc = run_cli("simulator", "--out", str(tmp_path / "out"), "--users", "25", "--days", "2", timeout=120)
    after = hour()
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "out" / "ground-truth.json").read_text(encoding="utf-8"))
    end = datetime.fromisoformat(truth["end"].replace("Z", "+00:00"))
    assert end in (before, after)
    newest = max(datetime.fromisoformat(json.loads(line)["activityDateTime"].replace("Z", "+00:00"))
                 for line in (tmp_path / "out" / "events.ndjson").read_text(encoding="utf-8").splitlines() if line)
    assert datetime.now(timezone.utc) - timedelta(days=30) < newest <= end  # inside the dashboard's default 30 days
    helptext = run_cli("simulator", "--help").stdout
    assert "now rounded down to the hour" in " ".join(helptext.split())
