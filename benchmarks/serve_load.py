"""Load on ``ragft serve``: concurrent OpenAI-SDK clients, nothing lost or mixed up, throughput, p95.

    python benchmarks/serve_load.py [--clients 8] [--requests 100] [--home DIR] [--workers 4]

Starts ``ragft serve`` as its own process (strategy ``rag``, offline local backend: MiniLM
embeddings + the extractive reader) on the sample corpus, then:

1. answers every question with one client, alternately in this process with the library
   (``strategy.answer``) and through the server: the reference text per question, and the
   latency of each (their difference is the cost of HTTP + JSON + the thread hop);
2. runs ``--clients`` threads x ``--requests`` requests, every 4th one streamed, each request
   checked: HTTP 200, the echoed query is the one sent, the text equals the reference (the
   streamed reference for streams: they keep the passages' [n] numbering), the completion id
   is unique. Any failure is counted as lost or mixed up.

Prints throughput (requests/s) and latency p50/p95 per phase; writes
``benchmarks/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import openai  # noqa: E402

from ragft.components import Components, build_meter  # noqa: E402
from ragft.config import load_config  # noqa: E402
from ragft.strategies import build_strategy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=100, help="requests per client")
    ap.add_argument("--workers", type=int, default=4, help="the server's worker threads")
    ap.add_argument("--home", help="ragft home (default: a temp dir, indexed here)")
    args = ap.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="ragft-serve-load-")).resolve()
    config = home / "serve-load.toml"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'home = {json.dumps(str(home))}\n[index]\ncorpus = {json.dumps(str(ROOT / "corpus" / "docs"))}\n'
        f"[serve]\nworkers = {args.workers}\nreload_interval_s = 0\n",
        "utf-8",
    )
    cfg = load_config(config, env={})
    meter = build_meter(cfg, ledger=False)
    parts = Components(cfg, meter)
    parts.knowledge_base().sync(cfg.corpus_path, progress=True)
    questions = [json.loads(x)["question"] for x in (ROOT / "corpus" / "questions.jsonl").read_text().splitlines()][:40]

    # The library in this process (warmed up here; timed below, interleaved with the server).
    strategy = build_strategy(cfg, strategy="rag", meter=meter, parts=parts)
    for q in questions:
        strategy.answer(q)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ragft", "serve", "--config", str(config), "--port", str(port),
         "--strategies", "rag", "--log-level", "warning"],
        env={**os.environ, "RAGFT_API_KEYS": KEY, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("ragft serve did not start")
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=120)

        inside: dict[str, float] = {}  # completion id -> the strategy's own time in the server

        def ask(q: str, stream: bool) -> tuple[str, str, str, float]:
            t0 = time.perf_counter()
            messages = [{"role": "user", "content": q}]
            if stream:
                text, query, cid = [], "", ""
                for chunk in client.chat.completions.create(model="rag", messages=messages, stream=True):
                    cid = chunk.id
                    if chunk.choices and chunk.choices[0].delta.content:
                        text.append(chunk.choices[0].delta.content)
                    if chunk.model_extra.get("ragft"):
                        query = chunk.model_extra["ragft"]["query"]
                return "".join(text), query, cid, time.perf_counter() - t0
            c = client.chat.completions.create(model="rag", messages=messages)
            seconds = time.perf_counter() - t0
            inside[c.id] = c.model_extra["ragft"]["latency_s"]
            return c.choices[0].message.content or "", c.model_extra["ragft"]["query"], c.id, seconds

        # Phase 1: one client, sequential, each question through the library and then the
        # server, alternately (so both see the same machine load): the reference answers and
        # the per-request cost of HTTP + JSON + the thread hop. Streamed text keeps the
        # passages' own [n] numbers (the non-streamed answer renumbers them to its cited
        # sources), so streams have their own reference.
        streamed = {q: ask(q, True)[0] for q in questions}
        library: dict[str, str] = {}
        reference: dict[str, str] = {}
        library_latency: list[float] = []
        single_latency: list[float] = []
        overhead: list[float] = []
        for q in questions:
            t0 = time.perf_counter()
            library[q] = strategy.answer(q).text
            library_latency.append(time.perf_counter() - t0)
            text, _, cid, seconds = ask(q, False)
            reference[q] = text
            single_latency.append(seconds)
            overhead.append(seconds - inside[cid])
        differ = sum(reference[q] != library[q] for q in questions)
        # A request that does no work (GET /healthz): what HTTP and process wake-ups alone cost
        # on this machine right now, to read the overhead above against.
        health: list[float] = []
        with httpx.Client() as http:
            for _ in questions:
                t0 = time.perf_counter()
                http.get(f"http://127.0.0.1:{port}/healthz")
                health.append(time.perf_counter() - t0)

        # Phase 2: concurrent clients.
        lost = mixed = 0
        ids: set[str] = set()
        latency: list[float] = []
        lock = threading.Lock()

        def run_client(c: int) -> None:
            nonlocal lost, mixed
            for j in range(args.requests):
                q = questions[(c * 7 + j) % len(questions)]
                try:
                    stream = j % 4 == 3
                    text, query, cid, seconds = ask(q, stream)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    with lock:
                        lost += 1
                    print(f"lost: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                with lock:
                    latency.append(seconds)
                    if query != q or text != (streamed if stream else reference)[q] or cid in ids:
                        mixed += 1
                    ids.add(cid)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(run_client, range(args.clients)))
        load_s = time.perf_counter() - start
        total = args.clients * args.requests
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.terminate()
        server.wait(60)

    served = sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("ragft_requests_total{")
    )
    results = {
        "questions": len(questions),
        "library_p50_ms": statistics.median(library_latency) * 1e3,
        "library_p95_ms": percentile(library_latency, 0.95) * 1e3,
        "server_one_client_rps": len(questions) / sum(single_latency),
        "server_one_client_p50_ms": statistics.median(single_latency) * 1e3,
        "server_one_client_p95_ms": percentile(single_latency, 0.95) * 1e3,
        # Client-observed time minus the strategy's own time in the server: HTTP, JSON, SDK
        # parsing and the thread hop, measured within each request.
        "server_overhead_p50_ms": statistics.median(overhead) * 1e3,
        "server_overhead_p95_ms": percentile(overhead, 0.95) * 1e3,
        "healthz_p50_ms": statistics.median(health) * 1e3,
        "answers_differing_from_library": differ,
        "clients": args.clients,
        "requests": total,
        "server_workers": args.workers,
        "load_rps": total / load_s,
        "load_p50_ms": statistics.median(latency) * 1e3 if latency else None,
        "load_p95_ms": percentile(latency, 0.95) * 1e3 if latency else None,
        "lost": lost,
        "mixed_up": mixed,
        "server_counted_requests": served,
        "cpus": os.cpu_count(),
    }
    print(f"one client, sequential: library p50 {results['library_p50_ms']:.0f} ms (p95 "
          f"{results['library_p95_ms']:.0f}); server p50 {results['server_one_client_p50_ms']:.0f} ms (p95 "
          f"{results['server_one_client_p95_ms']:.0f}), {results['server_one_client_rps']:.1f} req/s; "
          f"{differ} answers differ from the library's")
    print(f"server overhead per request (client time - strategy time): p50 {results['server_overhead_p50_ms']:.1f} ms, "
          f"p95 {results['server_overhead_p95_ms']:.1f} ms; GET /healthz round trip p50 {results['healthz_p50_ms']:.1f} ms")
    print(f"server, {args.clients} clients x {args.requests}: {results['load_rps']:.1f} req/s "
          f"(p50 {results['load_p50_ms']:.0f} ms, p95 {results['load_p95_ms']:.0f} ms), "
          f"{args.workers} workers, {os.cpu_count()} CPUs")
    print(f"lost {lost}, mixed up {mixed} of {total}; the server counted {served:.0f} requests")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_load.json").write_text(json.dumps(results, indent=2))
    if lost or mixed or differ:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
