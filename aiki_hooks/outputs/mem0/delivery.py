"""Deliver spooled journal records into mem0: the `aiki-hooks mem0-flush` helper.

The refresher never imports this module: it only enqueues into `aiki_hooks.outputs.mem0.spool` and
spawns `aiki-hooks mem0-flush` as a child with a hard deadline (proc.run_command kills
the group), so mem0's ~1 s / ~100 MB import and any hung network call live and die in
a short-lived process. mem0 itself is imported lazily, and only after this module set
`MEM0_TELEMETRY=False` (unless `mem0.telemetry = true`) and `MEM0_DIR=<state>/mem0`
(0700): `import mem0` writes `$MEM0_DIR/config.json` and, with telemetry on, phones
home and locks a second Qdrant store.

Exactly-once, built from at-least-once plus an idempotency check
-----------------------------------------------------------------
Each record carries a stable, unique `record_id` ("<occurrence_id>:<transition>") that
is stored in the memory's metadata. For each spooled record, oldest first:

1. `backend.exists(record)` asks mem0 for a memory of this user whose metadata has
   this record_id. If there is one, the earlier attempt did land: skip the add.
2. Otherwise `backend.add(record)`; only when the backend CONFIRMED it (no exception,
   2xx) is the spool file removed.
3. The first failure stops the run, is counted in spool/state.json and schedules the
   next attempt with exponential backoff (+-20% jitter); later records wait, so they
   reach mem0 in seq order.

So every outcome of an add is safe: failed -> retried; stored but the answer was lost
(timeout after the server stored it, kill -9 between add and remove) -> found by the
exists check on the retry, not added twice. The spool file is the single source of
truth, and `<state>/mem0-flush.lock` (a non-blocking flock; the kernel drops it when a
helper dies) guarantees that two helpers never work the spool at the same time.

Limits, stated honestly:
- "platform" (hosted mem0) processes v3 adds asynchronously. If an add's answer is lost
  AND the retry comes before the platform has processed it, `exists` cannot see it yet
  and a duplicate is possible; the backoff (>= backoff_initial_seconds) makes this unlikely.
- "rest" relies on the server applying the metadata filter in POST /search (mem0's
  server passes `filters` to Memory.search, which does); the client also re-checks
  record_id in the results, so a server that ignores filters can cause a duplicate,
  never a loss.
- A record dropped from a full spool (max_spool_records) is counted and reported, not
  delivered.

Exit codes of `main`: 0 delivered / nothing to do / not due yet / another flush runs,
1 backend failure (records stay spooled), 3 configuration error. One line of output,
never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiki_hooks.config.load import ConfigError
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.outputs.mem0.spool import CONFIG_ERROR_PREFIX, Spool

if TYPE_CHECKING:
    from aiki_hooks.http_client import PostError

FLUSH_LOCK_NAME = "mem0-flush.lock"
MEM0_HOME = "mem0"
METADATA_KEYS = ("record_id", "occurrence_id", "transition", "issue_id", "severity", "probe", "kind", "at")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 3
MAX_REQUEST_TIMEOUT_SECONDS = 30.0
# The REST server's answers are a few memories (top_k 10); more is not an answer to us.
ANSWER_LIMIT_BYTES = 4 * 1024 * 1024


class DeliveryConfigError(ConfigError):
    """The mem0 settings cannot work (no config, missing key, mem0 not installed...)."""

    def __init__(self, problem: str) -> None:
        super().__init__("mem0", [problem])

    def message(self) -> str:
        return f"mem0 configuration: {self.problems[0]}"


class DeliveryError(Exception):
    """The backend failed or could not confirm; the record stays spooled."""


class Backend(Protocol):
    def exists(self, record: Mapping[str, Any]) -> bool: ...

    def add(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


BackendFactory = Callable[[Any, "str | os.PathLike"], Backend]


@dataclass(frozen=True, kw_only=True)
class FlushResult:
    delivered: int = 0
    skipped_existing: int = 0
    remaining: int = 0
    error: str | None = None
    busy: bool = False  # another flush held the lock
    deferred_until: float | None = None  # backoff: not due before this time

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- helpers


def memory_metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's identifying fields, stored with the memory (None values left out)."""
    return {key: record[key] for key in METADATA_KEYS if record.get(key) is not None}


