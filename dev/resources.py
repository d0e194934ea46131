"""What the local stack needs around its processes: signalling them, RabbitMQ vhosts,
dropping databases, waiting for consumers."""

import asyncio
import contextlib
import os
import subprocess
import time


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def ensure_vhost(vhost: str, fresh: bool) -> None:
    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)

    if fresh:
        ctl("delete_vhost", vhost)
    ctl("add_vhost", vhost)
    done = ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    if done.returncode != 0:
        raise RuntimeError(f"could not set up RabbitMQ vhost {vhost}: {done.stderr.strip()}")


async def drop_database(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(database="postgres", drivername="postgresql")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await conn.close()


async def wait_for_consumers(amqp_url: str, queues: tuple[str, ...], timeout: float) -> None:
    """Each of `queues` has a consumer attached."""
    import aio_pika

    deadline = time.monotonic() + timeout
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for queue_name in queues:
            while True:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(queue_name, passive=True)
                    if queue.declaration_result.consumer_count > 0:
                        break
                except aio_pika.exceptions.ChannelClosed:
                    pass
                finally:
                    if not channel.is_closed:
                        await channel.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no consumer on queue {queue_name} within {timeout:.0f} s")
                await asyncio.sleep(0.2)
