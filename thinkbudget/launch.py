"""Run `thinkbudget serve` (or any OpenAI-compatible server command) as a subprocess on
loopback and wait until `/health` answers: `thinkbudget eval` serves a model folder this way,
and the tests and benchmarks start their servers with it.

The server runs in its own process group (session), and `stop()` signals the whole group: vLLM's
EngineCore and worker processes go with the front process, also when the server is stopped
during start-up, so no engine outlives its server (or holds a GPU's memory)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        args: list[str],
        log: Path,
        *,
        module: str = "thinkbudget serve",
        startup_s: float = 300,
        ca_cert: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        # ca_cert: the server speaks TLS (--ssl-certfile) with a certificate this CA signed
        self.verify: str | bool = str(ca_cert) if ca_cert else True
        self.url = f"{'https' if ca_cert else 'http'}://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", *module.split(), "--port", str(self.port), *args]
        env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1", **(env or {})}
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            self._wait_healthy(startup_s)
        except BaseException:
            self.stop()  # also on Ctrl-C during start-up: no engine is left behind
            raise

    def _wait_healthy(self, startup_s: float) -> None:
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: see {self.log_path}"
                )
            try:
                health = httpx.get(self.url + "/health", timeout=1, verify=self.verify)
                if health.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server did not start in {startup_s} s: see {self.log_path}")

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> int | None:
        """SIGTERM to the server (graceful shutdown: it drains, then stops its engine), SIGKILL
        to whatever of its process group is left after 60 s or once it has exited. Only the
        front process gets the SIGTERM: sent to the whole group, it would stop the engine
        under requests still draining (the server then exits as if the engine had died)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._signal_group(signal.SIGKILL)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
