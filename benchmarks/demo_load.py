"""Load on the demo: concurrent generate requests from this process against `demo/app.py` on 127.0.0.1.

    .venv/bin/python benchmarks/demo_load.py                      # starts the app, 4 clients x 25 requests
    .venv/bin/python benchmarks/demo_load.py --url http://127.0.0.1:7860/ --clients 8 --requests 10

Every request must be answered or cleanly turned away by the queue (bounded: demo.app.MAX_QUEUE waiting,
one drawing at a time); the app must still answer afterwards. Prints latency percentiles and throughput.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ["Ein roter Kreis über einem blauen Quadrat", "Un cercle rouge", "红色的圆形", "赤い丸", "Červený kruh"]
LANGUAGES = ["de", "fr", "zh", "ja", "cs"]


@dataclass
class LoadReport:
    clients: int
    requests: int
    latencies: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    alive_after: bool = False

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    def table(self) -> str:
        answered = len(self.latencies)
        return "\n".join([
            "| clients x requests | answered | rejected by the queue | errors | p50 s | p90 s | p99 s | max s | "
            "requests/s | app alive after |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| {self.clients} x {self.requests} | {answered} | {len(self.rejected)} | {len(self.errors)} | "
            f"{self.percentile(50):.2f} | {self.percentile(90):.2f} | {self.percentile(99):.2f} | "
            f"{max(self.latencies, default=float('nan')):.2f} | {answered / self.seconds:.2f} | "
            f"{'yes' if self.alive_after else 'NO'} |"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(steps: int, log_path: Path, timeout: float = 180, extra: tuple[str, ...] = ()
              ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    handle = open(log_path, "w")
    process = subprocess.Popen([sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port), "--steps", str(steps),
                                *extra], stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the demo did not start; see {log_path}")
        time.sleep(1)
    return process, url


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def run_load(url: str, clients: int = 4, requests: int = 25, steps: int = 2) -> LoadReport:
    """`clients` threads, each with its own gradio client, sending `requests` generate calls in a row."""
    from gradio_client import Client

    report = LoadReport(clients, requests)
    lock = threading.Lock()

    def client(index: int) -> None:
        session = Client(url, verbose=False)
        for i in range(requests):
            k = (index + i) % len(PROMPTS)
            start = time.monotonic()
            try:
                session.predict(PROMPTS[k], LANGUAGES[k], [], i, steps, 4.0, api_name="/generate")  # []: every system
            except Exception as err:  # the queue turning a request away arrives as an exception
                text = f"{type(err).__name__}: {err}"
                with lock:
                    (report.rejected if "queue" in text.lower() and "full" in text.lower() else report.errors).append(text)
                continue
            with lock:
                report.latencies.append(time.monotonic() - start)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - start
    report.alive_after = answers(url)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running demo (default: start one)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps per request")
    parser.add_argument("--max-queue", type=int, help="start the app with this queue bound (default: the app's)")
    args = parser.parse_args(argv)
    process = None
    url = args.url
    if url is None:
        extra = ("--max-queue", str(args.max_queue)) if args.max_queue else ()
        process, url = start_app(args.steps, Path("/tmp/xlcore_demo_load.log"), extra=extra)
    try:
        report = run_load(url, args.clients, args.requests, args.steps)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(report.table())
    for problem in report.errors[:5]:
        print("error:", problem)
    if report.latencies:
        print(f"mean latency {statistics.mean(report.latencies):.2f} s over {len(report.latencies)} answered requests")
    return 0 if not report.errors and report.alive_after else 1


if __name__ == "__main__":
    sys.exit(main())
