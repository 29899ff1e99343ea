#!/usr/bin/env python3
"""The test control plane's cluster network (test tooling): an HTTP CONNECT proxy on a Unix
socket that the API server dials pods, services and nodes through (its egress selector, as with
konnectivity on real clusters). Every address is this machine: `CONNECT 10.244.0.7:8080`
connects to 127.0.0.1:8080. So a Service whose endpoints name any pod IP and the port of a
process listening on loopback takes the API server's service proxy to that process.

    cluster-network.py SOCKET
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return writer.close()
        port = int(target.rsplit(":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        return writer.close()
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main(path):
    server = await asyncio.start_unix_server(handle, path)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
