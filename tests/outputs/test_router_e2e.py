"""Issue 7 end to end: the real refresher routes its cycles through [[outputs]]: every
snapshot to a JSON-lines file, only CRITICAL transitions to a webhook on 127.0.0.1, the
metrics to a /metrics endpoint that a real Prometheus scrapes; a broken output becomes a
WARNING issue without stopping the others."""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import urllib.parse

from aiki_hooks.cycle.cache import read_cache
from tests.conftest import cli_env, quiet_config

from tests.issues.test_journal_cli import PLUGIN, wait_for
from .test_metrics import _free_port, _get, _prometheus_binary


class Recorder(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Recorder.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_outputs_route_filter_and_survive_a_broken_one(tmp_path):
    prometheus = _prometheus_binary()
    flag, plugin = tmp_path / "stuck", tmp_path / "check_queue"
    plugin.write_text(PLUGIN.format(flag=flag))
    plugin.chmod(0o755)
    flag.touch()
    (tmp_path / "not-a-file").mkdir()
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    metrics_port = _free_port()
    state = tmp_path / "state"
    config = tmp_path / "aiki.toml"
    quiet_config(config, state, interval=0.3, extra=f"""
[journal]
open_after_cycles = 1
[[probes.command]]
name = "queue"
command = ["{plugin}"]
[[probes.tcp]]
name = "pg"
host = "127.0.0.1"
port = 1
[[outputs]]
type = "cache"
[[outputs]]
type = "journal"
[[outputs]]
type = "jsonl"
name = "archive"
path = "{tmp_path / 'health.jsonl'}"
[[outputs]]
type = "webhook"
name = "pager"
url = "http://127.0.0.1:{hook.server_address[1]}/hook"
min_severity = "CRITICAL"
probes = ["command:*"]
[[outputs]]
type = "prometheus_http"
port = {metrics_port}
[[outputs]]
type = "jsonl"
name = "broken"
path = "{tmp_path / 'not-a-file'}"
""")
    env = cli_env(AIKI_HOOKS_CONFIG=str(config))
    refresher = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "refresher"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    web_port = _free_port()
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: aiki\n"
                           f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
    prom = subprocess.Popen([prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{web_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        cache = state / "system_health.json"
        broken = wait_for(lambda: next((i for i in (read_cache(cache).data or {}).get("issues", [])
                                        if i["id"] == "output:broken"), None))
        assert broken["severity"] == "WARNING" and "broken" in broken["summary"]
        # Only the CRITICAL command transition reached the webhook, not the tcp one.
        payload = wait_for(lambda: Recorder.received and Recorder.received[0])
        ids = {t["issue_id"] for t in payload["transitions"]}
        assert ids == {"command:queue"}
        # Every snapshot reached the archive, unfiltered. The cache may show the second
        # cycle before its line is appended (the outputs run in turn): wait for that line.
        archive = tmp_path / "health.jsonl"
        lines = wait_for(lambda: len(found := archive.read_text().splitlines()) >= 2 and found)
        assert len(lines) >= 2 and {p["name"] for p in json.loads(lines[-1])["probes"]} >= {"queue", "pg"}

        query = urllib.parse.urlencode({"query": 'aiki_probe_status{probe="queue"}'})

        def scraped():
            try:
                return json.loads(_get(f"http://127.0.0.1:{web_port}/api/v1/query?{query}", timeout=2)[2])["data"][
                    "result"]
            except (OSError, ValueError, KeyError):
                return None

        (series,) = wait_for(scraped, timeout=30, step=0.25)
        assert series["metric"]["kind"] == "command" and float(series["value"][1]) == 2
    finally:
        prom.terminate()
        refresher.send_signal(signal.SIGTERM)
        _, err = refresher.communicate(timeout=20)
        prom.wait(timeout=10)
        hook.shutdown()
    assert "Traceback" not in err
