from pathlib import Path

import pytest

from aiki_hooks.config.load import ConfigError, effective_config_toml, load_config, parse_config, redact_url


def test_no_file_gives_working_defaults(isolated_home):
    config = load_config()
    assert config.source == "<defaults>"
    assert config.interval_seconds == 60
    assert config.resources.enabled and config.resources.disk_paths == ("/",)
    assert (config.entries("systemd"), config.entries("http"), config.entries("tcp"), config.entries("command")) == ((), (), (), ())
    assert config.state_dir == isolated_home / ".local" / "state" / "aiki-hooks"
    assert config.cache_path.name == "system_health.json"


def test_state_dir_env_beats_xdg_and_config_beats_env(isolated_home, monkeypatch, write_config):
    monkeypatch.setenv("AIKI_HOOKS_STATE_DIR", "/srv/aiki-state")
    assert load_config().state_dir == Path("/srv/aiki-state")
    write_config('[state]\ndir = "/var/tmp/explicit"\n')
    assert load_config().state_dir == Path("/var/tmp/explicit")


def test_xdg_config_home_and_env_override(isolated_home, monkeypatch, tmp_path):
    custom = tmp_path / "elsewhere.toml"
    custom.write_text("interval_seconds = 15\n")
    monkeypatch.setenv("AIKI_HOOKS_CONFIG", str(custom))
    assert load_config().interval_seconds == 15
    assert load_config().source == str(custom)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(err.value) and "file not found" in str(err.value)


def test_full_config_parses(write_config, monkeypatch):
    write_config(
        """
interval_seconds = 30
[resources]
disk_paths = ["/", "/home"]
disk_warn_percent = 80
disk_crit_percent = 90
[[probes.systemd]]
unit = "aiki-memory.service"
[[probes.systemd]]
unit = "qdrant.service"
scope = "system"
name = "qdrant-unit"
[[probes.http]]
name = "qdrant"
url = "http://localhost:6333"
kind = "qdrant"
api_key_env = "QDRANT_API_KEY"
[[probes.http]]
name = "mem0-api"
url = "http://127.0.0.1:8000/health"
expect_status = 200
[[probes.tcp]]
name = "pg"
host = "127.0.0.1"
port = 5432
[[probes.command]]
name = "backup"
command = ["/usr/bin/true", "-x"]
timeout_seconds = 2.5
"""
    )
    config = load_config()
    assert config.interval_seconds == 30
    assert config.resources.disk_paths == ("/", "/home")
    assert config.resources.disk_used.warn == 80 and config.resources.disk_used.crit == 90
    assert [(u.name, u.unit, u.scope) for u in config.entries("systemd")] == [
        ("aiki-memory.service", "aiki-memory.service", "user"),
        ("qdrant-unit", "qdrant.service", "system"),
    ]
    assert config.entries("http")[0].kind == "qdrant" and config.entries("http")[0].api_key_env == "QDRANT_API_KEY"
    assert config.entries("http")[1].kind == "generic" and config.entries("http")[1].expect_status == (200,)
    assert config.entries("tcp")[0].port == 5432
    assert config.entries("command")[0].command == ("/usr/bin/true", "-x") and config.entries("command")[0].timeout_seconds == 2.5
    assert config.max_probe_timeout == 30.0  # the costs probe (a first full scan can take a while)


def test_all_errors_reported_at_once_with_file_key_value_expectation(write_config):
    path = write_config(
        """
interval_seconds = 0
colour = "blue"
[resources]
cpu_warn_percent = 120
memory_warn_percent = 99
memory_crit_percent = 90
[[probes.http]]
name = "q"
url = "localhost:6333"
timeout_seconds = "3"
[[probes.tcp]]
name = "pg"
host = "127.0.0.1"
port = 70000
[[probes.command]]
name = "bad name!"
command = "check_disk -w 10"
"""
    )
    with pytest.raises(ConfigError) as err:
        load_config()
    text = str(err.value)
    assert str(path) in text
    expected_fragments = [
        "interval_seconds = 0: expected a number >= 0.01",
        "colour: unknown key",
        "resources.cpu_warn_percent = 120: expected a number >= 0 and <= 100",
        "resources.memory_warn_percent = 99: expected <= resources.memory_crit_percent (90)",
        'probes.http[0].url = "localhost:6333": expected an http:// or https:// URL',
        'probes.http[0].timeout_seconds = "3": expected a number >= 0.01 and <= 600',
        "probes.tcp[0].port = 70000: expected a whole number from 1 to 65535",
        'probes.command[0].name = "bad name!"',
        'probes.command[0].command = "check_disk -w 10": expected a non-empty list',
    ]
    for fragment in expected_fragments:
        assert fragment in text, fragment
    assert len(err.value.problems) == len(expected_fragments)


