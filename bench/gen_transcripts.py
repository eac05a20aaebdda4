#!/usr/bin/env python3
"""Build a realistic Claude Code transcript corpus of any size, for tests and benchmarks.

Layout as Claude Code writes it: <out>/projects/<project-slug>/<session-id>.jsonl, plus
subagent transcripts in <session-id>/subagents/agent-*.jsonl. Lines are compact JSON,
one object per line, with what makes real corpora hard:
- many projects and sessions over the last --days days, several models (some newer
  than a given price table);
- streaming duplicates: one assistant response written as 1-3 lines (one per content
  block) with the same message.id, requestId and usage;
- sidechain (subagent) turns, in the session file and in subagent files;
- tool results of heavy-tailed size (Pareto: most a few KB, a few several MB);
- user, attachment, summary, queue-operation and cost-state lines between them;
- a session resumed into a new file that repeats earlier assistant lines (duplicates
  across files);
- torn last lines (a line still being written, no newline yet) in some files.

Deterministic for a given --seed. Prompt sizes stay within the 200k context window, as
in a default Claude Code session (no long-context tier).

Usage: python3 bench/gen_transcripts.py OUT_DIR [--size-mib 200] [--seed 7] [--days 30] [--max-session-kib N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import uuid
from pathlib import Path

MODELS = [  # (model id, weight)
    ("claude-sonnet-4-5-20250929", 30),
    ("claude-opus-4-5-20251101", 15),
    ("claude-haiku-4-5-20251001", 15),
    ("claude-sonnet-4-6", 10),
    ("claude-opus-4-1-20250805", 5),
    ("claude-opus-5-5", 15),  # newer than some price tables
    ("claude-sonnet-5-5", 10),
]
CONTEXT_LIMIT = 200_000


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Generator:
    def __init__(self, out: Path, seed: int, days: int, now: dt.datetime) -> None:
        self.out = out
        self.rng = random.Random(seed)
        self.days = days
        self.now = now
        self.bytes = 0
        self.files = 0
        self.uuids = (uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in iter(int, 1))
        self.reusable: list[str] = []  # assistant lines a resumed session may repeat

    def uid(self) -> str:
        return str(next(self.uuids))

    def ts(self, moment: dt.datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def text(self, size: int) -> str:
        words = ("health", "probe", "qdrant", "daemon", "cache", "token", "refresh", "journal", "memory", "disk")
        out = []
        total = 0
        while total < size:
            word = self.rng.choice(words)
            out.append(word)
            total += len(word) + 1
        return " ".join(out)[:size]

    def tool_result_size(self) -> int:
        # Pareto tail: median ~2 KB, a few results of several MB.
        return min(int(800 * self.rng.paretovariate(1.1)), 6_000_000)

    def base(self, session: str, cwd: str, moment: dt.datetime, sidechain: bool) -> dict:
        return {"parentUuid": self.uid(), "isSidechain": sidechain, "userType": "external", "cwd": cwd,
                "sessionId": session, "version": "2.1.98", "gitBranch": "main", "uuid": self.uid(),
                "timestamp": self.ts(moment)}

    def assistant_lines(self, session, cwd, moment, model, sidechain, context) -> list[str]:
        message_id = "msg_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:24]
        request_id = "req_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:24]
        cache_read = min(context, CONTEXT_LIMIT - 30_000)
        cache_write = self.rng.randint(0, 8_000)
        fresh_input = self.rng.randint(1, 400)
        output = self.rng.randint(5, 4_000)
        usage = {"input_tokens": fresh_input, "cache_creation_input_tokens": cache_write,
                 "cache_read_input_tokens": cache_read, "output_tokens": output, "service_tier": "standard"}
        if self.rng.random() < 0.8:  # newer versions split cache writes by TTL
            one_hour = cache_write if self.rng.random() < 0.3 else 0
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": cache_write - one_hour,
                                       "ephemeral_1h_input_tokens": one_hour}
        blocks = [{"type": "text", "text": self.text(self.rng.randint(20, 1_500))}]
        if self.rng.random() < 0.7:
            blocks.append({"type": "tool_use", "id": "toolu_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:24],
                           "name": self.rng.choice(["Bash", "Read", "Edit", "Grep"]),
                           "input": {"command": self.text(self.rng.randint(10, 300))}})
        if self.rng.random() < 0.2:
            blocks.insert(0, {"type": "thinking", "thinking": self.text(self.rng.randint(50, 3_000)), "signature": "x"})
        lines = []
        for block in blocks:  # one line per content block, same id, same usage
            entry = self.base(session, cwd, moment, sidechain)
            entry.update({"message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
                                      "content": [block], "stop_reason": None, "stop_sequence": None,
                                      "usage": usage},
                          "requestId": request_id, "type": "assistant"})
            lines.append(compact(entry))
        return lines

    def user_line(self, session, cwd, moment, sidechain, tool_result: bool) -> str:
        entry = self.base(session, cwd, moment, sidechain)
        if tool_result:
            content = [{"type": "tool_result", "tool_use_id": "toolu_x", "content": self.text(self.tool_result_size())}]
            entry["toolUseResult"] = {"stdout": "", "stderr": "", "interrupted": False}
        else:
            content = self.text(self.rng.randint(20, 600))
        entry.update({"type": "user", "message": {"role": "user", "content": content}})
        return compact(entry)

    def session(self, project: Path, cwd: str, start: dt.datetime, budget: int) -> None:
        session = self.uid()
        model = self.rng.choices([m for m, _ in MODELS], weights=[w for _, w in MODELS])[0]
        lines = [compact({"type": "queue-operation", "operation": "enqueue", "timestamp": self.ts(start),
                          "sessionId": session, "content": "start"})]
        moment, context, written, subagent_lines = start, 20_000, 0, []
        if self.reusable and self.rng.random() < 0.05:
            repeated = self.rng.sample(self.reusable, min(len(self.reusable), 6))
            lines.extend(repeated)  # a resumed session repeating earlier assistant lines
        while written < budget:
            moment += dt.timedelta(seconds=self.rng.randint(2, 90), milliseconds=self.rng.randint(0, 999))
            sidechain = self.rng.random() < 0.1
            turn = [self.user_line(session, cwd, moment, sidechain, tool_result=False)]
            for _ in range(self.rng.randint(1, 6)):
                context = min(context + self.rng.randint(500, 6_000), CONTEXT_LIMIT - 20_000)
                replies = self.assistant_lines(session, cwd, moment, model, sidechain, context)
                turn.extend(replies)
                if self.rng.random() < 0.02:
                    self.reusable.append(replies[0])
                moment += dt.timedelta(seconds=self.rng.randint(1, 40), milliseconds=self.rng.randint(0, 999))
                turn.append(self.user_line(session, cwd, moment, sidechain, tool_result=True))
            if self.rng.random() < 0.1:
                turn.append(compact({"type": "summary", "summary": self.text(80), "leafUuid": self.uid()}))
            if self.rng.random() < 0.05:  # a subagent writing its own transcript
                for _ in range(self.rng.randint(1, 4)):
                    subagent_lines.extend(self.assistant_lines(session, cwd, moment, "claude-haiku-4-5-20251001",
                                                               True, 10_000))
            lines.extend(turn)
            written += sum(len(line) + 1 for line in turn)
        lines.append(compact({"type": "cost-state", "sessionId": session, "totalCostUSD": 0.0, "modelUsage": {}}))
        torn = self.rng.random() < 0.1
        self.write(project / f"{session}.jsonl", lines, torn)
        if subagent_lines:
            self.write(project / session / "subagents" / f"agent-{self.uid()[:8]}.jsonl", subagent_lines, False)

    def write(self, path: Path, lines: list[str], torn: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        if torn:  # a line still being written: half of one more assistant line, no newline
            text += lines[-2][: len(lines[-2]) // 2]
        path.write_text(text, encoding="utf-8")
        self.bytes += len(text.encode("utf-8"))
        self.files += 1

    def run(self, size_bytes: int, projects: int, session_cap: int = 8_000_000, max_files: int | None = None) -> None:
        names = [f"-home-dev-src-project-{i:02d}" for i in range(projects)]
        while self.bytes < size_bytes and (max_files is None or self.files < max_files):
            name = self.rng.choice(names)
            start = self.now - dt.timedelta(days=self.rng.uniform(0, self.days))
            start = start.replace(microsecond=self.rng.randint(0, 999) * 1000)
            budget = min(int(self.rng.lognormvariate(12.2, 1.0)), session_cap, max(10_000, size_bytes - self.bytes))
            self.session(self.out / "projects" / name, "/home/dev/src/" + name.rsplit("-", 1)[-1], start, budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size-mib", type=float, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=24)
    parser.add_argument("--max-session-kib", type=int, default=8000, help="cap on one session's size")
    parser.add_argument("--files", type=int, help="stop after this many files (with --size-mib as a cap)")
    parser.add_argument("--now", help="ISO time the corpus ends at (default: now)")
    args = parser.parse_args()
    now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.timezone.utc)
    generator = Generator(args.out, args.seed, args.days, now.astimezone(dt.timezone.utc))
    generator.run(int(args.size_mib * 1024 * 1024), args.projects, args.max_session_kib * 1024, args.files)
    print(f"wrote {generator.files} files, {generator.bytes / 1024 / 1024:.1f} MiB into {args.out}")


if __name__ == "__main__":
    os.umask(0o077)
    main()
