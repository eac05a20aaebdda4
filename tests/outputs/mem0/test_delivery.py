"""mem0 delivery: exactly-once from the spool into mem0, through outages and kill -9.

All offline: loopback fakes of the mem0 REST server and of the hosted platform API, and
the REAL `mem0.Memory` (Qdrant local mode in a temp dir) embedding through a loopback
OpenAI-compatible server that hashes words into vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager

import pytest
from aiki_hooks.outputs.mem0 import delivery as mem0_delivery

from aiki_hooks.config.load import Mem0Config
from aiki_hooks.outputs.mem0.delivery import DeliveryConfigError, FlushResult, flush, main
from aiki_hooks.outputs.mem0.spool import DELIVERY_ISSUE, Spool
from tests.conftest import REPO

KEY_ENV = "AIKI_TEST_MEM0_KEY"
KEY = "sk-test-123"
T0 = 1_700_000_000.0


def record(seq: int, hint: str | None = None) -> dict:
    return {
        "seq": seq, "at": T0 + seq, "kind": "transition", "record_id": f"occ{seq}:opened",
        "occurrence_id": f"occ{seq}", "issue_id": f"http:api{seq}", "transition": "opened",
        "severity": "CRITICAL", "previous_severity": None, "probe": f"api{seq}", "summary": "down",
        "sentence": f"Service api{seq} went down: connection refused (record {seq})", "started_at": T0,
        "duration_seconds": None, "session_id": "sess", "cwd": "/work", "host": "box", "hint": hint,
    }


HINT = "systemctl --user restart api2; its log is journalctl --user -u api2"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --------------------------------------------------------------------------- fakes


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up on a slow answer are part of the tests


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def reply(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve(handler_cls, **attrs):
    server = _QuietServer(("127.0.0.1", 0), handler_cls)
    for name, value in attrs.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class RestFake(_JsonHandler):
    """mem0's self-hosted REST server (server/main.py), storing in memory.

    server.faults: a list of modes consumed one per request: "500", "timeout" (answer
    nothing for `hang` seconds), "store_then_timeout" (POST /memories stores, then hangs).
    server.add_delay: seconds to wait AFTER storing, before answering POST /memories.
    """

    def _authorised(self) -> bool:
        if self.headers.get("X-API-Key") != KEY:
            self.reply(401, {"detail": "Invalid API key"})
            return False
        return True

    def _fault(self) -> str | None:
        with self.server.lock:
            return self.server.faults.pop(0) if self.server.faults else None

    def do_POST(self):
        body = self.body()
        self.server.requests.append(("POST", self.path))
        if not self._authorised():
            return
        fault = self._fault()
        if fault == "500":
            return self.reply(500, {"detail": "database is locked"})
        if fault == "timeout":
            time.sleep(self.server.hang)
            return self.reply(503, {"detail": "too late"})
        if self.path == "/memories":
            if not (body.get("user_id") or body.get("agent_id")):
                return self.reply(400, {"detail": "At least one identifier is required."})
            with self.server.lock:
                memory = {"id": f"m{len(self.server.memories) + 1}", "memory": body["messages"][0]["content"],
                          "user_id": body.get("user_id"), "agent_id": body.get("agent_id"),
                          "metadata": body.get("metadata") or {}, "infer": body.get("infer")}
                self.server.memories.append(memory)
            if fault == "store_then_timeout":
                time.sleep(self.server.hang)
            elif self.server.add_delay:
                time.sleep(self.server.add_delay)
            return self.reply(200, {"results": [{"id": memory["id"], "memory": memory["memory"], "event": "ADD"}]})
        if self.path == "/search":
            filters = dict(body.get("filters") or {})
            user = filters.pop("user_id", None)
            if not user or not body.get("query"):
                return self.reply(400, {"detail": "query and filters.user_id required"})
            with self.server.lock:
                hits = [m for m in self.server.memories if m["user_id"] == user
                        and all(m["metadata"].get(k) == v for k, v in filters.items())]
            self.server.found += bool(hits)
            return self.reply(200, {"results": [{**m, "score": 0.99} for m in hits[: body.get("top_k", 20)]]})
        self.reply(404, {"detail": "Not Found"})


@contextmanager
def rest_server(faults=(), hang=1.0, add_delay=0.0):
    with serve(RestFake, faults=list(faults), hang=hang, add_delay=add_delay, memories=[], requests=[],
               found=0, lock=threading.Lock()) as server:
        yield server


class PlatformFake(_JsonHandler):
    """The hosted API as the installed MemoryClient calls it (mem0/client/main.py)."""

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Token {KEY}":
            self.reply(401, {"detail": "Invalid API key"})
            return False
        return True

    def do_GET(self):
        self.server.requests.append(("GET", self.path))
        if not self._authorised():
            return
        if self.path.startswith("/v1/ping/"):
            return self.reply(200, {"status": "ok", "org_id": "org1", "project_id": "proj1",
                                    "user_email": "dev@example.com"})
        self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        body = self.body()
        self.server.requests.append(("POST", self.path))
        if not self._authorised():
            return
        if self.path == "/v3/memories/add/":
            self.server.memories.append(body)
            return self.reply(200, {"message": "Memory processing has been queued", "status": "PENDING",
                                    "event_id": f"ev{len(self.server.memories)}"})
        if self.path == "/v3/memories/":
            user, record_id = _platform_filter(body.get("filters") or {})
            hits = [{"id": str(i), "memory": m["messages"][0]["content"], "user_id": m.get("user_id"),
                     "metadata": m.get("metadata")}
                    for i, m in enumerate(self.server.memories)
                    if m.get("user_id") == user and (m.get("metadata") or {}).get("record_id") == record_id]
            return self.reply(200, {"count": len(hits), "next": None, "previous": None, "results": hits})
        self.reply(404, {"detail": "Not Found"})


def _platform_filter(filters: dict) -> tuple[str | None, str | None]:
    user = record_id = None
    for clause in filters.get("AND", []):
        user = clause.get("user_id", user)
        record_id = (clause.get("metadata") or {}).get("record_id", record_id)
    return user, record_id


def rest_config(host: str, **extra) -> Mem0Config:
    values = dict(backend="rest", host=host, api_key_env=KEY_ENV, user_id="dev", timeout_seconds=1.5,
                  backoff_initial_seconds=30.0, backoff_max_seconds=1800.0)
    values.update(extra)
    return Mem0Config(**values)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def stored_seqs(server) -> list[int]:
    return [m["metadata"]["at"] - T0 for m in server.memories]


# --------------------------------------------------------------------------- REST


def test_rest_round_trip_and_second_flush_adds_nothing(tmp_path, api_key):
    with rest_server() as server:
        config = rest_config(url_of(server))
        Spool(tmp_path, 100).enqueue([record(1), record(2, HINT), record(3)])
        result = flush(config, tmp_path)
        assert result == FlushResult(delivered=3, remaining=0)
        assert [m["memory"] for m in server.memories] == [
            record(1)["sentence"], f"{record(2)['sentence']} Hint: {HINT}", record(3)["sentence"]]
        first = server.memories[0]
        assert first["user_id"] == "dev" and first["infer"] is False and first["agent_id"] is None
        assert first["metadata"] == {"record_id": "occ1:opened", "occurrence_id": "occ1", "transition": "opened",
                                     "issue_id": "http:api1", "severity": "CRITICAL", "probe": "api1",
                                     "kind": "transition", "at": T0 + 1}
        # The same records again (as after a lost answer): found, not added twice.
        Spool(tmp_path, 100).enqueue([record(1), record(2, HINT), record(3)])
        assert flush(config, tmp_path) == FlushResult(skipped_existing=3, remaining=0)
        assert len(server.memories) == 3
        assert flush(config, tmp_path) == FlushResult()  # nothing pending: no request at all
        assert len(server.requests) == 9


def test_rest_refused_timeout_and_success(tmp_path, api_key):
    rec = record(1)
    refused = mem0_delivery.RestBackend(rest_config(f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(mem0_delivery.DeliveryError, match="POST /search: connection refused"):
        refused.exists(rec)
    with rest_server(faults=["timeout", "500"], hang=0.8) as server:
        backend = mem0_delivery.RestBackend(rest_config(url_of(server)))
        started = time.monotonic()
        with pytest.raises(mem0_delivery.DeliveryError, match=r"POST /search: timed out after 0\.5 s"):
            backend.exists(rec)
        assert time.monotonic() - started < 0.75
        with pytest.raises(mem0_delivery.DeliveryError, match="POST /search: HTTP 500: .*database is locked"):
            backend.exists(rec)
        assert not backend.exists(rec)
        backend.add(rec)
        assert backend.exists(rec) and not backend.exists(record(2))
        backend.close()
        assert len(server.memories) == 1 and server.memories[0]["user_id"] == "dev"


def test_rest_wrong_key_is_a_failure_that_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "wrong")
    with rest_server() as server:
        Spool(tmp_path, 100).enqueue([record(1)])
        result = flush(rest_config(url_of(server)), tmp_path, now=Clock())
        assert result.error.startswith(f"POST /search: HTTP 401 (check the key in ${KEY_ENV})")
        assert result.remaining == 1 and server.memories == []


def test_outage_every_kind_then_recovery_exactly_once_in_order(tmp_path, api_key):
    clock = Clock()
    records = [record(i) for i in range(1, 6)]
    spool = Spool(tmp_path, 100)
    spool.enqueue(records)
    expected_delay = 30.0

    def fail_and_check(config, message_part):
        nonlocal expected_delay
        result = flush(config, tmp_path, now=clock)
        assert result.error and message_part in result.error, result
        state = spool.load_state()
        delay = state["next_attempt_at"] - clock.t
        assert expected_delay * 0.8 <= delay <= expected_delay * 1.2
        assert flush(config, tmp_path, now=clock).deferred_until == state["next_attempt_at"]  # not due yet
        clock.t = state["next_attempt_at"] + 0.001
        expected_delay *= 2
        return result

    # 1. nothing listens
    fail_and_check(rest_config(f"http://127.0.0.1:{closed_port()}"), "connection refused")
    with rest_server(faults=["500", "timeout", "ok-search", "store_then_timeout"], hang=0.8) as server:
        config = rest_config(url_of(server))
        # 2. HTTP 500 on the exists check
        fail_and_check(config, "HTTP 500")
        issues = spool.health(clock.t, config)
        assert [i[0] for i in issues] == [DELIVERY_ISSUE]
        assert re.match(r"mem0 unreachable for 1 min, 5 records waiting \(last error: POST /search: HTTP 500",
                        issues[0][2]), issues
        # 3. a timeout (per-request timeout is timeout_seconds / 3 = 0.5 s)
        result = fail_and_check(config, "timed out after 0.5 s")
        assert server.memories == []
        # 4. the server stores the record, then times out: the outcome is unknown to us
        result = fail_and_check(config, "POST /memories: timed out")
        assert result.delivered == 0 and result.remaining == 5
        assert [m["metadata"]["record_id"] for m in server.memories] == ["occ1:opened"]
        # 5. recovered
        result = flush(config, tmp_path, now=clock)
        assert result == FlushResult(delivered=4, skipped_existing=1, remaining=0)
        assert [m["metadata"]["record_id"] for m in server.memories] == [r["record_id"] for r in records]
        assert spool.load_state()["failures"] == 0 and spool.health(clock.t, config) == []


def test_flush_stops_at_first_failure_and_keeps_order(tmp_path, api_key):
    # search ok, add ok (record 1), search ok, add fails -> record 2 stays first in line
    with rest_server(faults=[None, None, None, "500"]) as server:
        config = rest_config(url_of(server))
        Spool(tmp_path, 100).enqueue([record(1), record(2), record(3)])
        result = flush(config, tmp_path, now=Clock())
        assert (result.delivered, result.remaining) == (1, 2) and "POST /memories: HTTP 500" in result.error
        assert [r["seq"] for _, r in Spool(tmp_path, 100).pending()] == [2, 3]
        result = flush(config, tmp_path, now=Clock(T0 + 3600))
        assert result == FlushResult(delivered=2, remaining=0)
        assert stored_seqs(server) == [1, 2, 3]


def test_second_flush_returns_at_once_while_one_runs(tmp_path, api_key):
    import fcntl

    Spool(tmp_path, 100).enqueue([record(1)])
    with open(tmp_path / "mem0-flush.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        result = flush(rest_config("http://127.0.0.1:9"), tmp_path)
        assert result.busy and result.remaining == 1 and time.monotonic() - started < 0.5


def test_record_without_record_id_is_quarantined(tmp_path, api_key):
    with rest_server() as server:
        bad = record(1)
        del bad["record_id"]
        Spool(tmp_path, 100).enqueue([bad, record(2)])
        assert flush(rest_config(url_of(server)), tmp_path) == FlushResult(delivered=1)
        assert len(os.listdir(tmp_path / "spool" / "bad")) == 1


def test_main_one_line_and_exit_codes(tmp_path, api_key, capsys):
    with rest_server() as server:
        assert main(rest_config(url_of(server)), tmp_path) == 0
        assert capsys.readouterr().out == "mem0: delivered 0, 0 waiting\n"
        Spool(tmp_path, 100).enqueue([record(1)])
        assert main(rest_config(url_of(server)), tmp_path) == 0
        assert capsys.readouterr().out == "mem0: delivered 1, 0 waiting\n"
    Spool(tmp_path, 100).enqueue([record(2)])
    assert main(rest_config(f"http://127.0.0.1:{closed_port()}"), tmp_path) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("mem0: delivery failed: POST /search: connection refused (delivered 0; 1 waiting, "
                                   "next attempt in ")
    assert main(rest_config(f"http://127.0.0.1:{closed_port()}"), tmp_path) == 0  # backing off
    assert capsys.readouterr().out.startswith("mem0: backing off, next attempt in ")
    # local without any mem0 config: exit 3, one line, no traceback
    local = Mem0Config(backend="local")
    assert main(local, tmp_path, force=True) == 3
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "[mem0.config]" in captured.err and "Traceback" not in captured.err
    assert main(Mem0Config(backend="off"), tmp_path) == 0
    assert "off" in capsys.readouterr().out


def test_platform_without_key_is_a_config_error_counted_as_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    spool = Spool(tmp_path, 100)
    spool.enqueue([record(1)])
    config = Mem0Config(backend="platform", api_key_env=KEY_ENV, host="http://127.0.0.1:9",
                        backoff_initial_seconds=30)
    clock = Clock()
    with pytest.raises(DeliveryConfigError, match=rf"\${KEY_ENV}"):
        flush(config, tmp_path, now=clock)
    # A helper started in the background has nobody to show its exit code to: the
    # failure is counted, so the backoff applies and the WARNING appears.
    state = spool.load_state()
    assert state["failures"] == 1 and state["last_error"].startswith("configuration: ")
    assert state["next_attempt_at"] >= T0 + 30 * 0.8
    assert flush(config, tmp_path, now=clock).deferred_until == state["next_attempt_at"]
    assert spool.health(T0 + 1, config) == []
    [(issue_id, severity, summary)] = spool.health(T0 + 31, config)
    assert (issue_id, severity) == (DELIVERY_ISSUE, "WARNING")
    assert summary.startswith("mem0 misconfigured for 31 s, 1 record waiting") and KEY_ENV in summary
    assert main(config, tmp_path, force=True) == mem0_delivery.EXIT_CONFIG
    assert spool.load_state()["failures"] == 2
    assert KEY_ENV in capsys.readouterr().err


# --------------------------------------------------------------------------- kill -9

_CHILD = textwrap.dedent("""
    import sys
    from aiki_hooks.config.load import Mem0Config
    from aiki_hooks.outputs.mem0.delivery import main
    config = Mem0Config(backend="rest", host=sys.argv[1], api_key_env="{env}", user_id="dev", timeout_seconds=6)
    sys.exit(main(config, sys.argv[2], force=True))
