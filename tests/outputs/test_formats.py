"""Webhook formats (issue 15, item 3): each format posted through the real webhook sink
to a loopback receiver that checks the payload against the service's documented rules
(tests/outputs/receivers.py); the receivers' checks themselves; truncation within the
limits; hostile issue text; the config's refusals."""

from __future__ import annotations

import copy
import json

import pytest

from aiki_hooks.model import severity
from aiki_hooks.outputs import formats
from aiki_hooks.outputs.config import FORMATS, OutputConfig, validate_outputs
from aiki_hooks.outputs.router import Router, webhook_payload
from tests.outputs.receivers import (
    Receiver,
    Request,
    discord_problems,
    ntfy_problems,
    ntfy_title,
    slack_problems,
    units,
)

CHECKS = {"slack": slack_problems, "discord": discord_problems, "ntfy": ntfy_problems}
# What each service answers a good post with.
OK_STATUS = {"slack": 200, "discord": 204, "ntfy": 200, "json": 200}
TOPIC = "/aiki-alerts"

OPENED = {"kind": "transition", "record_id": "o1:opened", "occurrence_id": "o1", "transition": "opened",
          "severity": "CRITICAL", "previous_severity": None, "issue_id": "http:qdrant", "probe": "qdrant",
          "summary": "connection refused",
          "sentence": "qdrant (http) stopped answering at 14:05 (connection refused); aiki-memory.service still "
                      "active.", "started_at": 1796306700.0, "duration_seconds": None, "at": 1796306760.0,
          "host": "devbox"}
ESCALATED = {**OPENED, "record_id": "o2:escalated", "occurrence_id": "o2", "transition": "escalated",
             "previous_severity": "WARNING", "issue_id": "disk:/", "probe": "disk:/",
             "summary": "95% used, 4.1 GiB free; warn at 90%, critical at 95%",
             "sentence": "disk / went from WARNING to CRITICAL at 14:06 (95% used); open since 13:40."}
RESOLVED = {**OPENED, "record_id": "o3:resolved", "occurrence_id": "o3", "transition": "resolved",
            "severity": "WARNING", "issue_id": "systemd:aiki-memory.service", "probe": "aiki-memory.service",
            "summary": "restarted 3 times in 10 min", "duration_seconds": 720.0,
            "sentence": "aiki-memory.service (systemd) recovered at 14:19 after 12 min."}
SNAPSHOT = {
    "schema_version": 1, "generated_at": "2026-12-03T14:17:00.000Z", "interval_seconds": 60, "host": "devbox",
    "status": "CRITICAL",
    "probes": [{"name": "qdrant", "kind": "http", "status": "CRITICAL", "summary": "connection refused"},
               {"name": "memory", "kind": "resources", "status": "WARNING", "summary": "88% used"},
               {"name": "cpu", "kind": "resources", "status": "OK", "summary": "12%"}],
    "issues": [{"id": "http:qdrant", "severity": "CRITICAL", "summary": "connection refused",
                "since": "2026-12-03T14:05:00.000Z", "probe": "qdrant", "occurrence_id": "o1"},
               {"id": "memory", "severity": "WARNING", "summary": "88% used, 1.9 GiB available",
                "since": "2026-12-03T13:17:00.000Z", "probe": "memory", "occurrence_id": None}],
    "hooks": {}, "patterns": [],
}


def send(fmt, what, data, records, *, env=None, token=None):
    with Receiver(CHECKS.get(fmt), ok_status=OK_STATUS[fmt], token=token) as receiver:
        out = OutputConfig(type="webhook", name="alerts", url=receiver.url + (TOPIC if fmt == "ntfy" else "/hook"),
                           format=fmt, what=what, retries=0, headers_env="ALERT_HEADERS" if env else None)
        router = Router([out], env=env or {}, backoff_seconds=0.01)
        router.route(data, records, now=1.0)
        router.close()
    return receiver.received, router.findings(2.0)