def memory_text(record: Mapping[str, Any]) -> str:
    """What mem0 keeps of a record: its sentence, then the check's `hint` when the config
    gives one (the user's next step, for the agent that recalls the memory later)."""
    sentence, hint = str(record["sentence"]), record.get("hint")
    return f"{sentence} Hint: {hint}" if isinstance(hint, str) and hint.strip() else sentence


def messages_for(record: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"role": "user", "content": memory_text(record)}]


def add_options(config: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `add` shared by the SDK backends (Memory and MemoryClient)."""
    options: dict[str, Any] = {"user_id": config.user_id, "metadata": memory_metadata(record),
                               "infer": bool(config.infer)}
    if config.agent_id:
        options["agent_id"] = config.agent_id
    return options


def request_timeout(config: Any) -> float:
    """Per-call timeout: a third of the helper's whole budget, at most 30 s."""
    return max(0.2, min(float(config.timeout_seconds) / 3.0, MAX_REQUEST_TIMEOUT_SECONDS))


def prepare_environment(config: Any, state_dir: str | os.PathLike) -> str:
    """Set MEM0_TELEMETRY / MEM0_DIR before mem0 is imported. Returns MEM0_DIR."""
    from aiki_hooks.paths import ensure_private_dir

    if not config.telemetry:
        os.environ["MEM0_TELEMETRY"] = "False"
    home = os.path.join(os.fspath(state_dir), MEM0_HOME)
    ensure_private_dir(home)
    os.environ["MEM0_DIR"] = home
    return home


def _import_mem0(config: Any, state_dir: str | os.PathLike):
    prepare_environment(config, state_dir)
    try:
        import mem0
    except ImportError as exc:
        raise DeliveryConfigError(f'mem0.backend = "{config.backend}" needs the mem0ai package '
                                  f"(the extra aiki-hooks[mem0]: ./install.sh --with-mem0, or pip install 'aiki-hooks[mem0]'): "
                                  f"{exc}") from None
    return mem0


def _matches(items: Any, record_id: str) -> bool:
    """True if a mem0 listing/search answer holds a memory with this record_id."""
    if isinstance(items, dict):
        items = items.get("results", items.get("memories", []))
    if not isinstance(items, list):
        return False
    for item in items:
        if not isinstance(item, dict):
            continue
        metadata = item.get("metadata")
        if (isinstance(metadata, dict) and metadata.get("record_id") == record_id) or item.get("record_id") == record_id:
            return True
    return False


def safe_url(url: str) -> str:
    """A URL fit for an error text (which reaches the cache, the journal and mem0):
    config.redact_url (password, query, token-like parts), and a user name without a
    password too: in a URL for an API that is a token, however short."""
    from aiki_hooks.config.load import redact_url

    shown = redact_url(url)
    scheme, sep, rest = shown.partition("://")
    userinfo, at, after = rest.partition("@")
    if sep and at and "/" not in userinfo and ":" not in userinfo:
        return f"{scheme}://***@{after}"
    return shown


def redact(text: str, config: Any) -> str:
    """*text* without the secrets this config can lead to: the API key's value and the
    credentials in mem0.host."""
    host = getattr(config, "host", None)
    secrets = []
    if host:
        from urllib.parse import urlsplit

        text = text.replace(host, safe_url(host)).replace(host.rstrip("/"), safe_url(host.rstrip("/")))
        try:
            parts = urlsplit(host)
            secrets += [parts.password, parts.query, parts.username if parts.password is None else None]
        except ValueError:
            pass
    secrets.append(os.environ.get(getattr(config, "api_key_env", None) or "", ""))
    for secret in secrets:
        if secret and len(secret) >= 4:  # a one-letter user name would mangle the text
            text = text.replace(secret, "***")
    return text


SECRET_KEY_WORDS = ("key", "token", "secret", "password", "credential")


def _config_error_text(exc: BaseException, cfg: Mapping[str, Any]) -> str:
    """A rejected local config, described without its values (an api_key lives there):
    pydantic's locations and messages only; any other error with secret-looking values
    of *cfg* masked."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            try:
                items = errors(include_input=False, include_url=False, include_context=False)
            except TypeError:  # an older pydantic
                items = errors()
            text = "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ())) or '(top)'}: {item.get('msg')}"
                             for item in items)
            if text:
                return text if len(text) <= 300 else text[:297] + "..."
        except Exception:  # noqa: BLE001, S110 - fall back to the masked text below
            pass
    text = _describe(exc)
    for value in _secret_values(cfg):
        text = text.replace(value, "***")
    return text


def _secret_values(node: Any, secret: bool = False) -> list[str]:
    if isinstance(node, Mapping):
        return [v for key, value in node.items()
                for v in _secret_values(value, secret or any(w in str(key).lower() for w in SECRET_KEY_WORDS))]
    if isinstance(node, (list, tuple)):
        return [v for value in node for v in _secret_values(value, secret)]
    return [str(node)] if secret and isinstance(node, str) and len(node) >= 4 else []


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    name = exc.__class__.__name__
    text = text if text.startswith(name) or name in ("DeliveryError",) else f"{name}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- local


class LocalBackend:
    """mem0 OSS `Memory` in this process (e.g. Qdrant local mode + a local embedder)."""

    def __init__(self, config: Any, state_dir: str | os.PathLike) -> None:
        self.config = config
        cfg = self._load_config(config)
        mem0 = _import_mem0(config, state_dir)
        self.store_path = _qdrant_path(cfg)
        try:
            self.memory = mem0.Memory.from_config(cfg)
        except RuntimeError as exc:
            if "already accessed by another instance" in str(exc):
                where = self.store_path or "(see the error)"
                raise DeliveryError(f"the Qdrant store at {where} is in use by another process (mem0 local mode "
                                    "allows one); stop it or use a Qdrant server") from None
            raise
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise DeliveryConfigError(f"mem0 rejected the local config: {_config_error_text(exc, cfg)}") from None

    @staticmethod
    def _load_config(config: Any) -> dict[str, Any]:
        if config.local_config:
            return json.loads(json.dumps(dict(config.local_config)))  # a plain, mutable deep copy
        if config.config_file:
            try:
                with open(config.config_file, "rb") as file:
                    loaded = json.loads(file.read())
            except OSError as exc:
                raise DeliveryConfigError(f"mem0.config_file {config.config_file}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise DeliveryConfigError(f"mem0.config_file {config.config_file} is not valid JSON: {exc}") from None
            if not isinstance(loaded, dict):
                raise DeliveryConfigError(f"mem0.config_file {config.config_file}: expected a JSON object")
            return loaded
        raise DeliveryConfigError('backend = "local" needs a [mem0.config] table (what Memory.from_config takes) '
                                  "or mem0.config_file pointing at a JSON mem0 config")

    def exists(self, record: Mapping[str, Any]) -> bool:
        record_id = str(record["record_id"])
        found = self.memory.get_all(filters={"user_id": self.config.user_id, "record_id": record_id}, top_k=5)
        return _matches(found, record_id)

    def add(self, record: Mapping[str, Any]) -> None:
        self.memory.add(messages_for(record), **add_options(self.config, record))

    def close(self) -> None:
        memory = getattr(self, "memory", None)
        if memory is None:
            return
        try:
            memory.close()
        finally:
            client = getattr(getattr(memory, "vector_store", None), "client", None)
            if client is not None and hasattr(client, "close"):
                client.close()  # releases the Qdrant local path lock


def _qdrant_path(cfg: Mapping[str, Any]) -> str | None:
    store = cfg.get("vector_store") or {}
    if not isinstance(store, dict) or store.get("provider", "qdrant") != "qdrant":
        return None
    inner = store.get("config") or {}
    if inner.get("url") or inner.get("host"):
        return None
    return inner.get("path") or "/tmp/qdrant"


# --------------------------------------------------------------------------- platform


class PlatformBackend:
    """Hosted mem0 (or a self-hosted platform at mem0.host) through `mem0.MemoryClient`."""

    def __init__(self, config: Any, state_dir: str | os.PathLike) -> None:
        self.config = config
        api_key = os.environ.get(config.api_key_env, "")
        if not api_key:
            raise DeliveryConfigError(f'backend = "platform" needs the API key in ${config.api_key_env} '
                                      "(mem0.api_key_env names the variable)")
        mem0 = _import_mem0(config, state_dir)
        import httpx

        # Our own httpx client: MemoryClient's default timeout is 300 s.
        self._http = httpx.Client(timeout=request_timeout(config))
        try:
            self.client = mem0.MemoryClient(api_key=api_key, host=config.host, client=self._http)
        except Exception as exc:  # noqa: BLE001 - the constructor pings /v1/ping/: network or auth trouble
            self._http.close()
            where = safe_url(config.host) if config.host else "https://api.mem0.ai"
            raise DeliveryError(redact(f"cannot reach mem0 at {where}: {_describe(exc)}", config)) from None

    def exists(self, record: Mapping[str, Any]) -> bool:
        record_id = str(record["record_id"])
        found = self.client.get_all(filters={"AND": [{"user_id": self.config.user_id},
                                                     {"metadata": {"record_id": record_id}}]})
        return _matches(found, record_id)

    def add(self, record: Mapping[str, Any]) -> None:
        self.client.add(messages_for(record), **add_options(self.config, record))

    def close(self) -> None:
        self._http.close()


# --------------------------------------------------------------------------- rest


class RestBackend:
    """mem0's self-hosted REST server (`server/main.py`): POST /memories, POST /search.

    `exists` uses POST /search with the exact sentence as the query and
    filters {user_id, record_id}: the filter is exact and applied in the vector store,
    so the answer does not depend on how many memories the user has. (GET /memories
    only filters by entity and returns a bounded page, so an old record could be missed
    and re-added.) The results are re-checked for the record_id.
    """

    def __init__(self, config: Any, state_dir: str | os.PathLike = "") -> None:
        if not config.host:
            raise DeliveryConfigError('backend = "rest" needs mem0.host, the base URL of the mem0 REST server')
        self.config = config
        self.base = config.host.rstrip("/")
        self.timeout = request_timeout(config)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = os.environ.get(config.api_key_env or "", "")
        if api_key:
            self.headers["X-API-Key"] = api_key

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST through http_client.post, the whole request within the timeout; the answer
        as JSON. Every failure is a DeliveryError (a retryable outage)."""
        from aiki_hooks import http_client

        try:
            response = http_client.post(self.base + path, json.dumps(body).encode("utf-8"), headers=self.headers,
                                        timeout=self.timeout, body_limit=ANSWER_LIMIT_BYTES)
        except http_client.PostError as error:
            raise DeliveryError(self._error_text(path, error)) from None
        text = response.body.decode("utf-8", "replace")
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            raise DeliveryError(f"POST {path}: HTTP {response.status} but the answer is not JSON") from None

    def _error_text(self, path: str, error: PostError) -> str:
        """What DeliveryError says for http_client's PostError *error*: never the key."""
        from aiki_hooks import http_client

        if error.kind == http_client.BAD_URL:
            return f"POST {path}: cannot parse mem0.host {safe_url(self.base)}"
        if error.kind in (http_client.URL_REFUSED, http_client.HEADER_REFUSED):
            # http.client's message would quote the key or the path.
            return f"POST {path}: http.client refused mem0.host's path or the key in ${self.config.api_key_env}"
        if error.kind == http_client.TIMEOUT:
            return f"POST {path}: timed out after {self.timeout:g} s"
        response = error.response
        assert response is not None  # set for every other kind
        if error.kind != http_client.HTTP_STATUS:
            return f"POST {path}: {response.failure_reason}"
        status, text = response.status or 0, response.body.decode("utf-8", "replace")
        hint = f" (check the key in ${self.config.api_key_env})" if status in (401, 403) else ""
        return f"POST {path}: HTTP {status}{hint}: {' '.join(text.split())[:200]}"

    def exists(self, record: Mapping[str, Any]) -> bool:
        record_id = str(record["record_id"])
        found = self._post("/search", {
            "query": memory_text(record),
            "filters": {"user_id": self.config.user_id, "record_id": record_id},
            "top_k": 10,
            "threshold": 0.0,
        })
        return _matches(found, record_id)

    def add(self, record: Mapping[str, Any]) -> None:
        body: dict[str, Any] = {"messages": messages_for(record), "user_id": self.config.user_id,
                                "metadata": memory_metadata(record), "infer": bool(self.config.infer)}
        if self.config.agent_id:
            body["agent_id"] = self.config.agent_id
        self._post("/memories", body)

    def close(self) -> None:
        """Nothing held open: each request has its own connection."""


# --------------------------------------------------------------------------- flush


def make_backend(config: Any, state_dir: str | os.PathLike) -> Backend:
    if config.backend == "local":
        return LocalBackend(config, state_dir)
    if config.backend == "platform":
        return PlatformBackend(config, state_dir)
    if config.backend == "rest":
        return RestBackend(config, state_dir)
    raise DeliveryConfigError(f'mem0.backend = "{config.backend}": nothing to deliver to')


class _FlushLock:
    """Non-blocking flock: a second flush returns at once instead of queueing."""

    def __init__(self, path: str) -> None:
        self.path, self.fd = path, -1

    def acquire(self) -> bool:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            self.fd = -1
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return True

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def flush(config: Any, state_dir: str | os.PathLike, *, now: Callable[[], float] = time.time,
          backend_factory: BackendFactory | None = None, force: bool = False) -> FlushResult:
    """Deliver pending records oldest first; stop at the first failure.

    Raises DeliveryConfigError when the settings cannot work (also counted as a failed
    attempt, so the backoff and the WARNING apply).
    `force` ignores the backoff schedule (a user's manual flush).
    """
    config = getattr(config, "mem0", config)
    state_dir = os.fspath(state_dir)
    spool = Spool(state_dir, config.max_spool_records)
    lock = _FlushLock(os.path.join(state_dir, FLUSH_LOCK_NAME))
    if not lock.acquire():
        return FlushResult(remaining=spool.count(), busy=True)
    try:
        state = spool.load_state()
        if not force and not spool.due(now()):
            return FlushResult(remaining=spool.count(), deferred_until=state.get("next_attempt_at"))
        pending = spool.pending()
        if not pending:
            if state.get("failures"):
                spool.record_success(now())  # nothing left to deliver: the outage no longer matters
            return FlushResult()
        try:
            backend = (backend_factory or make_backend)(config, state_dir)
        except DeliveryConfigError as exc:
            # Counted like an outage (backoff, then the mem0:delivery WARNING): a helper
            # started in the background has nobody to show its exit code to.
            spool.record_failure(redact(f"{CONFIG_ERROR_PREFIX}{exc.problems[0]}", config), now(), config)
            raise
        except Exception as exc:  # noqa: BLE001 - mem0 raises many types; all mean "retry later"
            error: str | None = redact(_describe(exc), config)
            spool.record_failure(error or "", now(), config)
            return FlushResult(remaining=spool.count(), error=error,
                               deferred_until=spool.load_state().get("next_attempt_at"))
        delivered = skipped = 0
        error = None
        try:
            for path, record in pending:
                if not record.get("record_id") or not isinstance(record.get("sentence"), str):
                    spool.quarantine(path)  # can never be delivered idempotently
                    continue
                try:
                    if backend.exists(record):
                        skipped += 1
                    else:
                        backend.add(record)
                        delivered += 1
                except Exception as exc:  # noqa: BLE001 - the record stays spooled; backoff
                    error = redact(_describe(exc), config)
                    break
                spool.remove(path)
        finally:
            try:
                backend.close()
            except Exception:  # noqa: BLE001, S110 - the records' fate is already decided
                pass  # a failing close changes nothing
        if error is not None:
            spool.record_failure(error, now(), config)
            return FlushResult(delivered=delivered, skipped_existing=skipped, remaining=spool.count(),
                               error=error, deferred_until=spool.load_state().get("next_attempt_at"))
        spool.record_success(now())
        return FlushResult(delivered=delivered, skipped_existing=skipped, remaining=spool.count())
    finally:
        lock.release()


def summary_line(result: FlushResult, now: float) -> str:
    if result.busy:
        return f"mem0: another flush is running ({result.remaining} waiting)"
    parts = f"delivered {result.delivered}"
    if result.skipped_existing:
        parts += f", {result.skipped_existing} already in mem0"
    if result.error is not None:
        retry = ""
        if result.deferred_until:
            retry = f", next attempt in {fmt_duration_words(result.deferred_until - now)}"
        return f"mem0: delivery failed: {result.error} ({parts}; {result.remaining} waiting{retry})"
    if result.deferred_until and result.delivered == 0:
        return (f"mem0: backing off, next attempt in {fmt_duration_words(result.deferred_until - now)} "
                f"({result.remaining} waiting)")
    return f"mem0: {parts}, {result.remaining} waiting"


def main(config: Any, state_dir: str | os.PathLike, *, force: bool = False, quiet: bool = True,
         backend_factory: BackendFactory | None = None) -> int:
    """The CLI's `mem0-flush`: one line out, exit 0 / 1 (backend failure) / 3 (config).

    `quiet` (the default) silences mem0's own log lines and warnings ("spaCy is not
    installed", "fastembed not installed"...): our one line already says what happened.
    Pass quiet=False for `--debug`.
    """
    mem0_config = getattr(config, "mem0", config)
    if mem0_config.backend == "off":
        print('mem0: delivery is off (mem0.backend = "off")')
        return EXIT_OK
    if quiet:
        import logging
        import warnings

        # A handler anywhere in the tree stops logging's stderr "last resort" output.
        root = logging.getLogger()
        if not root.handlers:
            root.addHandler(logging.NullHandler())
        warnings.simplefilter("ignore")
    try:
        result = flush(mem0_config, state_dir, force=force, backend_factory=backend_factory)
    except ConfigError as exc:
        text = exc.message() if hasattr(exc, "message") else str(exc)
        print(f"aiki-hooks mem0-flush: {redact(text, mem0_config)}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # noqa: BLE001 - never a traceback from the helper
        error = redact(_describe(exc), mem0_config)
        print(f"aiki-hooks mem0-flush: {error}", file=sys.stderr)
        try:  # counted like any failed attempt, if the spool itself still works
            Spool(os.fspath(state_dir), mem0_config.max_spool_records).record_failure(error, time.time(), mem0_config)
        except Exception:  # noqa: BLE001, S110 - the line above already said what went wrong
            pass
        return EXIT_FAILED
    line = summary_line(result, time.time())
    if result.error is not None:
        print(line, file=sys.stderr)
        return EXIT_FAILED
    print(line)
    return EXIT_OK
