"""OpenAI embeddings at volume: OpenAIEmbedder's concurrent batches against a local server.

Run: python benchmarks/embedding_concurrency.py [--texts 8192] [--latency-ms 200]
                                                 [--levels 1,4,8,16] [--rps 0] [--full]

A local OpenAI-shaped server (a separate process, so its work does not share the client's
interpreter) answers POST /v1/embeddings after ``--latency-ms`` with float vectors written the
way the API writes them (1,536 dimensions: ~5 MB of JSON per 256-input request; fewer with
``--dimensions``, which is sent as ``dimensions=`` as for text-embedding-3 models), and
reports usage.prompt_tokens. ``--rps N`` makes it answer 429 with ``retry-after-ms`` once more
than N requests started within the last second, as a rate-limited account would; the SDK's
retries (per batch) absorb them and the 429 count is printed.

The client is the real stack: ``make_client`` + ``OpenAIEmbedder`` (tiktoken counts, batches
of 256 inputs, JSON parsing, normalisation), one ``embed()`` per ``texts_per_call`` slice as
``KnowledgeBase`` does. Texts are ~200-token chunks (ragft's default chunk size) of
synthetic prose. For each concurrency level: wall time, requests/s, tokens/s and the speed-up
over concurrency 1; then the time a 10M-token corpus (10,000 documents of ~1,000 tokens,
chunked at 200 tokens with 40 overlap, so ~12M tokens embedded) would take at each level.
The client's CPU time is printed too: tiktoken counts and JSON parsing run under the GIL,
so once concurrency hides the latency, the client's CPU is what bounds throughput.
``--full`` also embeds that whole corpus at the highest level to check the projection.
Writes benchmarks/results/embedding_concurrency_d<dimensions>[_rps<N>].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.models.openai import OpenAIEmbedder, make_client  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MODEL = "text-embedding-3-small"
DIM = 1536
CHUNK_TOKENS, OVERLAP = 200, 40
CORPUS_DOCS, DOC_TOKENS = 10_000, 1_000

WORDS = (
    "the of and to in is was for that with as on by at from this be are an it which or have "
    "has not but were their its also can more one two first new time after between other into "
    "study patients cells results data protein gene model effect risk using during these than "
    "found may high level analysis increased associated clinical disease treatment expression"
).split()


# --------------------------------------------------------------------------- the server


def serve(port_file: Path, latency_s: float, rps: int) -> None:
    """Run the OpenAI-shaped embeddings server until killed; writes its port to port_file."""
    rng = random.Random(0)
    floats = [f"{rng.uniform(-0.08, 0.08):.10f}" for _ in range(DIM)]
    lock = threading.Lock()
    started: deque[float] = deque()
    counts: dict[str, float] = {"requests": 0, "limited": 0}
    bodies: dict[tuple[int, int], str] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the API

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # /stats: requests, 429s and the server's CPU so far
            self._send(200, json.dumps({**counts, "cpu_s": time.process_time()}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            now = time.monotonic()
            with lock:
                counts["requests"] += 1
                while started and now - started[0] > 1.0:
                    started.popleft()
                limited = rps > 0 and len(started) >= rps
                if limited:
                    counts["limited"] += 1
                    wait_ms = int(1000 * (1.0 - (now - started[0]))) + 1
                else:
                    started.append(now)
            if limited:
                err = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                 "param": None, "code": "rate_limit_exceeded"}}
                self._send(429, json.dumps(err).encode(), {"retry-after-ms": str(wait_ms)})
                return
            time.sleep(latency_s)
            inputs = body["input"]
            # Synthetic words are one token each, so the word count is the token count.
            tokens = sum(len(t.split()) for t in inputs)
            dim = int(body.get("dimensions", DIM))
            data = bodies.get((len(inputs), dim))
            if data is None:  # built once per shape: the server should cost ~nothing
                vector = "[" + ",".join(floats[:dim]) + "]"
                data = bodies[(len(inputs), dim)] = ",".join(
                    f'{{"object":"embedding","index":{i},"embedding":{vector}}}'
                    for i in range(len(inputs))
                )
            usage = f'{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}'
            self._send(200, f'{{"object":"list","data":[{data}],"model":"{MODEL}",'
                            f'"usage":{usage}}}'.encode())

    class Server(ThreadingHTTPServer):
        # The default listen backlog of 5 drops the SYNs of a burst of new connections, which
        # then wait a 1 s TCP retransmit: that would be measured as "concurrency does not help".
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


# --------------------------------------------------------------------------- the client


def chunk_texts(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(CHUNK_TOKENS)) for _ in range(n)]


def run(base_url: str, texts: list[str], concurrency: int, dim: int) -> dict[str, float]:
    client = make_client(api_key=None, base_url=base_url, max_retries=8, timeout=120.0)
    embedder = OpenAIEmbedder(MODEL, client=client, concurrency=concurrency, dimension=dim)
    step = embedder.texts_per_call
    tokens = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), step):
        result = embedder.embed(texts[start : start + step])
        assert result.vectors.shape == (min(step, len(texts) - start), dim)
        tokens += result.usage.embedding_tokens
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    client.close()
    return {"seconds": elapsed, "client_cpu_s": cpu, "tokens": tokens}


def stats(base_url: str) -> dict[str, float]:
    import httpx

    return httpx.get(base_url.removesuffix("/v1") + "/stats").json()


def corpus_chunks() -> tuple[int, int]:
    """Chunks and embedded tokens of the 10M-token corpus at ragft's default chunking."""
    stride = CHUNK_TOKENS - OVERLAP
    per_doc = 1 + max(0, -(-(DOC_TOKENS - CHUNK_TOKENS) // stride))
    chunks = CORPUS_DOCS * per_doc
    embedded = CORPUS_DOCS * (DOC_TOKENS + (per_doc - 1) * OVERLAP)
    return chunks, embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=8192, help="chunks embedded per level")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--levels", default="1,4,8,16")
    parser.add_argument("--dimensions", type=int, default=DIM,
                        help="vector length asked for (text-embedding-3 models can shorten)")
    parser.add_argument("--rps", type=int, default=0, help="server's requests/s limit (0: none)")
    parser.add_argument("--full", action="store_true", help="also embed the whole corpus once")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency_ms / 1000, args.rps)
        return

    levels = [int(x) for x in args.levels.split(",")]
    port_file = RESULTS / "embedding_server.port"
    RESULTS.mkdir(parents=True, exist_ok=True)
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file),
                               "--latency-ms", str(args.latency_ms), "--rps", str(args.rps)])
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text()}/v1"
        texts = chunk_texts(args.texts)
        run(base_url, texts[:256], 1, args.dimensions)  # warm-up: tiktoken, connections
        rows: dict[int, dict[str, float]] = {}
        for level in levels:
            before = stats(base_url)
            r = run(base_url, texts, level, args.dimensions)
            after = stats(base_url)
            r["requests"] = after["requests"] - before["requests"]
            r["rate_limited"] = after["limited"] - before["limited"]
            r["server_cpu_s"] = after["cpu_s"] - before["cpu_s"]
            rows[level] = r
        chunks, corpus_tokens = corpus_chunks()
        base = rows[levels[0]]["seconds"]
        print(f"{args.texts} chunks of ~{CHUNK_TOKENS} tokens, {args.dimensions}-d vectors, "
              f"batches of 256, server latency "
              f"{args.latency_ms:.0f} ms" + (f", limit {args.rps} requests/s" if args.rps else ""))
        print(f"{'concurrency':>11} {'seconds':>8} {'req/s':>6} {'tokens/s':>9} {'speed-up':>8} "
              f"{'429s':>5} {'CPU client/server':>17}   10M-token corpus ({chunks} chunks, {corpus_tokens / 1e6:.1f}M tokens)")
        for level, r in rows.items():
            tps = r["tokens"] / r["seconds"]
            r["tokens_per_s"] = tps
            r["speedup"] = base / r["seconds"]
            r["corpus_minutes"] = corpus_tokens / tps / 60
            print(f"{level:>11} {r['seconds']:8.2f} {r['requests'] / r['seconds']:6.1f} "
                  f"{tps:9.0f} {r['speedup']:7.2f}x {r['rate_limited']:>5} {r['client_cpu_s']:8.1f}s/{r['server_cpu_s']:.1f}s   "
                  f"{r['corpus_minutes']:6.1f} min (projected)")
        out: dict[str, object] = {
            "texts": args.texts, "dimensions": args.dimensions, "latency_ms": args.latency_ms,
            "rps_limit": args.rps,
            "corpus": {"documents": CORPUS_DOCS, "chunks": chunks, "embedded_tokens": corpus_tokens},
            "levels": {str(k): v for k, v in rows.items()},
            "machine": {"python": platform.python_version(), "cpu": platform.machine()},
        }
        if args.full:
            top = max(levels)
            full = run(base_url, chunk_texts(chunks, seed=2), top, args.dimensions)
            print(f"full corpus at concurrency {top}: {full['seconds'] / 60:.1f} min "
                  f"({full['tokens'] / 1e6:.1f}M tokens)")
            out["full_corpus"] = {"concurrency": top, **full}
        limit = f"_rps{args.rps}" if args.rps else ""
        path = RESULTS / f"embedding_concurrency_d{args.dimensions}{limit}.json"
        path.write_text(json.dumps(out, indent=2))
        print(f"wrote {path}")
    finally:
        server.terminate()
        server.wait()
        port_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
