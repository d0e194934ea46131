"""Phones uploading through the legacy endpoint: `.venv/bin/python -m bench.upload`.

For each case (1 x 10 MB, 1 x 1 GB, 8 x 100 MB at once) a fresh upload API process
(uvicorn) runs against a local S3 endpoint (moto_server) and its own database
(bench_upload), on loopback ports 22001 and 22009; with two or more cores the S3 endpoint
has core 1 to itself and the API and the phones (this process) share core 0. Phones
presign, then POST the stock app's multipart form with the file streamed from disk.
Printed side by side:
  - the API process's peak memory (VmHWM) and its RSS at rest after a warm-up upload;
  - the service's throughput and the S3 endpoint's own throughput for the same bytes sent
    to it directly (boto3 upload_file: 8 MiB parts, 10 threads), and their ratio;
  - how busy the S3 endpoint's core was in both (if it is as busy through the service as
    when it is fed directly, the endpoint, not the service, is the limit), and the API's
    own CPU time per MB.
Service and direct runs alternate for `--rounds` rounds (default 3), the fastest of each
is kept (the machine may be shared). Target: peak memory grows by at most 32 MB from the
smallest to the largest case. `--quick`: 1 x 10 MB, 1 x 100 MB and 4 x 20 MB instead.
"""

import argparse
import asyncio
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx

from bench import upload_support as support

MB = 1000**2
CASES = {"1 x 10 MB": (1, 10 * MB), "1 x 1 GB": (1, 1000 * MB), "8 x 100 MB": (8, 100 * MB)}
QUICK = {"1 x 10 MB": (1, 10 * MB), "1 x 100 MB": (1, 100 * MB), "4 x 20 MB": (4, 20 * MB)}
API = f"http://127.0.0.1:{support.API_PORT}"


@dataclass(frozen=True)
class Run:
    seconds: float
    s3_cpu: float
    api_cpu: float = 0.0


@dataclass(frozen=True)
class Figures:
    case: str
    total_bytes: int
    service: Run
    direct: Run
    rest_kib: int
    peak_kib: int

    def mbps(self, run: Run) -> float:
        return self.total_bytes / MB / run.seconds


async def presign(http: httpx.AsyncClient, session_id: UUID) -> dict:
    return (await http.get(f"{API}/sessions/{session_id}/get_presigned_url/")).json()


async def post(http: httpx.AsyncClient, presigned: dict, path: Path) -> str:
    """The stock phone's POST of its presigned form and file; the stored key."""
    length, body = support.phone_form(presigned["fields"], path)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={support.BOUNDARY}",
        "Content-Length": str(length),
    }
    response = await http.post(presigned["url"], content=body, headers=headers)
    if response.status_code != 204:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
    return presigned["fields"]["key"]


class Bench:
    """One case's processes: the S3 endpoint's and the API's pids, the phones' client."""

    def __init__(self, http: httpx.AsyncClient, s3, s3_pid: int, api_pid: int):
        self.http, self.s3, self.s3_pid, self.api_pid = http, s3, s3_pid, api_pid

    async def through_service(self, phones: int, path: Path, size: int, session_id: UUID) -> Run:
        forms = [await presign(self.http, session_id) for _ in range(phones)]
        s3_cpu, api_cpu = support.cpu_seconds(self.s3_pid), support.cpu_seconds(self.api_pid)
        started = time.perf_counter()
        keys = await asyncio.gather(*(post(self.http, form, path) for form in forms))
        seconds = time.perf_counter() - started
        run = Run(
            seconds,
            support.cpu_seconds(self.s3_pid) - s3_cpu,
            support.cpu_seconds(self.api_pid) - api_cpu,
        )
        self.check_and_delete(keys, size)
        return run

    def direct(self, phones: int, path: Path) -> Run:
        """The same uploads straight to the S3 endpoint: the reference."""
        keys = [f"direct-{n}.mov" for n in range(phones)]
        s3_cpu, started = support.cpu_seconds(self.s3_pid), time.perf_counter()
        with ThreadPoolExecutor(phones) as pool:
            list(pool.map(lambda key: self.s3.upload_file(str(path), support.BUCKET, key), keys))
        run = Run(time.perf_counter() - started, support.cpu_seconds(self.s3_pid) - s3_cpu)
        self.check_and_delete(keys, path.stat().st_size)
        return run

    def check_and_delete(self, keys: list[str], size: int) -> None:
        for key in keys:
            stored = self.s3.head_object(Bucket=support.BUCKET, Key=key)["ContentLength"]
            assert stored == size, f"{key} holds {stored} bytes, not {size}"
            self.s3.delete_object(Bucket=support.BUCKET, Key=key)


