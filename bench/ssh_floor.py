"""Benchmark floor for SSH fan-out: a bare asyncssh script, nothing of runner.

    python bench/ssh_floor.py HOST PORT USER KEY KNOWN_HOSTS N PARALLEL [ROUNDS] [COMMAND]

Opens N connections (PARALLEL at a time, host keys verified) and runs COMMAND once on each.
With ROUNDS > 0 it instead opens the N connections untimed, then prints the seconds that
ROUNDS rounds of COMMAND over the already-open connections take (the pooled floor), and
the CPU seconds this process spent on them.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncssh


async def main(host: str, port: int, user: str, key: str, known: str, n: int, parallel: int,
               rounds: int, command: str) -> None:
    gate = asyncio.Semaphore(parallel)
    keys = [asyncssh.read_private_key(key)]
    hosts = asyncssh.read_known_hosts(known)

    async def connect() -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(host, port, username=user, client_keys=keys,
                                      known_hosts=hosts, config=None)

    async def once(conn: asyncssh.SSHClientConnection | None) -> None:
        async with gate:
            if conn is None:
                async with await connect() as c:
                    result = await c.run(command, check=True)
            else:
                result = await conn.run(command, check=True)
            assert result.stdout

    if rounds == 0:
        await asyncio.gather(*(once(None) for _ in range(n)))
        return
    conns: list[asyncssh.SSHClientConnection] = []
    for start in range(0, n, parallel):
        conns += await asyncio.gather(*(connect() for _ in range(start, min(n, start + parallel))))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        await asyncio.gather(*(once(c) for c in conns))
    print(f"{time.perf_counter() - t0:.4f} {time.process_time() - c0:.4f}")
    for c in conns:
        c.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], int(a[1]), a[2], a[3], a[4], int(a[5]), int(a[6]),
                     int(a[7]) if len(a) > 7 else 0, a[8] if len(a) > 8 else "echo ok"))
