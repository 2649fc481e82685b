"""When each SDK on this machine runs a ``credential_process`` again: the facts behind the floor.

A counting helper (``expiring_helper`` of tests/helpers.py: one log line per run, in Python
like credproc, so a run costs about what a cache hit does) prints credentials whose
``Expiration`` is N minutes ahead of the moment it runs. Each SDK loads it as profile
``windows``'s ``credential_process`` and calls STS ``GetCallerIdentity`` (moto, on
127.0.0.1) ``--calls`` times with one client. Reported per SDK and N: how often the process
ran, and whether the SDK failed. An SDK that runs it once holds the credentials; one that
runs it ``calls + 1`` times (once to load, once before every call) is inside its refresh
window at N; an error means the SDK refused them.

SDKs: boto3 (botocore) and the AWS CLI from the venv, the AWS SDK for JavaScript v3 from
``tests/interop/js`` (default chain), Ruby's aws-sdk-core and the Go SDK v2 (Debian's
packages), driven by the programs in ``tests/interop/``. An SDK that is not installed is
left out, and said so.

Then the cost of botocore's two windows for a threaded program: ``--threads`` threads share
one boto3 client and make ``--calls`` calls each, with credentials N minutes from expiry,
for N inside the mandatory window (< 10 min), the advisory one (10-15 min) and outside both;
reported: process runs, wall time and calls per second, and the ratio to the run outside
both windows. In the advisory window a thread that finds another one refreshing goes on with
the credentials it has; in the mandatory window it waits, and then refreshes again itself.

usage: .venv/bin/python benchmarks/sdk_refresh_windows.py [--minutes 0 0.5 2 4 5 6 9 10 11 14 15 16 20]
           [--calls 5] [--threads 8] [--thread-calls 10] [--thread-minutes 6 9 11 20] [--sdks ...]
Writes benchmarks/results/sdk_refresh_windows.json. Nothing is asserted; the tests that
assert what credproc relies on are in tests/test_interop.py (``*_floor*``, ``*_window*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).parent))
from _common import BIN, HERE, local_sts, machine, reproduce, write_results  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from helpers import expiring_helper  # noqa: E402  (the tests' counting helper, same as theirs)

INTEROP = HERE.parent / "tests" / "interop"
GOCODE = Path("/usr/share/gocode")  # Debian's GOPATH for its golang-*-dev packages

BOTO3 = """\
import json, sys
import boto3
try:
    client = boto3.Session().client("sts", endpoint_url=sys.argv[1])
    for _ in range(int(sys.argv[2])):
        client.get_caller_identity()
    print(json.dumps({"sdk": "boto3 " + boto3.__version__}))
except Exception as e:
    print(json.dumps({"sdk": "boto3 " + boto3.__version__, "error": f"{type(e).__name__}: {e}"}))
    sys.exit(1)
"""

BOTO3_THREADS = """\
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import boto3
client = boto3.Session().client("sts", endpoint_url=sys.argv[1])
client.get_caller_identity()  # loaded and warm before the clock starts
threads, calls, log = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(log) as f:
    before = len(f.read().splitlines())
def work(_):
    for _ in range(calls):
        client.get_caller_identity()
start = time.perf_counter()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(work, range(threads)))
seconds = time.perf_counter() - start
with open(log) as f:
    after = len(f.read().splitlines())
print(json.dumps({"sdk": "boto3 " + boto3.__version__, "seconds": seconds, "runs": after - before}))
"""


def sdk_commands(tmp: Path) -> tuple[dict[str, Callable[[str, int], list[str]]], list[str]]:
    """The SDKs found on this machine: name -> (endpoint, calls) -> argv; and the ones missing."""
    found: dict[str, Callable[[str, int], list[str]]] = {
        "boto3": lambda url, n: [str(BIN / "python"), "-c", BOTO3, url, str(n)],
        # One API call per `aws` process: the CLI is a new process (and botocore Session) each time.
        "aws-cli": lambda url, n: [str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url", url],
    }
    missing = []
    node = shutil.which("node")
    if node and (INTEROP / "js" / "node_modules" / "@aws-sdk" / "client-sts").is_dir():
        found["js-v3"] = lambda url, n: [node, str(INTEROP / "js" / "caller_identity.js"), url, str(n), "chain"]
    else:
        missing.append("js-v3 (npm ci --prefix tests/interop/js)")
    ruby = shutil.which("ruby")
    if ruby and subprocess.run([ruby, "-e", "require 'aws-sdk-core'"], capture_output=True).returncode == 0:
        found["ruby"] = lambda url, n: [ruby, str(INTEROP / "ruby" / "caller_identity.rb"), url, str(n)]
    else:
        missing.append("ruby (apt-get install ruby-aws-sdk-core)")
    go = shutil.which("go")
    if go and (GOCODE / "src/github.com/aws/aws-sdk-go-v2/service/sts").is_dir():
        binary = tmp / "caller_identity"
        build_env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOCODE), "CGO_ENABLED": "0",
                     "GOFLAGS": "", "GOCACHE": str(tmp / "gocache")}
        subprocess.run([go, "build", "-o", str(binary), str(INTEROP / "go" / "caller_identity.go")],
                       env=build_env, check=True, capture_output=True)
        found["go-v2"] = lambda url, n: [str(binary), url, str(n)]
    else:
        missing.append("go-v2 (apt-get install golang-go golang-github-aws-aws-sdk-go-v2-dev)")
    return found, missing


def sdk_version(stdout: str) -> str | None:
    try:
        return json.loads(stdout.strip().splitlines()[-1]).get("sdk")
    except (ValueError, IndexError, AttributeError):
        return None


class Windows:
    """A profile whose credential_process is the counting helper, in an isolated environment."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.log = tmp / "expiring-helper.log"
        self.config = tmp / "aws-config"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDPROC_", "PYTHON"))}
        self.env.update({"HOME": str(tmp), "AWS_CONFIG_FILE": str(self.config), "AWS_PROFILE": "windows",
                         "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
                         "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                         "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})

    def run(self, argv: list[str], minutes: float) -> tuple[int, subprocess.CompletedProcess]:
        """Run argv with the helper printing an Expiration ``minutes`` ahead: (runs, result)."""
        helper, _ = expiring_helper(self.tmp, minutes * 60)
        self.config.write_text(f"[profile windows]\ncredential_process = {helper}\nregion = us-east-1\n")
        self.log.write_text("")
        result = subprocess.run(argv, env=self.env, cwd=self.tmp, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=300)
        return len(self.log.read_text().splitlines()), result


