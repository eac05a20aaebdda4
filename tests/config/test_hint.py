"""`hint` on every check: accepted on each [[probes.<kind>]] table (a plugin's kind too,
without the kind declaring it), on [resources] (one for all aspects, or by aspect) and
[costs]; refused with one message naming the file, the key and what was expected; shown
redacted by `aiki-hooks config`, and loaded back from what it prints."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from aiki_hooks.config.load import ConfigError, effective_config_toml, load_config, parse_config
from aiki_hooks.config.validators import MAX_HINT_CHARS, number, text
from aiki_hooks.probes import registry
from aiki_hooks.probes.registry import ProbeKind, name_and_timeout

RUNBOOK = "restart: systemctl --user restart aiki-memory; logs in ~/aiki/logs"

# One table of each built-in kind, each with a hint.
BUILTIN_TABLES = f"""
[[probes.systemd]]
unit = "aiki-memory.service"
hint = "{RUNBOOK}"

[[probes.http]]
name = "qdrant"
url = "http://127.0.0.1:6333"
hint = "docker restart qdrant"

[[probes.tcp]]
name = "postgres"
host = "127.0.0.1"
port = 5432
hint = "pg_ctl restart -D ~/pg"

[[probes.command]]
name = "backup"
command = ["/bin/true"]
hint = "run ~/bin/backup.sh by hand"
"""


def load(tmp_path, body: str):
    path = tmp_path / "config.toml"
    path.write_text(body)
    return load_config(path)


def problems(tmp_path, body: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.file == str(path)  # the message names the file
    assert str(path) in str(err.value)
    return err.value.problems


def test_every_builtin_kind_takes_a_hint_by_result_name(tmp_path):
    config = load(tmp_path, BUILTIN_TABLES)
    hints = {entries.kind.name: dict(entries.hints) for entries in config.probe_entries}
    assert hints == {
        "systemd": {"aiki-memory.service": RUNBOOK},
        "http": {"qdrant": "docker restart qdrant"},
        "tcp": {"postgres": "pg_ctl restart -D ~/pg"},
        "command": {"backup": "run ~/bin/backup.sh by hand"},
    }
    # The hint belongs to the check, not to the probe's own record.
    for entries in config.probe_entries:
        for record in entries.configs:
            assert "hint" not in vars(record)


def test_no_hint_means_none_anywhere(tmp_path):
    config = load(tmp_path, '[[probes.tcp]]\nname = "db"\nhost = "127.0.0.1"\nport = 5432\n')
    assert config.entries("tcp") and all(entries.hints == () for entries in config.probe_entries)
    assert config.resources.hints == () and config.costs.hint is None


@pytest.mark.parametrize(("value", "shown"), [
    ("42", "42"),
    ("true", "True"),
    ('["restart it"]', "['restart it']"),
    ('""', '""'),
    ('"   "', '"   "'),
    ('"a\\u001b[2Jb"', '"a\\x1b[2Jb"'),  # an escape sequence: shown escaped, never raw
    ('"line one\\nline two"', '"line one\\nline two"'),
    ('"tab\\there"', '"tab\\there"'),
    ('"bidi \\u202e override"', '"bidi \\u202e override"'),
    (f'"{"x" * (MAX_HINT_CHARS + 1)}"', '"' + "x" * 56 + "..."),
])
@pytest.mark.parametrize("table", ["probes.tcp[0]", "resources", "costs"])
def test_a_bad_hint_is_one_message_naming_the_key_and_what_was_expected(tmp_path, value, shown, table):
    where = {"probes.tcp[0]": '[[probes.tcp]]\nname = "db"\nhost = "127.0.0.1"\nport = 5432\n',
             "resources": "[resources]\n", "costs": "[costs]\n"}[table]
    found = problems(tmp_path, f"{where}hint = {value}\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"{table}.hint = {shown}: expected a one-line string of 1 to {MAX_HINT_CHARS} "
                               "characters without control characters"), found
    assert "\x1b" not in found[0] and "\n" not in found[0] and "\u202e" not in found[0]


def test_a_hint_of_exactly_the_limit_is_accepted(tmp_path):
    config = load(tmp_path, f'[[probes.tcp]]\nname = "db"\nhost = "h"\nport = 1\nhint = "{"y" * MAX_HINT_CHARS}"\n')
    assert dict(config.probe_entries[0].hints) == {"db": "y" * MAX_HINT_CHARS}


def test_a_bad_hint_does_not_hide_the_tables_other_problems(tmp_path):
    found = problems(tmp_path, '[[probes.tcp]]\nname = "db"\nhost = "127.0.0.1"\nport = "x"\nhint = 5\n')
    assert sorted(found) == ['probes.tcp[0].hint = 5: expected a one-line string of 1 to 200 characters without '
                             'control characters',
                             'probes.tcp[0].port = "x": expected a whole number from 1 to 65535']


def test_resources_hint_is_one_for_every_aspect_or_a_table_by_aspect(tmp_path):
    one = load(tmp_path, '[resources]\nhint = "see ~/runbooks/machine.md"\n')
    assert dict(one.resources.hints) == dict.fromkeys(("cpu", "load", "memory", "swap", "disk"),
                                                      "see ~/runbooks/machine.md")
    by_aspect = load(tmp_path, '[resources]\nhint = {disk = "du -xh ~/aiki | sort -h | tail", memory = "restart x"}\n')
    assert dict(by_aspect.resources.hints) == {"disk": "du -xh ~/aiki | sort -h | tail", "memory": "restart x"}


def test_resources_hint_table_names_its_bad_keys_and_values(tmp_path):
    found = problems(tmp_path, '[resources]\nhint = {disks = "x", memory = 3, swap = "ok"}\n')
    assert sorted(found) == [
        "resources.hint.disks: unknown key (known keys here: cpu, disk, load, memory, swap)",
        "resources.hint.memory = 3: expected a one-line string of 1 to 200 characters without control characters",
    ]
    found = problems(tmp_path, "[resources]\nhint = 7\n")
    assert found == ["resources.hint = 7: expected a one-line string of 1 to 200 characters without control "
                     "characters, or a table of them by aspect (cpu, load, memory, swap, disk)"]


def test_costs_hint(tmp_path):
    assert load(tmp_path, '[costs]\nhint = "switch to a cheaper model"\n').costs.hint == "switch to a cheaper model"


def test_a_plugin_kind_gets_hint_without_declaring_it(tmp_path, monkeypatch):
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class FileAgeConfig:
        name: str
        path: str
        warn_seconds: float = 60.0
        timeout_seconds: float = 2.0

    def strict_record(values):
        # A kind whose record takes exactly its own keys: a `hint` passed on would raise.
        return FileAgeConfig(**values)

    kind = ProbeKind(name="file_age", config_type=FileAgeConfig,
                     spec={**name_and_timeout(2.0), "path": (text, None), "warn_seconds": (number(0), 60.0)},
                     required=("name", "path"), make_config=strict_record, build=lambda configs, context: [])
    monkeypatch.setattr(registry, "_plugins", registry.Plugins(kinds={"file_age": kind}, broken={}))
    assert "hint" not in kind.spec
    config = load(tmp_path, '[[probes.file_age]]\nname = "backup"\npath = "/var/backups/last"\n'
                            'hint = "run ~/bin/backup.sh"\n')
    (entries,) = config.probe_entries
    assert entries.configs == (FileAgeConfig(name="backup", path="/var/backups/last"),)
    assert entries.hints == (("backup", "run ~/bin/backup.sh"),)
    found = problems(tmp_path, '[[probes.file_age]]\nname = "backup"\npath = "/x"\nhint = ["a"]\n')
    assert found == ["probes.file_age[0].hint = ['a']: expected a one-line string of 1 to 200 characters "
                     "without control characters"]


def test_aiki_hooks_config_shows_hints_redacted_and_loads_them_back(tmp_path):
    secret_hint = "curl -H 'Authorization: Bearer abcdef0123456789abcdef' http://127.0.0.1:6333/readyz"
    body = (BUILTIN_TABLES.replace('"docker restart qdrant"', f'"{secret_hint}"')
            + '[resources]\nhint = "see ~/runbooks/machine.md"\n[costs]\nhint = "token=s3cr3tvalue0123 in ~/.env"\n')
    config = load(tmp_path, body)
    shown = effective_config_toml(config, env={})
    assert "abcdef0123456789abcdef" not in shown and "s3cr3tvalue0123" not in shown
    assert "Bearer ***" in shown and "token=***" in shown
    printed = tomllib.loads(shown)
    assert printed["resources"]["hint"] == "see ~/runbooks/machine.md"
    assert printed["probes"]["systemd"][0]["hint"] == RUNBOOK
    again = parse_config(printed)
    assert {e.kind.name: dict(e.hints) for e in again.probe_entries}["systemd"] == {"aiki-memory.service": RUNBOOK}
    assert dict(again.resources.hints) == dict(config.resources.hints)
    assert again.costs.hint == "token=*** in ~/.env"


def test_a_partial_resources_hint_table_prints_as_a_table(tmp_path):
    config = load(tmp_path, '[resources]\nhint = {disk = "clean ~/tmp"}\n')
    printed = tomllib.loads(effective_config_toml(config, env={}))
    assert printed["resources"]["hint"] == {"disk": "clean ~/tmp"}
    assert dict(parse_config(printed).resources.hints) == {"disk": "clean ~/tmp"}


def test_the_example_in_docs_configuration_md_loads():
    import re

    from tests.conftest import REPO

    section = (REPO / "docs" / "configuration.md").read_text().split("## Hints", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    config = parse_config(tomllib.loads(example))
    assert dict(config.probe_entries[0].hints) == {"aiki-memory.service": RUNBOOK}
    assert set(dict(config.resources.hints)) == {"disk", "memory"} and config.costs.hint
