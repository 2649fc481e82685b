"""One SDK credential lookup through ``credproc serve`` against one through
``credential_process`` (a cache hit), side by side.

botocore, in a fresh process each time, times
``botocore.session.get_session().get_credentials().get_frozen_credentials()``: the default
chain, which finds either ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (the server, the token in
its file) or ``AWS_PROFILE=bench`` (the ``credential_process`` line ``credproc configure``
writes, which finds its cache entry: the hit). Both read the same cache entry, fetched once. Rounds are
interleaved; reported: median lookup time of each (the import of botocore is outside the
timing, it is the same for both), and the ratio credential_process / server.

usage: .venv/bin/python benchmarks/serve_lookup.py [--rounds 30]
Writes benchmarks/results/serve_lookup.json (compared with the previous run's).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import BIN, CREDPROC, counting_sts, isolated_env, machine, reproduce, write_results  # noqa: E402
from serve_load import start_server  # noqa: E402

LOOKUP = """\
import time
import botocore.session
session = botocore.session.get_session()
started = time.perf_counter()
credentials = session.get_credentials().get_frozen_credentials()
elapsed = time.perf_counter() - started
assert credentials.access_key.startswith("ASIA") and credentials.token
print(elapsed, session.get_credentials().method)
"""


def lookup(env: dict[str, str]) -> tuple[float, str]:
    out = subprocess.run([str(BIN / "python"), "-c", LOOKUP], env=env, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL, cwd=env["HOME"])
    if out.returncode != 0:
        raise SystemExit(f"lookup failed: {out.stderr}")
    elapsed, method = out.stdout.split()
    return float(elapsed), method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        env["XDG_RUNTIME_DIR"] = tmp
        # The credential_process line users get: what `credproc configure` writes (credproc's launcher)
        subprocess.run([str(CREDPROC), "configure", "bench", "--profile", "bench"], env=env, check=True,
                       capture_output=True, stdin=subprocess.DEVNULL, cwd=env["HOME"])
        server, printed = start_server(env)  # fetches the entry both read
        try:
            configs = {
                "server": {**env, "AWS_CONTAINER_CREDENTIALS_FULL_URI": printed["uris"]["bench"],
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": printed["token_file"]},
                "credential_process": {**env, "AWS_PROFILE": "bench"},
            }
            samples: dict[str, list[float]] = {name: [] for name in configs}
            for name, config in configs.items():  # warm-up: page cache, .pyc files
                method = lookup(config)[1]
                assert method == ("container-role" if name == "server" else "custom-process"), method
            for i in range(args.rounds):
                for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):
                    samples[name].append(lookup(configs[name])[0])
        finally:
            server.terminate()
            server.communicate(timeout=30)
        sts_calls = proxy.count("AssumeRole")
    if sts_calls != 1:
        raise SystemExit(f"expected 1 AssumeRole call, STS saw {sts_calls}")
    med = {name: round(statistics.median(values) * 1000, 2) for name, values in samples.items()}
    ratio = round(med["credential_process"] / med["server"], 1)
    print(f"one botocore credential lookup, {args.rounds} interleaved rounds, fresh processes; {machine()}")
    print(f"command: {reproduce('serve_lookup.py', f'--rounds {args.rounds}')}")
    print(f"  through credproc serve (container provider):        {med['server']:7.2f} ms")
    print(f"  through credential_process (credproc, a cache hit):  {med['credential_process']:7.2f} ms")
    print(f"  credential_process takes {ratio}x the server's time")
    write_results("serve_lookup", {"rounds": args.rounds, "median_ms": med, "ratio_process_to_server": ratio},
                  {"server_ms": med["server"], "credential_process_ms": med["credential_process"],
                   "ratio_process_to_server": ratio})


if __name__ == "__main__":
    main()
