"""Load on ``credproc serve``: N requests from C concurrent clients, as SDKs would send them.

``credproc serve --conn bench`` runs against the local STS (it fetches once, at start-up);
C client processes each send N/C GET requests for the connection's path with the token and
the Host the server expects, one connection per request, back to back. Reported: failures
(any answer but 200 with credentials, or no answer), and the latency distribution of the
requests (p50, p90, p99, max), with the STS calls the server made (1: every request a hit).

usage: .venv/bin/python benchmarks/serve_load.py [--requests 1000] [--clients 10]
Writes benchmarks/results/serve_load.json (compared with the previous run's); exits 1 on any
failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import CREDPROC, counting_sts, isolated_env, machine, percentile, reproduce, write_results  # noqa: E402

# One client: COUNT requests, one connection each; prints each one's latency (or -1 for a failure).
CLIENT = """\
import http.client, json, sys, time
port, token, path, count = int(sys.argv[1]), open(sys.argv[2]).read(), sys.argv[3], int(sys.argv[4])
sys.stdin.readline()  # all clients start together
out = []
for _ in range(count):
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{port}", "Authorization": token})
        answer = connection.getresponse()
        ok = answer.status == 200 and "SecretAccessKey" in json.loads(answer.read())
        connection.close()
    except Exception:
        ok = False
    out.append(time.perf_counter() - started if ok else -1.0)
print(json.dumps(out))
"""


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([str(CREDPROC), "serve", "--conn", "bench", "--format", "json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"credproc serve did not start: {proc.stderr.read()}")
        lines.append(line)
        if line == "}\n":
            return proc, json.loads("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    per_client = args.requests // args.clients
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        env["XDG_RUNTIME_DIR"] = tmp
        server, printed = start_server(env)
        try:
            path = "/" + printed["uris"]["bench"].split("/", 3)[3]
            clients = [subprocess.Popen([sys.executable, "-c", CLIENT, str(printed["port"]), printed["token_file"], path,
                                         str(per_client)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                       for _ in range(args.clients)]
            time.sleep(1.0)  # every client's interpreter is up
            started = time.perf_counter()
            for client in clients:
                client.stdin.write("go\n")
                client.stdin.flush()
            latencies: list[float] = []
            for client in clients:
                out, _ = client.communicate(timeout=600)
                latencies += json.loads(out)
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.communicate(timeout=30)
        sts_calls = proxy.count("AssumeRole")
    answered = [x for x in latencies if x >= 0]
    failures = len(latencies) - len(answered)
    ms = {name: round(percentile(answered, p) * 1000, 2) for name, p in (("p50", 50), ("p90", 90), ("p99", 99))}
    ms["max"] = round(max(answered) * 1000, 2)
    rate = round(len(latencies) / elapsed)
    print(f"credproc serve: {len(latencies)} requests from {args.clients} concurrent clients; {machine()}")
    print(f"command: {reproduce('serve_load.py', f'--requests {args.requests} --clients {args.clients}')}")
    print(f"  failures {failures}; STS calls {sts_calls}; {rate} requests/s")
    print(f"  latency p50 {ms['p50']} ms, p90 {ms['p90']} ms, p99 {ms['p99']} ms, max {ms['max']} ms")
    write_results("serve_load", {"requests": len(latencies), "clients": args.clients, "failures": failures,
                                 "sts_calls": sts_calls, "requests_per_s": rate, "latency_ms": ms},
                  {"failures": failures, "p50_ms": ms["p50"], "p99_ms": ms["p99"], "max_ms": ms["max"],
                   "requests_per_s": rate})
    if failures or sts_calls != 1:
        sys.exit(f"{failures} failed requests, {sts_calls} STS calls (want 0 and 1)")


if __name__ == "__main__":
    main()
