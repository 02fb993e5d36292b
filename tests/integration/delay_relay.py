#!/usr/bin/python3
"""A TCP relay that delays every byte by DELAY_MS in each direction: the
fallback for `tc qdisc ... netem delay` where the kernel has no sch_netem.

    delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS

Order is kept per direction; each chunk read is written DELAY_MS after it
was read.  Runs until killed (tests stop it by PID)."""
import asyncio
import sys


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def sender():
        while True:
            due, data = await q.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            q.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    q.put_nowait((0, None))
    try:
        await task
    except ConnectionError:
        pass


async def main():
    lhost, lport, thost, tport, delay_ms = sys.argv[1:6]
    delay = float(delay_ms) / 1000.0

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, uw, delay), pump(ur, cw, delay))

    server = await asyncio.start_server(handle, lhost, int(lport))
    print(f"relay listening on {lhost}:{lport} -> {thost}:{tport} delay {delay_ms} ms",
          flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