def accepted(fmt, what, data, records, **kw):
    """The one request a receiver got, after checking it accepted it and nothing failed."""
    received, findings = send(fmt, what, data, records, **kw)
    assert len(received) == 1, received
    (got,) = received
    assert got.problems == [] and got.status == OK_STATUS[fmt], got.problems
    assert findings == []
    return got.request


# --------------------------------------------------------------------------- the receivers bite


def slack(**body):
    return Request("/hook", {"content-type": "application/json"}, json.dumps(body).encode())


def discord(**body):
    body.setdefault("allowed_mentions", {"parse": []})
    return Request("/hook", {"content-type": "application/json"}, json.dumps(body).encode())


def ntfy(body="hello", path=TOPIC, **headers):
    return Request(path, {k.lower(): v for k, v in headers.items()}, body.encode())


def section(text):
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize("check, request_, problem", [
    (slack_problems, slack(blocks=[section("x")]), "text: missing"),
    (slack_problems, slack(text="x", blocks=[section("x")] * 51), "at most 50 blocks"),
    (slack_problems, slack(text="x", blocks=[section("x" * 3001)]), "blocks[0].text.text: not a string of 1 to 3000"),
    (slack_problems, slack(text="x", blocks=[section("")]), "not a string of 1 to 3000"),
    (slack_problems, slack(text="x", blocks=[{"type": "image"}]), "unknown block type"),
    (slack_problems, slack(text="<!channel> down"), "text: unescaped < or >"),
    (slack_problems, slack(text="x", blocks=[section("a & b")]), "unescaped &"),
    (slack_problems, slack(text="x", blocks=[{"type": "context", "elements": []}]), "1 to 10 elements"),
    (slack_problems, slack(text="x", username="bot"), "unknown keys ['username']"),
    (slack_problems, Request("/hook", {"content-type": "application/json"}, b"{not json"), "body is not JSON"),
    (discord_problems, discord(), "neither content nor embeds"),
    (discord_problems, discord(content="x" * 2001), "content: not a string of at most 2000"),
    (discord_problems, discord(content="x", allowed_mentions={"parse": ["everyone"]}), "allowed_mentions"),
    (discord_problems, discord(embeds=[{"title": "x" * 257}]), "embeds[0].title"),
    (discord_problems, discord(embeds=[{"description": "x" * 4097}]), "embeds[0].description"),
    (discord_problems, discord(embeds=[{"fields": [{"name": "a", "value": "b"}] * 26}]), "at most 25 fields"),
    (discord_problems, discord(embeds=[{"fields": [{"name": "a", "value": "b" * 1025}]}]), "fields[0].value"),
    (discord_problems, discord(embeds=[{"fields": [{"name": "", "value": "b"}]}]), "fields[0].name"),
    (discord_problems, discord(embeds=[{"footer": {"text": "x" * 2049}}]), "footer.text"),
    (discord_problems, discord(embeds=[{"description": "x" * 4000, "footer": {"text": "y" * 2001}}]),
     "more than 6000"),
    (discord_problems, discord(embeds=[{"title": "x", "color": "#ff0000"}]), "color: not an integer"),
    (discord_problems, discord(embeds=[{"title": "x"}] * 11), "at most 10 embeds"),
    (discord_problems, discord(content="see [here](https://evil.example)"), "a masked link"),
    (discord_problems, discord(content="see https://evil.example"), "an autolink"),
    (discord_problems, discord(content="hi @everyone"), "a mass mention"),
    (discord_problems, discord(content="x", username="Discord bot"), "username"),
    (discord_problems, discord(embeds=[{"title": "😀" * 129}]), "embeds[0].title"),  # 258 UTF-16 units
    (ntfy_problems, ntfy(path="/"), "is not /<topic>"),
    (ntfy_problems, ntfy(body=""), "not 1 to 4096"),
    (ntfy_problems, ntfy(body="x" * 4097), "not 1 to 4096"),
    (ntfy_problems, ntfy(Priority="loud"), "Priority 'loud'"),
    (ntfy_problems, ntfy(Tags="a b,c"), "Tags"),
    (ntfy_problems, ntfy(body="x\x1b[2Jy"), "control characters"),
    (ntfy_problems, ntfy(Markdown="yes"), "Markdown"),
])
def test_each_rule_of_the_receivers_refuses_what_breaks_it(check, request_, problem):
    problems = check(request_)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("check, request_", [
    (slack_problems, slack(text="a &amp; b &lt;x&gt;", blocks=[section("x" * 3000)] * 50)),
    (discord_problems, discord(content="x" * 2000, embeds=[{"title": "t" * 256, "description": "d" * 4096,
                                                              "color": 0xE01E5A, "footer": {"text": "f"}}])),
    (ntfy_problems, ntfy(body="x" * 4096, Title="t", Priority="urgent", Tags="warning,disk")),
])
def test_the_receivers_accept_payloads_at_the_limits(check, request_):
    assert check(request_) == []