async def rounds(bench: Bench, case: tuple[int, int], workdir: Path, count: int) -> tuple:
    """(RSS at rest, fastest service run, fastest direct run) over `count` rounds."""
    phones, size = case
    path, session_id = support.video_file(workdir, size), await support.joined_session()
    await post(bench.http, await presign(bench.http, session_id), workdir / "warmup.mov")
    rest = support.memory_kib(bench.api_pid)["VmRSS"]
    service, direct = [], []
    for _ in range(count):
        service.append(await bench.through_service(phones, path, size, session_id))
        direct.append(await asyncio.to_thread(bench.direct, phones, path))
    fastest = lambda runs: min(runs, key=lambda run: run.seconds)  # noqa: E731
    return rest, fastest(service), fastest(direct)


async def run_case(name: str, case: tuple[int, int], workdir: Path, s3_pid: int, count: int):
    s3 = support.s3_client()
    with support.upload_api() as api:
        async with httpx.AsyncClient(timeout=900) as http:
            bench = Bench(http, s3, s3_pid, api.pid)
            rest, service, direct = await rounds(bench, case, workdir, count)
        peak = support.memory_kib(api.pid)["VmHWM"]
    return Figures(name, case[0] * case[1], service, direct, rest, peak)


def report(figures: list[Figures]) -> None:
    print(
        f"\n{'case':<11} {'service':>8} {'direct S3':>10} {'ratio':>6} "
        f"{'S3 core busy':>13} {'API CPU':>8} {'RSS at rest':>12} {'peak RSS':>9}"
    )
    print(
        f"{'':<11} {'MB/s':>8} {'MB/s':>10} {'':>6} {'svc / direct':>13} {'ms/MB':>8} "
        f"{'MB':>12} {'MB':>9}"
    )
    for f in figures:
        busy = [run.s3_cpu / run.seconds * 100 for run in (f.service, f.direct)]
        print(
            f"{f.case:<11} {f.mbps(f.service):>8.1f} {f.mbps(f.direct):>10.1f} "
            f"{f.mbps(f.service) / f.mbps(f.direct):>6.2f} "
            f"{f'{busy[0]:.0f}% / {busy[1]:.0f}%':>13} "
            f"{f.service.api_cpu * 1000 / (f.total_bytes / MB):>8.2f} "
            f"{f.rest_kib / 1024:>12.1f} {f.peak_kib / 1024:>9.1f}"
        )
    smallest = min(figures, key=lambda f: f.total_bytes)
    growth = max(f.peak_kib for f in figures) - smallest.peak_kib
    verdict = "met" if growth <= 32 * 1024 else "MISSED"
    print(
        f"peak memory growth from {smallest.case} to the largest case: {growth / 1024:.1f} MB "
        f"(target <= 32 MB: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller files (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case (best kept)")
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {support.CLIENT_CORE})
    asyncio.run(support.fresh_database())
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp, support.s3_server() as s3p:
        workdir = Path(tmp)
        support.s3_client().create_bucket(Bucket=support.BUCKET)
        support.video_file(workdir, 1000).rename(workdir / "warmup.mov")
        for name, case in (QUICK if args.quick else CASES).items():
            print(f"running {name} ...", flush=True)
            figures.append(asyncio.run(run_case(name, case, workdir, s3p.pid, args.rounds)))
    report(figures)


if __name__ == "__main__":
    main()
