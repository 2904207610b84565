#!/usr/bin/python3
"""relay: a TCP relay that can hold every chunk back by a fixed delay, each direction.

    /usr/bin/python3 tests/faults/relay.py --to HOST:PORT [--delay SECONDS]

Listens on 127.0.0.1 (port chosen by the kernel), prints `READY port=N` once, then relays every
connection to HOST:PORT. SIGUSR1 turns the delay on, SIGUSR2 off. Order within a connection is
kept: a chunk leaves `delay` after it arrived, never before the chunk ahead of it.

Why it exists: the fault suite adds latency with `tc qdisc ... netem delay`, but kernels built
without CONFIG_NET_SCH_NETEM (this CI's Firecracker kernel) have no netem; loss and partitions
work there through nftables, delay does not. The relay stands in for netem's delay only.
"""

import argparse
import asyncio
import signal
import sys

state = {"delay": 0.0, "on": 0.0}


async def pump(queue, writer):
    loop = asyncio.get_running_loop()
    try:
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def one_way(reader, writer):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    task = asyncio.create_task(pump(queue, writer))
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + state["delay"], data or None))
            if not data:
                break
    except (ConnectionError, OSError):
        queue.put_nowait((0, None))
    await task


async def handle(creader, cwriter, host, port):
    try:
        sreader, swriter = await asyncio.open_connection(host, port)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(one_way(creader, swriter), one_way(sreader, cwriter))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--delay", type=float, default=1.0)
    args = ap.parse_args()
    host, port = args.to.rsplit(":", 1)
    state["on"] = args.delay
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: state.update(delay=state["on"]))
    loop.add_signal_handler(signal.SIGUSR2, lambda: state.update(delay=0.0))
    server = await asyncio.start_server(lambda r, w: handle(r, w, host, int(port)),
                                        "127.0.0.1", 0)
    print(f"READY port={server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