# --------------------------------------------------------------------------- json: today's body


@pytest.mark.parametrize("what", ["transitions", "issues", "snapshot"])
def test_json_is_the_default_and_posts_the_payload_unchanged(what):
    out = OutputConfig(type="webhook", url="http://x", what=what)
    assert out.format == "json"
    request = accepted("json", what, SNAPSHOT, [OPENED])
    expected = webhook_payload(SNAPSHOT, [OPENED], out)
    assert request.body == json.dumps(expected, separators=(",", ":"), default=str).encode()
    assert request.headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- slack


def test_slack_transitions_read_as_a_chat_message():
    request = accepted("slack", "transitions", SNAPSHOT, [OPENED, ESCALATED, RESOLVED])
    body = request.json()
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert texts[0] == f"{severity.EMOJI['CRITICAL']} *3 issue changes on devbox (1 opened, 1 escalated, 1 resolved)*"
    assert texts[1].startswith(f"{severity.EMOJI['CRITICAL']} *opened: qdrant (http) CRITICAL* — connection refused\n"
                               "qdrant (http) stopped answering at 14:05")
    assert texts[2].startswith(f"{severity.EMOJI['CRITICAL']} *escalated: disk:/ WARNING → CRITICAL* — 95% used")
    assert texts[3].startswith(f"{severity.EMOJI['OK']} *resolved: aiki-memory.service (systemd) after 12 min*")
    assert body["blocks"][-1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "devbox · aiki-hooks"}]}
    assert body["text"].startswith(f"{severity.EMOJI['CRITICAL']} 3 issue changes on devbox")
    assert body["unfurl_links"] is False and body["unfurl_media"] is False


@pytest.mark.parametrize("what", ["issues", "snapshot"])
def test_slack_issues_and_snapshots_are_a_short_summary(what):
    body = accepted("slack", what, SNAPSHOT, []).json()
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    heading = "devbox is CRITICAL, 2 open issues" if what == "snapshot" else "2 open issues on devbox (worst: CRITICAL)"
    assert texts == [f"{severity.EMOJI['CRITICAL']} *{heading}*",
                     f"{severity.EMOJI['CRITICAL']} *qdrant (http) CRITICAL* — connection refused\nopen for 12 min",
                     f"{severity.EMOJI['WARNING']} *memory WARNING* — 88% used, 1.9 GiB available\nopen for 1 h"]
    footer = body["blocks"][-1]["elements"][0]["text"]
    assert footer == ("Probes: 1 OK, 1 WARNING, 1 CRITICAL · devbox · aiki-hooks" if what == "snapshot"
                      else "devbox · aiki-hooks")


# --------------------------------------------------------------------------- discord


def test_discord_transitions_are_an_embed_in_the_severity_colour_that_pings_nobody():
    body = accepted("discord", "transitions", SNAPSHOT, [OPENED]).json()
    assert body["content"] == f"{severity.EMOJI['CRITICAL']} opened: qdrant (http) CRITICAL — connection refused"
    (embed,) = body["embeds"]
    assert embed["title"] == f"{severity.EMOJI['CRITICAL']} CRITICAL issue opened on devbox"
    assert embed["color"] == severity.RGB_COLORS["CRITICAL"] == 0xE01E5A
    assert embed["description"].startswith(
        f"{severity.EMOJI['CRITICAL']} **opened: qdrant (http) CRITICAL** — connection refused\n")
    assert embed["footer"] == {"text": "devbox · aiki-hooks"} and embed["timestamp"] == "2026-12-03T14:06:00.000Z"
    assert body["allowed_mentions"] == {"parse": []}


