"""A TCP proxy tests switch off and on: PostgreSQL "goes down" without killing the server."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from rtm.local.process import free_port


class SwitchableProxy:
    """Forwards 127.0.0.1:<port> to `target` while up; refuses and cuts connections while down."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self.up = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen only while up (`set_up`): see `set_down`."""

    async def stop(self) -> None:
        self.set_down()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def set_down(self) -> None:
        """Refuse new connections and cut every open one (what a crashed server looks like).

        Refuse, not accept and cut: nats-py (2.16) leaves the StreamWriter of a reconnect attempt
        that got no INFO unclosed, and its ResourceWarning (an error here) then fails whichever
        test the garbage collector happens to run in.
        """
        self.up = False
        if self._server is not None:
            self._server.close()  # stops listening now: connecting is refused
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def set_up(self) -> None:
        """Listen again. The socket listens before this returns (connections wait in its backlog
        until the server accepts them), so a client that connects right after is not refused."""
        if self.up:
            return
        self.up = True
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(100)
        task = asyncio.get_running_loop().create_task(self._serve(listener))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, listener: socket.socket) -> None:
        server = await asyncio.start_server(self._accept, sock=listener)
        if self.up and self._server is None:
            self._server = server
        else:  # set_down came first
            server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.transport.abort()
            self._writers.discard(sink)
