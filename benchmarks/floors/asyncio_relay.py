"""Relay floor (a): an asyncio streams line relay.

``python asyncio_relay.py -- COMMAND ARGS...`` spawns COMMAND with
``asyncio.create_subprocess_exec`` and relays lines both ways with
``StreamReader.readline`` (a limit large enough for 20 MB frames) and
``StreamWriter.write`` + ``drain``: the event-loop design, with no policy.
"""

from __future__ import annotations

import asyncio
import os
import sys

_LIMIT = 1 << 26  # 64 MiB: the largest line the floor relays


async def _relay(command: list[str]) -> int:
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_LIMIT
    )
    assert proc.stdin is not None and proc.stdout is not None
    client_reader = asyncio.StreamReader(limit=_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client_reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", 0))
    client_writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def client_to_upstream() -> None:
        assert proc.stdin is not None
        while line := await client_reader.readline():
            proc.stdin.write(line)
            await proc.stdin.drain()
        proc.stdin.close()

    async def upstream_to_client() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            client_writer.write(line)
            await client_writer.drain()

    forward = asyncio.create_task(client_to_upstream())
    await upstream_to_client()
    forward.cancel()
    return await proc.wait()


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]
    code = asyncio.run(_relay(command))
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