def test_discord_resolved_only_is_green_and_a_snapshot_has_its_probe_tally():
    body = accepted("discord", "transitions", SNAPSHOT, [RESOLVED]).json()
    assert body["embeds"][0]["color"] == severity.RGB_COLORS["OK"]
    assert body["embeds"][0]["title"].endswith("issue resolved on devbox")
    snapshot = accepted("discord", "snapshot", SNAPSHOT, []).json()["embeds"][0]
    assert snapshot["fields"] == [{"name": "Probes", "value": "1 OK, 1 WARNING, 1 CRITICAL", "inline": True}]
    assert snapshot["title"] == f"{severity.EMOJI['CRITICAL']} devbox is CRITICAL, 2 open issues"


# --------------------------------------------------------------------------- ntfy


def test_ntfy_posts_plain_text_to_the_topic_with_priority_and_tags_from_severity():
    request = accepted("ntfy", "transitions", SNAPSHOT, [OPENED])
    assert request.path == TOPIC and request.headers["content-type"] == "text/plain; charset=utf-8"
    assert request.body.decode().splitlines() == [
        f"{severity.EMOJI['CRITICAL']} opened: qdrant (http) CRITICAL — connection refused",
        "qdrant (http) stopped answering at 14:05 (connection refused); aiki-memory.service still active.",
        "devbox · aiki-hooks"]
    assert request.headers["title"] == "opened: qdrant (http) CRITICAL - connection refused"
    assert (request.headers["priority"], request.headers["tags"]) == ("high", "rotating_light,critical")


@pytest.mark.parametrize("records, priority, tags", [
    ([RESOLVED], "low", "white_check_mark,resolved"),
    ([{**OPENED, "severity": "WARNING"}], "default", "warning,warning"),
    ([{**ESCALATED, "transition": "de-escalated", "severity": "WARNING", "previous_severity": "CRITICAL"}],
     "default", "warning,warning"),
    ([RESOLVED, OPENED], "high", "rotating_light,critical"),  # the worst still open decides
])
def test_ntfy_priority_follows_what_is_still_open(records, priority, tags):
    request = accepted("ntfy", "transitions", SNAPSHOT, records)
    assert (request.headers["priority"], request.headers["tags"]) == (priority, tags)


def test_ntfy_a_title_that_is_not_ascii_arrives_whole():
    record = {**OPENED, "issue_id": "disk:/mnt/Données", "probe": "disk:/mnt/Données", "summary": "97 % plein"}
    request = accepted("ntfy", "transitions", SNAPSHOT, [record])
    assert request.headers["title"].startswith("=?UTF-8?B?")
    assert ntfy_title(request) == "opened: disk:/mnt/Données CRITICAL - 97 % plein"


def test_ntfy_an_access_token_comes_from_headers_env_and_never_shows_in_a_finding():
    token = "tk_7eevizlsiwf9yi4uxsrs83r4352o0"
    env = {"ALERT_HEADERS": f"Authorization: Bearer {token}\n"}
    request = accepted("ntfy", "transitions", SNAPSHOT, [OPENED], env=env, token=token)
    assert request.headers["authorization"] == f"Bearer {token}"
    received, findings = send("ntfy", "transitions", SNAPSHOT, [OPENED], env={"ALERT_HEADERS": "Authorization: "
                                                                             "Bearer tk_wrong0wrong0wrong0wrong0"},
                              token=token)
    assert [r.status for r in received] == [403]
    ((issue_id, level, summary),) = findings
    assert (issue_id, level) == ("output:alerts", "WARNING") and "HTTP 403" in summary
    assert "tk_" not in summary and "aiki-alerts" not in summary


