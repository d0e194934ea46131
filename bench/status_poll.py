"""The phones' 1 Hz status poll on one core: `.venv/bin/python -m bench.status_poll`.

One device API process (uvicorn + httptools + uvloop) pinned to core 0, wrk pinned to
core 1 with 32 connections, in one run:
  (a) one session with 6 phones recording (each poll from one of the 6 phones),
  (b) 1,000 sessions x 2 phones recording (every poll a different phone and session),
  (c) a bare Starlette endpoint returning a constant JSON of the same size, same stack.
It sets up its own database (bench_device), RabbitMQ vhost and ports (21001, 21002),
and also counts the database transactions during each run (the poll must not need any).
Needs `wrk` (apt-get install -y wrk) and two cores.
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP = os.environ.get("AMQP_BASE_URL", "amqp://guest:guest@127.0.0.1:5672")
DATABASE = "bench_device"
VHOST = "bench_status_poll"
DEVICE_PORT, BARE_PORT = 21001, 21002
REFERENCE = {
    "original Django": 50,
    "bare Starlette (DESIGN §5)": "9,000-16,000",
    "FastAPI": "4,000-5,500",
}


@dataclass
class Figures:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    db_transactions: int


# ── setting up ──


async def seed(url: str, sessions: int, phones: int) -> list[str]:
    """Sessions whose latest trial is recording with `phones` registered phones each;
    returns the poll paths (one per phone)."""
    from device_service import consumers, service
    from device_service.models import KnownTrial
    from shared.db import create_engine, create_sessionmaker, utcnow
    from shared.events import SessionCreated, TrialStarted

    engine = create_engine(url)
    paths = []
    async with create_sessionmaker(engine)() as tx, tx.begin():
        for _ in range(sessions):
            session_id, trial_id = uuid4(), uuid4()
            await consumers.on_session_created(
                tx, SessionCreated(session_id=session_id, user_id=1, framerate=60)
            )
            started = utcnow() - timedelta(seconds=1)
            await consumers.on_trial_started(
                tx,
                TrialStarted(
                    trial_id=trial_id, session_id=session_id, name="walk", created_at=started
                ),
            )
            trial = await tx.get(KnownTrial, trial_id)
            for _ in range(phones):
                device_id = str(uuid4()).upper()
                await service.register(tx, trial, UUID(device_id))
                paths.append(f"/sessions/{session_id}/status/?device_id={device_id}")
        for table in ("sessions", "trials", "video_slots"):  # as if made earlier today
            await tx.execute(text(f"UPDATE {table} SET updated_at = now() - interval '1 hour'"))
    await engine.dispose()
    return paths


def prepare_database() -> str:
    from dev.resources import drop_database
    from shared.migrations import create_database, upgrade

    url = f"{POSTGRES}/{DATABASE}"
    asyncio.run(drop_database(url))
    asyncio.run(create_database(url))
    upgrade(ROOT / "services" / "device", url)
    return url


def prepare_vhost() -> str:
    from dev.resources import ensure_vhost

    ensure_vhost(VHOST, fresh=True)
    return f"{AMQP}/{VHOST}"


def server(app: str, port: int, env: dict[str, str], factory: bool) -> subprocess.Popen:
    argv = ["taskset", "-c", "0", str(BIN / "uvicorn"), app, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    argv += ["--no-access-log", "--log-level", "warning", *(["--factory"] if factory else [])]
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer")


# ── measuring ──


def lua_script(paths: list[str]) -> str:
    quoted = ",\n".join(f'  "{p}"' for p in paths)
    return (
        f"paths = {{\n{quoted}\n}}\n"
        "i = math.random(#paths)\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )


def wrk(port: int, paths: list[str], seconds: float, connections: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(paths))
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--latency", "-s", script.name, f"http://127.0.0.1:{port}"]
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(name: str, out: str, db_transactions: int) -> Figures:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = milliseconds(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = milliseconds(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"  {name}: socket errors: {socket_errors.group(1)}")
    return Figures(name, rps, p50, p99, int(errors.group(1)) if errors else 0, db_transactions)


async def transactions(url: str) -> int:
    """Transactions committed or rolled back in the bench database so far."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            DATABASE,
        )
    finally:
        await conn.close()