def error_of(result: subprocess.CompletedProcess) -> str | None:
    if result.returncode == 0:
        return None
    try:
        reported = json.loads(result.stdout.strip().splitlines()[-1]).get("error")
    except (ValueError, IndexError, AttributeError):
        reported = None
    text = reported or result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
    return (text if isinstance(text, str) else text[0])[:160]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[0, 0.5, 2, 4, 5, 6, 9, 10, 11, 14, 15, 16, 20])
    parser.add_argument("--calls", type=int, default=5, help="API calls per SDK process (one for the CLI)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--thread-calls", type=int, default=10, help="calls per thread")
    parser.add_argument("--thread-minutes", type=float, nargs="+", default=[6, 9, 11, 20])
    parser.add_argument("--sdks", nargs="+", help="only these (boto3 aws-cli js-v3 ruby go-v2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="credproc-windows-") as tmpdir, local_sts() as url:
        tmp = Path(tmpdir)
        sdks, missing = sdk_commands(tmp)
        if args.sdks:
            sdks = {name: cmd for name, cmd in sdks.items() if name in args.sdks}
        windows = Windows(tmp)
        table: dict[str, dict[str, dict]] = {}
        versions: dict[str, str | None] = {}
        for name, command in sdks.items():
            calls = 1 if name == "aws-cli" else args.calls
            table[name] = {}
            for minutes in args.minutes:
                count, result = windows.run(command(url, calls), minutes)
                table[name][f"{minutes:g}"] = {"calls": calls, "runs": count, "error": error_of(result)}
                versions[name] = versions.get(name) or sdk_version(result.stdout)
            if name == "aws-cli":
                versions[name] = subprocess.run([str(BIN / "aws"), "--version"], capture_output=True,
                                                text=True).stdout.strip() or None
        threaded: dict[str, dict] = {}
        if "boto3" in sdks:
            for minutes in args.thread_minutes:
                count, result = windows.run([str(BIN / "python"), "-c", BOTO3_THREADS, url, str(args.threads),
                                             str(args.thread_calls), str(windows.log)], minutes)
                report = json.loads(result.stdout) if result.returncode == 0 else {}
                seconds = report.get("seconds")
                total = args.threads * args.thread_calls
                threaded[f"{minutes:g}"] = {"runs": report.get("runs"),  # while the threads ran
                                            "seconds": seconds and round(seconds, 3),
                                            "calls_per_s": seconds and round(total / seconds, 1),
                                            "error": error_of(result)}

    print(f"credential_process runs per SDK process ({args.calls} GetCallerIdentity calls, 1 for the CLI);"
          f" columns: minutes left in the Expiration the process prints")
    columns = [f"{m:g}" for m in args.minutes]
    print(f"  {'SDK':10}" + "".join(f"{c:>6}" for c in columns))
    for name, row in table.items():
        cells = [("err" if row[c]["error"] else str(row[c]["runs"])) for c in columns]
        print(f"  {name:10}" + "".join(f"{cell:>6}" for cell in cells) + f"   {versions.get(name) or ''}")
    errors = {(name, c): row[c]["error"] for name, row in table.items() for c in columns if row[c]["error"]}
    for (name, c), text in errors.items():
        print(f"  err: {name} at {c} min: {text}")
    if missing:
        print(f"  left out (not installed): {', '.join(missing)}")
    if threaded:
        base = threaded[f"{max(args.thread_minutes):g}"]
        print(f"\nboto3, {args.threads} threads x {args.thread_calls} calls on one client:")
        for minutes, row in threaded.items():
            ratio = (f"{row['calls_per_s'] / base['calls_per_s']:.2f}x" if row["calls_per_s"] and base["calls_per_s"]
                     else "")
            print(f"  {minutes:>5} min left: {row['runs']:4} process runs, {row['seconds']} s, "
                  f"{row['calls_per_s']} calls/s ({ratio} of {max(args.thread_minutes):g} min)"
                  + (f"  error: {row['error']}" if row["error"] else ""))
    print(f"\nreproduce: {reproduce('sdk_refresh_windows.py')}")
    # Headline: the runs just inside and just outside each SDK's window (5, 10 and 15 minutes).
    summary = {f"{name}_runs_at_{c}min": row[c]["runs"] for name, row in table.items() for c in columns
               if c in ("4", "6", "9", "11", "14", "16")}
    summary.update({f"boto3_threads_calls_per_s_at_{m}min": row["calls_per_s"] for m, row in threaded.items()})
    write_results("sdk_refresh_windows", {"args": vars(args), "versions": versions, "runs": table,
                                          "threaded": threaded, "missing": missing,
                                          "measured_at": time.strftime("%H:%M:%S"), "on": machine()}, summary)


if __name__ == "__main__":
    main()