def test_ntfy_snapshot_of_a_healthy_host_is_quiet():
    healthy = {**SNAPSHOT, "status": "OK", "issues": [],
               "probes": [{"name": "cpu", "kind": "resources", "status": "OK", "summary": "12%"}]}
    request = accepted("ntfy", "snapshot", healthy, [])
    assert request.headers["title"] == "devbox is OK"
    assert (request.headers["priority"], request.headers["tags"]) == ("low", "white_check_mark,ok")
    assert request.body.decode().startswith(f"{severity.EMOJI['OK']} no open issues — 1 probe: 1 OK")


@pytest.mark.parametrize("fmt", ["slack", "discord", "ntfy"])
@pytest.mark.parametrize("what", ["transitions", "issues"])
def test_the_checks_hint_comes_with_its_issue(fmt, what):
    hint = "systemctl --user restart qdrant; runbook: wiki/qdrant"
    data = {**SNAPSHOT, "issues": [{**SNAPSHOT["issues"][0], "hint": hint}]}
    request = accepted(fmt, what, data, [{**OPENED, "hint": hint}])
    first = {"slack": lambda: request.json()["blocks"][1]["text"]["text"],
             "discord": lambda: request.json()["embeds"][0]["description"],
             "ntfy": lambda: request.body.decode()}[fmt]()
    assert first.splitlines()[2] == f"hint: {hint}"  # under the summary and the sentence


# --------------------------------------------------------------------------- long and hostile text


