"""The floor for the FastAGI benchmark: a server with no logic at all.

It reads the same header, makes one pipelined Redis round trip (the same fact reads the
screener makes plus one stream append, standing for the decision log) and sets the same four
variables with the same strict one-command-at-a-time exchange. Whatever callscreen spends
above this is the cost of deciding, proving and guarding.

    python bench/agi_floor.py PORT REDIS_URL
"""

from __future__ import annotations

import asyncio
import signal
import sys

import redis.asyncio

KINDS = ("consents", "optouts", "objections", "suppressions", "contact")


async def main(port: int, url: str) -> None:
    client = redis.asyncio.Redis.from_url(url)

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = {}
        while True:
            line = await reader.readline()
            if not line or line == b"\n":
                break
            key, _, value = line.decode().rstrip("\n").partition(": ")
            env[key] = value
        number = env.get("agi_arg_2") or env.get("agi_extension", "")
        pipe = client.pipeline(transaction=False)
        for kind in KINDS:
            pipe.hgetall(f"floor:{{{number}}}:{kind}")
        pipe.zrevrangebyscore(f"floor:{{{number}}}:attempts", "+inf", 0, start=0, num=4, withscores=True)
        pipe.xadd("floor:log", {"n": number, "r": "ALLOW"}, maxlen=100_000, approximate=True)
        await pipe.execute()
        for name, value in (("SCREEN_ID", "d-floor-00000000"), ("SCREEN_REASON", "consent"),
                            ("SCREEN_BASIS", "consent:web_form:2026-05-01"), ("SCREEN_RESULT", "ALLOW")):
            writer.write(f'SET VARIABLE {name} "{value}"\n'.encode())
            await reader.readline()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("floor ready", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