""").format(env=KEY_ENV)


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path, api_key):
    rng = random.Random(20240611)
    records = [record(i) for i in range(1, 31)]
    Spool(tmp_path, 1000).enqueue(records)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    kills = 0
    with rest_server(add_delay=0.03) as server:
        for attempt in range(8):
            before = len(server.memories)
            child = subprocess.Popen([sys.executable, "-c", _CHILD, url_of(server), str(tmp_path)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if attempt % 2:
                # right after the server stored a record: the helper is waiting for the answer,
                # so the record is in mem0 but still in the spool
                deadline = time.monotonic() + 5
                while len(server.memories) < before + rng.randint(1, 3) and time.monotonic() < deadline:
                    time.sleep(0.001)
            else:
                time.sleep(rng.uniform(0.05, 0.5))
            if child.poll() is None:
                child.kill()
                kills += 1
            child.wait(5)
        assert kills >= 4
        result = flush(rest_config(url_of(server), timeout_seconds=6), tmp_path)
        assert result.error is None and result.remaining == 0
        ids = [m["metadata"]["record_id"] for m in server.memories]
        assert ids == [r["record_id"] for r in records]  # each once, in seq order
        assert server.found >= 1  # some kill hit between "stored" and "removed from the spool"


# --------------------------------------------------------------------------- platform


def test_platform_backend_against_loopback_api(tmp_path, api_key, mem0_module):
    with serve(PlatformFake, memories=[], requests=[]) as server:
        config = Mem0Config(backend="platform", host=url_of(server), api_key_env=KEY_ENV, user_id="dev",
                            agent_id="aiki", timeout_seconds=6)
        Spool(tmp_path, 100).enqueue([record(1), record(2)])
        assert flush(config, tmp_path) == FlushResult(delivered=2)
        Spool(tmp_path, 100).enqueue([record(2)])
        assert flush(config, tmp_path) == FlushResult(skipped_existing=1)
        assert [m["messages"] for m in server.memories] == [[{"role": "user", "content": record(i)["sentence"]}]
                                                              for i in (1, 2)]
        body = server.memories[0]
        assert body["user_id"] == "dev" and body["agent_id"] == "aiki" and body["infer"] is False
        assert body["metadata"]["record_id"] == "occ1:opened"
        assert ("GET", "/v1/ping/") in server.requests
        assert os.path.isdir(tmp_path / "mem0")


@pytest.fixture(scope="module")
def mem0_module(tmp_path_factory):
    """Import mem0 once per module, with telemetry off BEFORE the import (it is read at
    import time). In CI a missing mem0 fails the test instead of skipping it."""
    saved = {k: os.environ.get(k) for k in ("MEM0_DIR", "MEM0_TELEMETRY")}
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ["MEM0_DIR"] = str(tmp_path_factory.mktemp("mem0home"))
    try:
        if os.environ.get("CI") == "true":
            import mem0
        else:
            mem0 = pytest.importorskip("mem0")
        yield mem0
    finally:
        _restore_env(saved)


def _restore_env(saved: dict) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# --------------------------------------------------------------------------- real mem0


DIMS = 64


class EmbedFake(_JsonHandler):
    """OpenAI-compatible /v1/embeddings: hashed bag of words, L2-normalised."""

    def do_POST(self):
        body = self.body()
        if self.path.endswith("/embeddings"):
            self.server.calls["embeddings"] += 1
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": _embed(str(text))}
                    for i, text in enumerate(inputs)]
            return self.reply(200, {"object": "list", "data": data, "model": body.get("model"),
                                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        if self.path.endswith("/chat/completions"):
            self.server.calls["chat"] += 1
            return self.reply(400, {"error": {"message": "no LLM in tests", "type": "invalid_request_error"}})
        self.server.calls["other"] += 1
        self.reply(404, {"error": {"message": "not found"}})


def _embed(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % DIMS] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@pytest.fixture(scope="module")
def real_mem0(mem0_module):
    """A loopback OpenAI-compatible embedder for the real mem0.Memory."""
    with serve(EmbedFake, calls={"embeddings": 0, "chat": 0, "other": 0}) as server:
        yield server


def local_config(root, embed_server, **extra) -> Mem0Config:
    base = f"{url_of(embed_server)}/v1"
    cfg = {
        "vector_store": {"provider": "qdrant", "config": {"path": str(root / "qdrant"), "collection_name": "health",
                                                          "embedding_model_dims": DIMS, "on_disk": True}},
        "embedder": {"provider": "openai", "config": {"model": "mock-embed", "api_key": "sk-offline",
                                                      "openai_base_url": base, "embedding_dims": DIMS}},
        "llm": {"provider": "openai", "config": {"model": "mock-llm", "api_key": "sk-offline",
                                                 "openai_base_url": base}},
        "history_db_path": str(root / "history.db"),
    }
    return Mem0Config(backend="local", local_config=cfg, user_id="dev", **extra)


@contextmanager
def open_memory(config: Mem0Config):
    import mem0

    memory = mem0.Memory.from_config(json.loads(json.dumps(dict(config.local_config))))
    try:
        yield memory
    finally:
        memory.close()
        memory.vector_store.client.close()


def test_real_mem0_local_round_trip_exactly_once(tmp_path, real_mem0, monkeypatch):
    for var in ("OPENROUTER_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    config = local_config(tmp_path, real_mem0)
    spool = Spool(tmp_path, 100)
    spool.enqueue([record(1), record(2, HINT), record(3)])
    started = time.monotonic()
    result = flush(config, tmp_path)
    elapsed = time.monotonic() - started
    assert result == FlushResult(delivered=3), result
    assert os.environ["MEM0_TELEMETRY"] == "False" and os.environ["MEM0_DIR"] == str(tmp_path / "mem0")
    # Same records again, as after kill -9 between add and remove: nothing added.
    spool.enqueue([record(1), record(2, HINT), record(3)])
    assert flush(config, tmp_path) == FlushResult(skipped_existing=3)
    with open_memory(config) as memory:
        everything = memory.get_all(filters={"user_id": "dev"}, top_k=100)["results"]
        with_hint = f"{record(2)['sentence']} Hint: {HINT}"  # the check's hint goes with the memory
        assert sorted(m["memory"] for m in everything) == sorted([record(1)["sentence"], with_hint,
                                                                  record(3)["sentence"]])
        one = memory.get_all(filters={"user_id": "dev", "record_id": "occ2:opened"})["results"]
        assert len(one) == 1 and one[0]["memory"] == with_hint
        assert one[0]["metadata"] == {"record_id": "occ2:opened", "occurrence_id": "occ2", "transition": "opened",
                                      "issue_id": "http:api2", "severity": "CRITICAL", "probe": "api2",
                                      "kind": "transition", "at": T0 + 2}
        hits = memory.search(record(3)["sentence"], filters={"user_id": "dev"}, top_k=1)["results"]
        assert hits[0]["memory"] == record(3)["sentence"]
    assert real_mem0.calls["chat"] == 0 and real_mem0.calls["embeddings"] >= 3
    print(f"\nreal mem0 flush of 3 records (incl. import on first use): {elapsed:.2f} s")


def test_real_mem0_store_in_use_is_a_clear_error_not_a_hang(tmp_path, real_mem0, capsys):
    config = local_config(tmp_path, real_mem0)
    Spool(tmp_path, 100).enqueue([record(1)])
    with open_memory(config):  # another holder of the Qdrant path lock
        started = time.monotonic()
        assert main(config, tmp_path) == 1
        assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert f"the Qdrant store at {tmp_path / 'qdrant'} is in use by another process" in err
    assert err.count("\n") == 1
    assert Spool(tmp_path, 100).load_state()["failures"] == 1
    # once the other holder is gone, delivery works
    assert flush(config, tmp_path, force=True) == FlushResult(delivered=1)


def test_local_config_file_and_missing_config(tmp_path, real_mem0):
    config = local_config(tmp_path, real_mem0)
    path = tmp_path / "mem0.json"
    path.write_text(json.dumps(dict(config.local_config)))
    from_file = dataclasses.replace(config, local_config=None, config_file=str(path))
    Spool(tmp_path, 100).enqueue([record(1)])
    assert flush(from_file, tmp_path) == FlushResult(delivered=1)
    broken = dataclasses.replace(from_file, config_file=str(tmp_path / "missing.json"))
    Spool(tmp_path, 100).enqueue([record(2)])
    with pytest.raises(DeliveryConfigError, match="missing.json"):
        flush(broken, tmp_path)


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("url, shown", [
    ("https://mem0.example.net", "https://mem0.example.net"),
    ("https://me:pw-123@mem0.example.net/v1", "https://me:***@mem0.example.net/v1"),
    ("https://tok-abc@mem0.example.net", "https://***@mem0.example.net"),
    ("https://mem0.example.net/base?api_key=k-1&x=2", "https://mem0.example.net/base?***"),
    ("http://[::1:9", "***"),
])
def test_safe_url_hides_credentials_and_the_query(url, shown):
    assert mem0_delivery.safe_url(url) == shown


HIDDEN = ("pw-hidden-1", "tok-hidden-2", "user-token-3", KEY)


@pytest.mark.parametrize("backend", ["platform", "rest"])
@pytest.mark.parametrize("userinfo", ["someone:pw-hidden-1@", "user-token-3@"])
def test_an_unreachable_host_with_credentials_is_reported_without_them(tmp_path, api_key, backend, userinfo,
                                                                       capsys, request):
    if backend == "platform":
        request.getfixturevalue("mem0_module")
    host = f"http://{userinfo}127.0.0.1:{closed_port()}/base?token=tok-hidden-2"
    config = Mem0Config(backend=backend, host=host, api_key_env=KEY_ENV, user_id="dev", timeout_seconds=3)
    Spool(tmp_path, 100).enqueue([record(1)])
    result = flush(config, tmp_path, force=True)
    assert result.error
    assert main(config, tmp_path, force=True) == mem0_delivery.EXIT_FAILED
    shown = [result.error, Spool(tmp_path, 100).load_state()["last_error"], capsys.readouterr().err]
    for text in shown:
        assert not [secret for secret in HIDDEN if secret in text], text
    if backend == "platform":
        assert "127.0.0.1" in result.error and "?***" in result.error


def test_a_local_config_mem0_rejects_is_described_without_its_values(tmp_path, real_mem0):
    cfg = {"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q"), "api_key": "sk-hidden-4",
                                                             "bogus_field": 1}},
           "embedder": {"provider": "openai", "config": {"api_key": "sk-hidden-5", "model": "m"}}}
    config = Mem0Config(backend="local", local_config=cfg, user_id="dev")
    Spool(tmp_path, 100).enqueue([record(1)])
    with pytest.raises(DeliveryConfigError) as caught:
        flush(config, tmp_path, force=True)
    message = caught.value.message()
    assert "vector_store" in message and "bogus_field" in message  # where and what, still useful
    last_error = Spool(tmp_path, 100).load_state()["last_error"]
    for text in (message, last_error):
        assert "hidden" not in text and "input_value" not in text and "/q" not in text, text


# --------------------------------------------------------------------------- the refresher's side


def refresher_config(tmp_path, host: str, **mem0):
    from aiki_hooks.config.load import load_config

    settings = {"backend": "rest", "host": host, "api_key_env": KEY_ENV, "user_id": "dev",
                "backoff_initial_seconds": 30, **mem0}
    path = tmp_path / "aiki.toml"
    path.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[mem0]\n'
                    + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    return load_config(path)


def test_start_mem0_flush_only_when_records_wait_the_backoff_allows_and_no_helper_runs(tmp_path, api_key):
    from aiki_hooks.cycle.engine import start_mem0_flush

    config = refresher_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    state = str(config.state_dir)
    assert start_mem0_flush(config) is None  # empty spool: no helper, no mem0 import
    spool = Spool(state, 100)
    spool.enqueue([record(1)])
    spool.record_failure("connection refused", time.time(), config.mem0)
    assert start_mem0_flush(config) is None  # the backoff is not over
    spool.record_success(time.time())
    lock = mem0_delivery._FlushLock(os.path.join(state, mem0_delivery.FLUSH_LOCK_NAME))
    assert lock.acquire()
    try:
        assert start_mem0_flush(config) is None  # a helper is still at work
    finally:
        lock.release()
    helper = start_mem0_flush(config)
    assert helper is not None
    assert helper.wait(timeout=30) == mem0_delivery.EXIT_FAILED  # the port is closed
    assert spool.load_state()["failures"] == 1 and spool.count() == 1


def trickle(conn: socket.socket, stopping: threading.Event) -> None:
    """A backend that hangs without ever tripping a read timeout: a byte every 0.1 s."""
    conn.settimeout(2)
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        while not stopping.wait(0.1):
            conn.sendall(b" ")
    except OSError:
        pass  # the killed helper's socket went away


def test_rest_whole_request_is_bound_even_for_a_trickling_backend(api_key):
    from tests.servers import RawServer

    with RawServer(trickle) as server:
        backend = mem0_delivery.RestBackend(rest_config(server.url))  # 0.5 s a request
        started = time.monotonic()
        with pytest.raises(mem0_delivery.DeliveryError, match=r"^POST /search: timed out after 0\.5 s$"):
            backend.exists(record(1))
        assert time.monotonic() - started < 1.0


def test_a_helper_killed_past_its_timeout_counts_as_a_failure(tmp_path, api_key):
    from aiki_hooks.cycle.refresher import Refresher

    # Each add answers within its 0.5 s, so only the helper's whole budget (1.5 s) stops
    # a spool of ten.
    with rest_server(add_delay=0.4) as server:
        config = refresher_config(tmp_path, url_of(server), timeout_seconds=1.5)
        spool = Spool(str(config.state_dir), 100)
        spool.enqueue([record(i) for i in range(1, 11)])
        log = _Lines()
        refresher = Refresher(config, log=log)
        refresher._tend_mem0_flush()
        helper = refresher.flush_helper
        assert helper is not None
        time.sleep(0.8)
        refresher._tend_mem0_flush()  # still within its time
        assert refresher.flush_helper is helper and helper.poll() is None
        time.sleep(1.0)
        refresher._tend_mem0_flush()
        assert helper.poll() == -9
        assert refresher.flush_helper is None  # and none restarted: the backoff runs
        stored = len(server.memories)
    state = spool.load_state()
    assert state["failures"] == 1 and "did not finish within 1.5 s" in state["last_error"]
    # What is still spooled was not confirmed; at most the one in flight was stored anyway.
    assert 1 <= spool.count() <= 9 and stored in (10 - spool.count(), 11 - spool.count())
    assert any("exceeded 1.5 s; killed" in line for line in log.lines)
    [(issue_id, _, summary)] = spool.health(state["first_failure_at"] + 30, config.mem0)
    assert issue_id == DELIVERY_ISSUE and "unreachable" in summary and "killed" in summary


def _tend_until_reaped(refresher, timeout: float = 30.0) -> None:
    refresher._tend_mem0_flush()
    helper = refresher.flush_helper
    assert helper is not None
    helper.wait(timeout=timeout)
    refresher._tend_mem0_flush()  # reaps it; the backoff keeps a new one from starting


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("broken", ["mem0 settings", "config file"])
def test_a_helper_that_exits_with_a_config_error_is_counted_once(tmp_path, api_key, broken):
    from aiki_hooks.cycle.refresher import Refresher

    config = refresher_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    if broken == "mem0 settings":  # the helper itself finds it: local backend without a mem0 config
        config = dataclasses.replace(config, mem0=dataclasses.replace(config.mem0, backend="local", host=None))
        (tmp_path / "aiki.toml").write_text(f'[state]\ndir = "{config.state_dir}"\n[mem0]\nbackend = "local"\n')
    else:  # the helper cannot even load the config the refresher started with
        (tmp_path / "aiki.toml").write_text("[mem0\n")
    spool = Spool(str(config.state_dir), 100)
    spool.enqueue([record(1)])
    log = _Lines()
    refresher = Refresher(config, log=log)
    _tend_until_reaped(refresher)
    assert refresher.flush_helper is None
    state = spool.load_state()
    assert state["failures"] == 1 and state["last_error"].startswith("configuration: ")
    assert any("invalid mem0 configuration" in line for line in log.lines)