@pytest.mark.parametrize(
    "toml, fragment",
    [
        pytest.param("interval_seconds = true", "interval_seconds = True: expected a number", id="bool-not-number"),
        pytest.param("interval_seconds = " + "9" * 400, ": expected a number >= 0.01", id="int-too-large-for-a-float"),
        pytest.param("[resources]\ncpu_warn_percent = nan", "cpu_warn_percent = nan: expected a number", id="nan"),
        pytest.param("[[probes.tcp]]\nname='a'\nhost='h'", "probes.tcp[0].port: missing (required)", id="missing-key"),
        pytest.param("[probes.tcp]\nname='a'", "probes.tcp = {'name': 'a'}: expected an array of tables (write [[probes.tcp]]", id="table-not-array"),
        pytest.param("[[probes.http]]\nname='a'\nurl='http://x'\napi_key_env='sk-123 secret'",
                     "expected the name of an environment variable", id="key-instead-of-var"),
        pytest.param("[[probes.systemd]]\nunit='a.service'\nscope='root'", 'expected one of "user", "system"', id="scope"),
        pytest.param("[[probes.tcp]]\nname='a'\nhost='h'\nport=1\n[[probes.tcp]]\nname='a'\nhost='h'\nport=2",
                     'probes.tcp[1].name = "a": expected a name not already used by probes.tcp[0]', id="duplicate-name"),
        pytest.param("[[probes.systemd]]\nunit='qdrant.service'\nname='q'\n[[probes.http]]\nname='q'\nurl='http://x'",
                     'probes.http[0].name = "q": expected a name not already used by probes.systemd[0]',
                     id="duplicate-across-kinds"),
        pytest.param("[[probes.tcp]]\nname='memory'\nhost='h'\nport=1",
                     'probes.tcp[0].name = "memory": expected a name not already used by the resources probe',
                     id="reserved-name"),
        pytest.param("[resources]\ndisk_warn_free_gib = 1\ndisk_crit_free_gib = 5",
                     "disk_warn_free_gib = 1: expected >= resources.disk_crit_free_gib", id="low-thresholds-inverted"),
        pytest.param("[state]\ndir = 'relative/path'", "expected an absolute path", id="relative-state-dir"),
        pytest.param("interval_seconds = = 3", "not valid TOML", id="toml-syntax"),
        pytest.param("[[probes.http]]\nname='q'\nurl='http://x'\nkind='qdrant'\nexpect_status=200",
                     'probes.http[0].expect_status: not used with kind = "qdrant"', id="qdrant-expect-status"),
    ],
)
def test_single_problem_messages(write_config, toml, fragment):
    write_config(toml)
    with pytest.raises(ConfigError) as err:
        load_config()
    assert fragment in str(err.value)
    assert "config.toml" in str(err.value)


def test_effective_config_redacts_secrets(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "sk-very-secret")
    config = parse_config(
        {"probes": {"http": [{"name": "q", "url": "https://admin:hunter2@qdrant.lan:6333", "kind": "qdrant",
                              "api_key_env": "QDRANT_API_KEY"}]}}
    )
    text = effective_config_toml(config)
    assert "sk-very-secret" not in text and "hunter2" not in text
    assert "admin:***@qdrant.lan" in text
    assert "# http q: api_key_env QDRANT_API_KEY is set in this environment; value not shown" in text
    assert 'api_key_env = "QDRANT_API_KEY"' in text


def test_effective_config_is_valid_toml_for_any_string():
    """Whatever a value holds (controls, quotes, backslashes, bidi overrides), the printout
    parses as TOML, gives the value back, and puts no raw control character on a terminal."""
    import dataclasses
    import tomllib

    config = parse_config({"probes": {"http": [{"name": "q", "url": "http://localhost:6333"}]}})
    nasty = 'a"b\\c\x1b[2J\x07\x85\u202e\n\tz'
    http = dataclasses.replace(config.entries("http")[0], expect_body=nasty)
    (entries,) = config.probe_entries
    text = effective_config_toml(dataclasses.replace(config, probe_entries=(dataclasses.replace(entries, configs=(http,)),),
                                                     state_dir=config.state_dir / nasty))
    parsed = tomllib.loads(text)
    assert parsed["probes"]["http"][0]["expect_body"] == nasty
    assert parsed["state"]["dir"].endswith(nasty)
    assert not any(ch in text for ch in "\x1b\x07\x85\u202e")


def test_effective_config_is_valid_toml_that_round_trips(tmp_path):
    import tomllib

    config = parse_config({"interval_seconds": 12.5, "probes": {"tcp": [{"name": "pg", "host": "h", "port": 1}]}})
    text = effective_config_toml(config)
    reparsed = parse_config(tomllib.loads(text))
    assert reparsed.interval_seconds == 12.5 and reparsed.entries("tcp") == config.entries("tcp")
    assert reparsed.resources == config.resources


@pytest.mark.parametrize(
    "url, shown",
    [("http://a:b@h/x", "http://a:***@h/x"), ("http://h:6333/x", "http://h:6333/x"), ("https://u@h", "https://u@h")],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_every_toml_example_in_the_readme_is_a_valid_config():
    import re
    import tomllib

    from tests.conftest import REPO

    blocks = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        parse_config(tomllib.loads(block))
