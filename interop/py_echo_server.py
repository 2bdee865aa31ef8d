#!/usr/bin/env python3
"""A Python `websockets` echo server for the core's WebSocket client.

usage: py_echo_server.py   (binds 127.0.0.1 on a free port and prints "PORT <n>")

Echoes every text and binary message unchanged, messages up to 16 MiB.
"""

import asyncio

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=16 << 20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
