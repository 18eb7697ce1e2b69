"""`--config FILE`: a service's options in one YAML file (schemas/service-config.schema.json), with the
environment over the file and the command line over both, and errors that name the bad key."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO_ROOT, tollgate_binary

SCHEMA = json.loads((REPO_ROOT / "schemas" / "service-config.schema.json").read_text())
# Options that are no service setting: help, and output choices of reporting commands.
NOT_SETTINGS = {"--help", "--version"}


def options_of(command: str) -> set[str]:
    result = subprocess.run([str(tollgate_binary()), *command.split(), "--help"], capture_output=True, text=True,
                            timeout=30, check=True)
    return {match for match in re.findall(r"^\s+(--[a-z][a-z0-9-]*)", result.stdout, re.MULTILINE)} - NOT_SETTINGS


def test_schema_matches_every_service_command():
    commands: dict[str, set[str]] = {}
    for key, spec in SCHEMA["properties"].items():
        for command in spec["x-tollgate-commands"]:
            commands.setdefault(command, set()).add("--" + key.replace("_", "-"))
    assert set(commands) == {"serve", "ingress", "cost", "budget", "alerts run", "projector", "query"}
    for command, keys in commands.items():
        options = options_of(command)
        assert keys - options == set(), f"tollgate {command} lacks options the schema lists: {keys - options}"
        assert options - keys == set(), f"the schema lacks options of tollgate {command}: {options - keys}"


def test_example_file_is_valid_and_a_bad_one_is_not():
    jsonschema.validate({"brokers": "kafka:9092", "port": 4002, "log_format": "json",
                         "kafka_property": ["security.protocol=SASL_SSL"]}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"prot": 4002}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"log_format": "xml"}, SCHEMA)


def log_until_serving(args: list[str], env: dict[str, str]) -> list[str]:
    """Starts `tollgate ARGS`, returns its log lines up to the one saying it serves, and stops it."""
    process = subprocess.Popen([str(tollgate_binary()), *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # bounded: the process is stopped as soon as it serves, or exits
            lines.append(line)
            if "is serving" in line or len(lines) > 50:
                break
        assert any("is serving" in line for line in lines), f"tollgate {' '.join(args)} did not serve:\n" + "".join(lines)
        return lines
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_file_then_environment_then_command_line(tmp_path: Path):
    config = tmp_path / "cost.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: 0\nlog_format: json\nshutdown_timeout: 5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    # From the file: JSON lines, its data directory, and a port (cost serves none without one).
    from_file = [json.loads(line) for line in log_until_serving(["cost", "--config", str(config)], env)]
    assert int(from_file[-1]["tollgate.port"]) > 0
    assert any(line.get("log.path", "").startswith(str(tmp_path / "data")) for line in from_file)
    # The environment over the file, through TOLLGATE_CONFIG as well.
    from_env = log_until_serving(["cost"], {**env, "TOLLGATE_CONFIG": str(config), "TOLLGATE_LOG_FORMAT": "text"})
    assert not from_env[0].startswith("{") and " info " in from_env[0]
    # The command line over both.
    from_args = log_until_serving(["cost", "--config", str(config), "--log-format", "json"],
                                  {**env, "TOLLGATE_LOG_FORMAT": "text"})
    assert json.loads(from_args[0])["message"]


@pytest.mark.parametrize("text, expected", [
    ("data_dir: /tmp/x\nprot: 4002\n", "unknown key 'prot'"),
    ("port: abc\n", "port: The value 'abc' is invalid"),
    ("- port\n", "must be a mapping of option names to values"),
    ("alerts_file: a.yaml\n", "unknown key 'alerts_file'"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, expected: str):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = subprocess.run([str(tollgate_binary()), "cost", "--config", str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 64, result.stderr
    assert expected in result.stderr and str(config) in result.stderr, result.stderr
