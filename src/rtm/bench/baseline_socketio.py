"""The `socketio` baselines: the same rooms served by Socket.IO, the usual way to build this.

Both servers do the same and nothing more: a client connects to the main namespace with
`{"room": ..., "role": "receiver" | "sender"}` as its auth payload; a receiver joins its room
(before the connect is answered, or right as it is), a sender doesn't; a `send` event is
broadcast to its room as a `message` event (`type`, `conversation_id`, `sender_id`,
`client_msg_id`, `body`: what the load generator reads of rtm's `message` frame, without a `seq`,
since nothing is stored) and acked to its sender with `{"type": "ack", "client_msg_id": ...}`.
The websocket transport only: no long-polling upgrade dance.

* `python_main`: python-socketio's `AsyncServer` as an ASGI app under uvicorn with uvloop and
  httptools, in a process of its own. python-socketio is imported here only, never by the
  services.
* `NodeServer`: Node's socket.io 4.8, when `node` and `npm` are on PATH. socket.io is installed
  with npm into a cache folder (`~/.cache/rtm/bench-node`) on first use, never into the
  repository; when that is impossible the row is skipped with a note, and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

NODE_PACKAGE = "socket.io@4.8"
NPM_TIMEOUT_S = 300.0

NODE_SERVER = """\
// Written by rtm bench (rtm/bench/baseline_socketio.py); the socket.io baseline's server.
const http = require("http");
const { Server } = require("socket.io");

const server = http.createServer();
const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 1 << 20,
});
io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  if (auth.role === "receiver") socket.join(String(auth.room));
  socket.on("send", (data, ack) => {
    io.to(String(data.conversation_id)).emit("message", {
      type: "message",
      conversation_id: data.conversation_id,
      sender_id: socket.id,
      client_msg_id: data.client_msg_id,
      body: data.body,
    });
    if (typeof ack === "function") ack({ type: "ack", client_msg_id: data.client_msg_id });
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\\n");
});
// The parent closes our stdin to stop us.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
"""


def python_main(conn: Connection) -> None:
    """python-socketio under uvicorn on a free loopback port (sent back over `conn`) until told
    to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import socketio
    import uvicorn
    import uvloop

    sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], logger=False)

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
        auth = auth or {}
        if auth.get("role") == "receiver":
            await sio.enter_room(sid, str(auth.get("room")))

    @sio.on("send")  # type: ignore[untyped-decorator]
    async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        room = str(data["conversation_id"])
        message = {
            "type": "message",
            "conversation_id": room,
            "sender_id": sid,
            "client_msg_id": data["client_msg_id"],
            "body": data["body"],
        }
        await sio.emit("message", message, room=room)
        return {"type": "ack", "client_msg_id": data["client_msg_id"]}

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        socketio.ASGIApp(sio),
        loop="none",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        # The socket is bound and listening before uvicorn starts: a client that connects
        # early waits in the backlog until uvicorn accepts it.
        listener.listen(4096)
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        conn.send(int(listener.getsockname()[1]))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        server.should_exit = True
        await serving

    try:
        uvloop.run(main())
    finally:
        conn.close()


def node_cache() -> Path:
    """Where socket.io for Node is installed: outside the repository, kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtm" / "bench-node"


async def _run(*command: str, cwd: Path, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"timed out after {timeout:.0f} s"
    return process.returncode or 0, out.decode(errors="replace")


async def prepare_node(folder: Path) -> tuple[str | None, str]:
    """(path of the server script, node's version), or (None, why not): `node` and `npm` on
    PATH, socket.io installed in `folder` (npm, on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node and npm are not both on PATH"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    installed = folder / "node_modules" / "socket.io" / "package.json"
    if not await asyncio.to_thread(installed.exists):
        code, out = await _run(
            npm,
            "install",
            "--prefix",
            str(folder),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            NODE_PACKAGE,
            cwd=folder,
            timeout=NPM_TIMEOUT_S,
        )
        if code != 0 or not await asyncio.to_thread(installed.exists):
            last = out.strip().splitlines()[-1:] or ["no output"]
            return None, f"npm install {NODE_PACKAGE} failed ({code}): {last[0][:200]}"
    script = folder / "server.js"
    await asyncio.to_thread(script.write_text, NODE_SERVER)
    _, version = await _run(node, "--version", cwd=folder, timeout=30)
    return str(script), version.strip()


class NodeServer:
    """`node server.js` in the cache folder; stopped by closing its stdin (or killed)."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 30.0) -> int:
        """Start it; its port."""
        import orjson

        node = shutil.which("node") or "node"
        self.process = await asyncio.create_subprocess_exec(
            node,
            self.script,
            cwd=Path(self.script).parent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise ConnectionError("node exited before listening")
        return int(orjson.loads(line)["port"])

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