def measure(name: str, port: int, paths: list[str], args, db_url: str) -> Figures:
    wrk(port, paths, 2, args.connections)  # warm up
    before = asyncio.run(transactions(db_url))
    out = wrk(port, paths, args.seconds, args.connections)
    time.sleep(0.6)  # let the statistics collector catch up
    during = asyncio.run(transactions(db_url)) - before - 2  # less our own two look-ups
    figures = parse_wrk(name, out, max(during, 0))
    print(f"  {name:44} {figures.rps:9,.0f} req/s", end="")
    print(f"  p50 {figures.p50_ms:.2f} ms  p99 {figures.p99_ms:.2f} ms")
    return figures


def median_of(runs: list[Figures]) -> Figures:
    """The median of each figure over the rounds (the machine may be busy with other work)."""
    return Figures(
        runs[0].name,
        statistics.median(f.rps for f in runs),
        statistics.median(f.p50_ms for f in runs),
        statistics.median(f.p99_ms for f in runs),
        sum(f.errors for f in runs),
        round(statistics.median(f.db_transactions for f in runs)),
    )


def report(figures: list[Figures], bare: Figures, seconds: float) -> None:
    print(f"\nstatus poll, one core, 32 connections, {seconds:g} s per run (median of rounds)")
    print(
        f"{'':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x bare':>7}"
        f" {'non-2xx':>8} {'DB tx':>6}"
    )
    for f in [*figures, bare]:
        ratio = f.rps / bare.rps
        print(
            f"{f.name:44} {f.rps:9,.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} {ratio:7.2f}"
            f" {f.errors:8d} {f.db_transactions:6d}"
        )
    print("\ntargets: >= 10,000 polls/s, >= 0.5 x bare, p99 <= 10 ms")
    print(
        "reference (DESIGN §5, this kind of machine): "
        + "; ".join(f"{k} ~{v}/s" for k, v in REFERENCE.items())
    )
    worst = min(figures, key=lambda f: f.rps)
    print(f"vs the original Django poll: {worst.rps / 50:,.0f} x (worst case here)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="a, b, c in turn; medians shown")
    args = parser.parse_args()
    db_url, amqp_url = prepare_database(), prepare_vhost()
    one = asyncio.run(seed(db_url, sessions=1, phones=6))
    many = asyncio.run(seed(db_url, sessions=1000, phones=2))
    env = {"DATABASE_URL": db_url, "AMQP_URL": amqp_url, "LOG_LEVEL": "WARNING"}
    device = server("device_service.main:create_app", DEVICE_PORT, env, factory=True)
    try:
        wait_until_up(f"http://127.0.0.1:{DEVICE_PORT}/healthz", device)
        body = httpx.get(f"http://127.0.0.1:{DEVICE_PORT}{one[0]}").text
        print(f"a poll answers {len(body)} bytes: {body}")
        bare = server("bench.status_poll_bare:app", BARE_PORT, {"BENCH_BODY": body}, False)
        try:
            wait_until_up(f"http://127.0.0.1:{BARE_PORT}/", bare)
            runs = [
                ("(a) 1 session x 6 phones recording", DEVICE_PORT, one),
                ("(b) 1,000 sessions x 2 phones recording", DEVICE_PORT, many),
                ("(c) bare Starlette, constant JSON", BARE_PORT, one),
            ]
            rounds = [[measure(*run, args, db_url) for run in runs] for _ in range(args.rounds)]
            a, b, c = (median_of([r[i] for r in rounds]) for i in range(3))
        finally:
            bare.terminate()
    finally:
        device.terminate()
    report([a, b], c, args.seconds)
    print(f"load average of this machine at the end: {os.getloadavg()[0]:.2f} (2 cores used here)")
    print("DB tx: transactions in the device database during a run: only the read model's")
    print("re-read of recent changes every 2 s and its pool's connection check (no poll makes any)")
    print(f"ratio a/c = {a.rps / c.rps:.2f}, b/c = {b.rps / c.rps:.2f}")


if __name__ == "__main__":
    main()
