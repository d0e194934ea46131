"""Run the whole system on this machine: the S3 endpoint, the four services (API + worker
each), the reference pipeline worker and the nginx gateway, on loopback, against the
local PostgreSQL and RabbitMQ.

    python -m dev.stack up        start in the background and wait until everything is ready
    python -m dev.stack down      stop what `up` started
    python -m dev.stack status    what is running

A `Layout` (`layout.py`) says where a stack lives, so the end-to-end tests run their own
stack beside a developer's without touching it.
"""

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from dev.certs import CERTS
from dev.certs import ensure as ensure_certs
from dev.layout import BIN, DEV, ROOT, SERVICES, Layout
from dev.resources import alive, drop_database, ensure_vhost, signal_group, wait_for_consumers


@dataclass
class Stack:
    layout: Layout = DEV
    secret: str = field(default_factory=lambda: secrets.token_hex(32))

    def env(self, service: str | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "AMQP_URL": self.layout.amqp_url,
            "PUBLIC_URL": self.layout.public_url,
            "S3_ENDPOINT_URL": self.layout.s3_url,
            "S3_BUCKET": "opencap",
            "AWS_ACCESS_KEY_ID": "opencaplocal",
            "AWS_SECRET_ACCESS_KEY": "opencaplocalsecret",
            "LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.layout.smtp_port),
            "SMTP_STARTTLS": "false",
            "METRICS_HOST": "127.0.0.1",  # workers' metrics: this machine only
        }
        if service:
            env |= {
                "DATABASE_URL": self.layout.database_url(service),
                "METRICS_PORT": str(self.layout.metrics_port(service)),
                "UPLOAD_SIGNING_SECRET": self.secret,
            }
        return env

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Every process of the stack: name -> (argv, environment)."""
        s3_port = str(self.layout.base_port + 9)
        smtp = f"127.0.0.1:{self.layout.smtp_port}"
        commands = {
            "s3": ([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", s3_port], self.env()),
            "mail": (
                [
                    sys.executable,
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    smtp,
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                    str(self.layout.maildir),
                ],
                self.env(),
            ),
        }
        for service in SERVICES:
            app = f"{service}_service.main:create_app"
            port = str(self.layout.port(service))
            commands[f"{service}-api"] = (
                [
                    str(BIN / "uvicorn"),
                    app,
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                self.env(service),
            )
            commands[f"{service}-worker"] = (
                [sys.executable, "-m", f"{service}_service.worker"],
                self.env(service),
            )
        commands["pipeline"] = (
            [sys.executable, "-m", "pipeline.reference"],
            self.env()
            | {"METRICS_PORT": str(self.layout.pipeline_metrics_port), "WORKER_TYPE": "all,mono"},
        )
        conf = self.layout.run_dir / "nginx" / "nginx.conf"
        commands["gateway"] = (
            ["nginx", "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"],
            self.env(),
        )
        return commands

    # ── preparing ──

    def prepare(self, fresh: bool = False) -> None:
        """Databases (created if missing, migrated), the RabbitMQ vhost, the gateway config."""
        from shared.migrations import create_database, upgrade

        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        if self.layout.vhost != "/":
            ensure_vhost(self.layout.vhost, fresh)
        for service in SERVICES:
            url = self.layout.database_url(service)
            if fresh:
                asyncio.run(drop_database(url))
            asyncio.run(create_database(url))
            upgrade(ROOT / "services" / service, url)
        self.prepare_gateway()

    def prepare_gateway(self) -> None:
        """The gateway's certificate (made once) and its configuration for this layout."""
        ensure_certs(CERTS, extra_hosts=[self.layout.public_host])
        self.render_gateway()

    def render_gateway(self) -> None:
        out = self.layout.run_dir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        text = (ROOT / "deploy" / "nginx" / "local.conf.template").read_text()
        fields = {
            "RUN_DIR": str(out),
            "TLS_HOST": self.layout.listen_address,
            "CERTS": str(CERTS),
            "ROUTES": str(ROOT / "deploy" / "nginx" / "routes.conf"),
            "GATEWAY_PORT": str(self.layout.base_port),
            **{f"{s.upper()}_PORT": str(self.layout.port(s)) for s in SERVICES},
        }
        for name, value in fields.items():
            text = text.replace(f"@{name}@", value)
        (out / "nginx.conf").write_text(text)

    # ── running ──

    def start(self, timeout: float = 60.0) -> None:
        """Start every process in the background and wait until the stack answers."""
        self.stop()
        logs = self.layout.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (self.layout.run_dir / "public_url").write_text(self.layout.public_url)
        for name, (argv, env) in self.commands().items():
            with (logs / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            (self.layout.run_dir / f"{name}.pid").write_text(str(proc.pid))
            if name == "s3":
                self.wait_for(f"{self.layout.s3_url}/moto-api/", timeout)
                self.create_bucket()
        self.wait_ready(timeout)

    def create_bucket(self) -> None:
        from shared.config import ServiceSettings
        from shared.storage import Storage

        settings = ServiceSettings(
            s3_endpoint_url=self.layout.s3_url,
            s3_bucket="opencap",
            aws_access_key_id="opencaplocal",
            aws_secret_access_key="opencaplocalsecret",
        )
        Storage(settings).ensure_bucket(settings.cors_origins)  # the services' own origins

    def wait_for(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def wait_ready(self, timeout: float) -> None:
        urls = [f"{self.layout.gateway_url}/health/"]
        for service in SERVICES:
            urls.append(f"http://127.0.0.1:{self.layout.port(service)}/readyz")
            urls.append(f"http://127.0.0.1:{self.layout.metrics_port(service)}/metrics")
        # The pipeline worker takes jobs with basic.get (no consumer to see): its metrics
        # endpoint answers once it is connected and taking jobs.
        urls.append(f"http://127.0.0.1:{self.layout.pipeline_metrics_port}/metrics")
        for url in urls:
            self.wait_for(url, timeout)
        asyncio.run(wait_for_consumers(self.layout.amqp_url, SERVICES, timeout))

    def pids(self) -> dict[str, int]:
        found = {}
        for path in sorted(self.layout.run_dir.glob("*.pid")):
            try:
                found[path.stem] = int(path.read_text())
            except ValueError:
                path.unlink()
        return found

    def check_alive(self) -> None:
        for name, pid in self.pids().items():
            if not alive(pid):
                log = self.layout.run_dir / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{name} exited while starting; its log ends with:\n{tail}")

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process this layout started (SIGTERM, then SIGKILL after `grace`)."""
        pids = self.pids()
        for pid in pids.values():
            signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name, pid in pids.items():
            signal_group(pid, signal.SIGKILL)
            (self.layout.run_dir / f"{name}.pid").unlink(missing_ok=True)

    def running(self) -> dict[str, bool]:
        return {name: alive(pid) for name, pid in self.pids().items()}

    def __enter__(self) -> "Stack":
        self.prepare(fresh=True)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "prepare"])
    args = parser.parse_args()
    stack = Stack(DEV)
    if args.command == "prepare":
        stack.prepare()
    elif args.command == "up":
        states = stack.running()
        public_url = DEV.public_url
        if states.keys() == stack.commands().keys() and all(states.values()):
            started_with = DEV.run_dir / "public_url"
            print("Already running (make down stops it; settings apply at the next start).")
            public_url = started_with.read_text() if started_with.exists() else public_url
        else:
            stack.prepare()
            stack.start()
        print(
            f"OpenCap is up: {DEV.gateway_url}, and {public_url} for phones "
            f"(trusting {DEV.ca_file}); mail in {DEV.maildir}, logs in {DEV.run_dir / 'logs'}"
        )
    elif args.command == "down":
        stack.stop()
        print("OpenCap is down.")
    else:
        states = stack.running()
        for name, ok in states.items():
            print(f"{name:16} {'running' if ok else 'stopped'}")
        if not states:
            print("Nothing is running (make up starts the stack).")


if __name__ == "__main__":
    main()