def crowded_snapshot(count=120, chars=5000):
    issues = [{"id": f"http:svc{i}", "severity": "CRITICAL" if i % 2 else "WARNING", "probe": f"svc{i}",
               "summary": f"summary {i} " + "&<x>" * (chars // 4), "since": "2026-12-03T14:00:00.000Z"}
              for i in range(count)]
    return {**SNAPSHOT, "issues": issues}


@pytest.mark.parametrize("fmt", ["slack", "discord", "ntfy"])
@pytest.mark.parametrize("what", ["issues", "snapshot"])
def test_long_content_is_cut_within_the_limits_with_a_marker(fmt, what):
    request = accepted(fmt, what, crowded_snapshot(), [])  # the receiver checks every limit
    text = request.body.decode()
    assert formats.CUT in text and "more" in text
    if fmt == "slack":
        blocks = request.json()["blocks"]
        assert len(blocks) == 50 and blocks[-2]["elements"][0]["text"] == f"{formats.CUT} and 73 more"
    elif fmt == "discord":
        embed = request.json()["embeds"][0]
        assert embed["description"].endswith(" more") and units(embed["description"]) <= 4096
    else:
        assert len(request.body) <= formats.NTFY_MESSAGE_BYTES


@pytest.mark.parametrize("fmt", ["slack", "discord", "ntfy"])
def test_many_transitions_and_a_long_sentence_still_fit(fmt):
    records = [{**OPENED, "record_id": f"o{i}", "summary": "x" * 3000, "sentence": "é" * 3000} for i in range(40)]
    request = accepted(fmt, "transitions", SNAPSHOT, records)
    assert formats.CUT in request.body.decode()


HOSTILE = ("<!channel> @everyone @here <@123> [click](https://evil.example/login) https://evil.example "
           "**bold** `code` # heading & more \x1b]0;retitled\x07\x1b[2J\u202eevil\r\nsecond line")


@pytest.mark.parametrize("fmt", ["slack", "discord", "ntfy"])
def test_issue_text_cannot_ping_link_or_carry_control_characters(fmt):
    record = {**OPENED, "summary": HOSTILE, "sentence": HOSTILE, "issue_id": "http:<!here>", "probe": "x"}
    request = accepted(fmt, "transitions", SNAPSHOT, [record])  # the receivers refuse unescaped markup
    text = request.body.decode()
    for control in ("\x1b", "\x07", "\u202e", "\r"):
        assert control not in text and control not in json.dumps(request.headers)
    if fmt == "slack":
        assert "&lt;!channel&gt;" in text and "&amp; more" in text and "<!" not in text
    elif fmt == "discord":
        description = request.json()["embeds"][0]["description"]
        assert "\\[click\\](https\\://evil.example/login)" in description and "\\@everyone" in description
    else:
        assert "retitled" not in request.headers["title"] and "\n" not in request.headers["title"]


def test_a_host_name_or_transition_with_markup_is_neutralised_in_titles():
    """Discord shows an embed title without markup, so it is built from safe words."""
    record = {**OPENED, "host": "box*<@1>\x1b[31m", "transition": "opened[x](https://e.x)"}
    body = accepted("discord", "transitions", SNAPSHOT, [record]).json()
    # The escape sequence goes whole; what is left of the markup becomes "?".
    assert body["embeds"][0]["title"] == f"{severity.EMOJI['CRITICAL']} CRITICAL issue opened?x??https???e?x? on box???1?"


# --------------------------------------------------------------------------- purity


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what", ["transitions", "issues", "snapshot"])
def test_render_is_pure_and_survives_odd_input(fmt, what):
    payload = webhook_payload(SNAPSHOT, [OPENED, RESOLVED], OutputConfig(type="webhook", url="http://x", what=what))
    before = copy.deepcopy(payload)
    first, again = formats.render(fmt, what, payload), formats.render(fmt, what, payload)
    assert first == again and payload == before
    odd = {"transitions": [None, {"severity": 3, "at": "x"}, {}], "issues": [None, {"severity": "LOUD"}],
           "host": None, "probes": "nope", "status": 7, "generated_at": "not a date"}
    message = formats.render(fmt, what, odd)
    assert message.body and message.headers[0][0] == "Content-Type"
    if fmt in CHECKS:  # still a message the service takes
        request = Request(TOPIC, {name.lower(): value for name, value in message.headers}, message.body)
        assert CHECKS[fmt](request) == []


@pytest.mark.parametrize("raw, limit, escape", [
    ("a&b" * 50, 20, formats.slack_escape),
    ("[x](y)" * 50, 31, formats.discord_escape),
    ("😀" * 50, 9, str),
])
def test_fit_never_splits_an_escape_and_stays_within_the_limit(raw, limit, escape):
    cut = formats.fit(raw, limit, escape)
    assert units(cut) <= limit and cut.endswith(formats.CUT)
    assert cut == escape(cut.removesuffix(formats.CUT).replace("&amp;", "&").replace("\\", "")) + formats.CUT


# --------------------------------------------------------------------------- config


def test_format_is_a_webhook_key_with_json_as_default():
    outs, problems = validate_outputs([{"type": "webhook", "url": "https://hooks.example.net/x"},
                                       {"type": "webhook", "name": "chat", "url": "https://hooks.example.net/y",
                                        "format": "discord"},
                                       {"type": "webhook", "name": "phone", "url": "https://ntfy.example.net/aiki",
                                        "format": "ntfy"}])
    assert problems == [] and [o.format for o in outs] == ["json", "discord", "ntfy"]


@pytest.mark.parametrize("item, expected", [
    ({"type": "webhook", "url": "https://hooks.example.net/T0k3nS3cr3tAbCdEf1", "format": "teams"},
     'outputs[0].format = "teams": expected one of "json", "slack", "discord", "ntfy"'),
    ({"type": "jsonl", "path": "/tmp/a.jsonl", "format": "slack"},
     'outputs[0].format = "slack": expected no format on a jsonl output (format is a webhook\'s: json, slack, '
     'discord, ntfy)'),
    ({"type": "webhook", "url": "https://ntfy.example.net/", "format": "ntfy"},
     'outputs[0].url = "https://ntfy.example.net/...": expected a topic URL for format = "ntfy"'),
    ({"type": "webhook", "url": "https://ntfy.example.net", "format": "ntfy"},
     'outputs[0].url = "https://ntfy.example.net": expected a topic URL for format = "ntfy"'),
])
def test_a_format_that_does_not_fit_is_one_message_naming_file_key_and_expectation(write_config, item, expected):
    from aiki_hooks.config.load import ConfigError, load_config

    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in item.items())
    path = write_config(f"[[outputs]]\n{lines}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message()
    assert message.startswith(f"invalid config {path}: {expected}"), message
    assert message.count("outputs[0]") == 1 and "T0k3n" not in message


def test_the_effective_config_shows_the_format(write_config):
    from aiki_hooks.config.load import effective_config_toml, load_config

    path = write_config('[[outputs]]\ntype = "webhook"\nurl = "https://ntfy.example.net/aiki-7f3k9q2m1x8z4w"\n'
                        'format = "ntfy"\n')
    text = effective_config_toml(load_config(path), env={})
    assert 'format = "ntfy"' in text and "7f3k9q2m1x8z4w" not in text



# --------------------------------------------------------------------------- docs/outputs.md


def test_the_documented_examples_load_and_the_samples_are_what_is_sent():
    import re
    import tomllib

    from tests.conftest import REPO

    doc = (REPO / "docs" / "outputs.md").read_text()
    (toml,) = [block for block in re.findall(r"```toml\n(.*?)```", doc, re.S) if 'format = "ntfy"' in block]
    outs, problems = validate_outputs(tomllib.loads(toml)["outputs"])
    assert problems == [] and [o.format for o in outs] == ["slack", "discord", "ntfy"]
    slack_sample, discord_sample = (json.loads(block) for block in re.findall(r"```json\n(.*?)```", doc, re.S))
    assert slack_sample == accepted("slack", "transitions", SNAPSHOT, [OPENED, RESOLVED]).json()
    assert discord_sample == accepted("discord", "transitions", SNAPSHOT, [OPENED]).json()
    (http,) = re.findall(r"```http\n(.*?)```", doc, re.S)
    head, _, body = http.partition("\n\n")
    request = accepted("ntfy", "transitions", SNAPSHOT, [OPENED])
    sent = {name: request.headers[name.lower()] for name in ("Content-Type", "Title", "Priority", "Tags")}
    assert head.splitlines() == [f"POST {TOPIC} HTTP/1.1", *(f"{k}: {v}" for k, v in sent.items())]
    assert body == request.body.decode() + "\n"


# --------------------------------------------------------------------------- end to end


def test_refresh_runs_tell_each_service_how_a_real_issue_opens_and_ends(write_config, tmp_path):
    """The real command, config to receiver: a command probe goes CRITICAL then OK over
    two `aiki-hooks refresh` runs; Slack, Discord and ntfy each accept both messages."""
    from tests.conftest import cli_env, run_cli
    from tests.outputs.test_router import _cli_config, _plugin

    flag, plugin = _plugin(tmp_path)
    with Receiver(slack_problems) as to_slack, Receiver(discord_problems, ok_status=204) as to_discord, \
            Receiver(ntfy_problems, token="tk_e2e0token0e2e0token") as to_ntfy:
        outputs = "".join(f'[[outputs]]\ntype = "webhook"\nname = "{fmt}"\nurl = "{url}"\nformat = "{fmt}"\n'
                          for fmt, url in (("slack", to_slack.url + "/hook"), ("discord", to_discord.url + "/hook"),
                                           ("ntfy", to_ntfy.url + TOPIC)))
        _cli_config(write_config, tmp_path, plugin, outputs + 'headers_env = "NTFY_HEADERS"\n')
        for code in ("2", "0"):
            flag.write_text(code + "\n")
            result = run_cli("refresh", env=cli_env(NTFY_HEADERS="Authorization: Bearer tk_e2e0token0e2e0token"))
            assert result.returncode == 0 and result.stderr == "", result.stderr
    for receiver in (to_slack, to_discord, to_ntfy):
        assert [(r.status, r.problems) for r in receiver.received] in ([(200, [])] * 2, [(204, [])] * 2)
    opened, resolved = (r.request.json() for r in to_slack.received)
    assert "*opened: queue (command) CRITICAL* — queue says 2" in opened["blocks"][1]["text"]["text"]
    assert resolved["blocks"][1]["text"]["text"].startswith(f"{severity.EMOJI['OK']} *resolved: queue (command) after")
    assert [r.request.json()["embeds"][0]["color"] for r in to_discord.received] == [
        severity.RGB_COLORS["CRITICAL"], severity.RGB_COLORS["OK"]]
    assert [r.request.headers["priority"] for r in to_ntfy.received] == ["high", "low"]
