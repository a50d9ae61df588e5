"""`ServerProcess` stops the whole server: a server stopped during start-up, once vLLM's engine
processes exist, leaves no process of its group behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from harness.tiny import tiny_server_args
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def live_processes() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid ...
        if fields[0] != "Z":
            found[int(entry)] = int(fields[1])
    return found


def descendants(pid: int) -> set[int]:
    parents = live_processes()
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree - {pid}


def test_stop_during_startup_leaves_no_engine(tiny_model, monkeypatch):
    started: dict[str, object] = {}

    def start() -> None:
        try:
            started["server"] = ServerProcess(
                tiny_server_args(tiny_model), ROOT / ".cache" / "logs" / "test-launch.log"
            )
        except RuntimeError as exc:  # the stop below ends the start-up
            started["error"] = exc

    thread = threading.Thread(target=start, daemon=True)
    original = ServerProcess._wait_healthy
    seen: list[ServerProcess] = []

    def record(self, startup_s):  # the instance, as soon as its process exists
        seen.append(self)
        return original(self, startup_s)

    monkeypatch.setattr(ServerProcess, "_wait_healthy", record)
    thread.start()
    deadline = time.monotonic() + 240
    while not seen and time.monotonic() < deadline:
        time.sleep(0.1)
    server = seen[0]
    # wait for vLLM's engine processes (children of the server), then stop mid-start-up
    while not descendants(server.proc.pid) and time.monotonic() < deadline:
        assert server.proc.poll() is None, server.log_path.read_text()[-2000:]
        time.sleep(0.2)
    engine = descendants(server.proc.pid)
    assert engine, "no engine process appeared"
    assert "server" not in started  # still starting
    server.stop()
    thread.join(120)
    assert not thread.is_alive() and "error" in started
    time.sleep(1)
    assert not (engine | {server.proc.pid}) & set(live_processes())
