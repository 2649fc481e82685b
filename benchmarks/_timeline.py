"""What the refresh-timeline benchmarks (refresh_point.py, outage.py) share: two builds of
credproc side by side, a clock moved with libfaketime around the real executable, and a look
at the entry a build wrote.

* The builds: ``new`` is this venv's credproc; ``old`` is another venv's ``bin/credproc``
  (``--old EXE``, else ``$CREDPROC_BENCH_OLD``), a venv of the same packages in which only
  credproc differs. ``benchmarks/previous_build.py`` makes one from a commit.
* Each build says itself when its entry stops being fresh (``Entry(...).fresh_until``, run
  in its own interpreter), so the benchmarks never restate either build's rule.
* The clock: ``LD_PRELOAD`` of libfaketime and ``FAKETIME="+SECONDS"`` in the environment
  of the run (what ``faketime -f`` sets, without its extra process); moto keeps the real
  clock, so an entry fetched now expires in real time and the offset moves credproc along it.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).parent
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
LIBFAKETIME = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/faketime/libfaketime.so.1")
OLD_VARIABLE = "CREDPROC_BENCH_OLD"


def old_build(option: str | None) -> str:
    """The previous build's executable: ``--old``, else $CREDPROC_BENCH_OLD; stops when neither is usable."""
    exe = option or os.environ.get(OLD_VARIABLE)
    if not exe:
        raise SystemExit(f"name the previous build: --old OTHER_VENV/bin/credproc (or ${OLD_VARIABLE}); "
                         "benchmarks/previous_build.py makes one")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"not an executable: {exe}")
    return os.path.abspath(exe)


def interpreter(exe: str) -> str:
    """The Python a console script runs on (its shebang)."""
    with open(exe, encoding="utf-8") as f:
        first = f.readline()
    if not first.startswith("#!"):
        raise SystemExit(f"{exe} is not a console script")
    return first[2:].strip().split()[0]


def describe(exe: str) -> dict:
    """Which credproc ``exe`` runs: its version, the checkout it was installed from, that
    checkout's commit (and whether credproc/ had changes in it)."""
    probe = ("import importlib.metadata as m, json; d = m.distribution('credproc'); "
             "print(json.dumps({'version': d.version, 'direct_url': d.read_text('direct_url.json') or ''}))")
    out = json.loads(subprocess.run([interpreter(exe), "-c", probe], capture_output=True, text=True,
                                    check=True, cwd="/").stdout)
    info = {"exe": exe, "version": out["version"]}
    try:
        url = json.loads(out["direct_url"]).get("url", "")
    except ValueError:
        url = ""
    if url.startswith("file://"):
        checkout = urllib.parse.unquote(url[len("file://"):])
        info["checkout"] = checkout
        git = subprocess.run(["git", "-C", checkout, "log", "-1", "--format=%h %s", "--", "credproc"],
                             capture_output=True, text=True)  # the last commit that changed credproc/
        if git.returncode == 0:
            info["commit"] = git.stdout.strip()[:72]
            dirty = subprocess.run(["git", "-C", checkout, "status", "--porcelain", "--", "credproc"],
                                   capture_output=True, text=True).stdout.strip()
            info["credproc_changes_uncommitted"] = bool(dirty)
    return info


def fresh_until(exe: str, fetched: float, expires: float) -> float:
    """When the build of ``exe`` stops serving an entry fetched then as fresh, by its own rule."""
    code = f"from credproc.cache import Entry; print(repr(Entry(b'', {fetched!r}, {expires!r}).fresh_until))"
    out = subprocess.run([interpreter(exe), "-c", code], capture_output=True, text=True, check=True, cwd="/")
    return float(out.stdout)


def libfaketime() -> str:
    for path in LIBFAKETIME:
        if os.path.exists(path):
            return path
    raise SystemExit("libfaketime is not installed (apt-get install faketime)")


def at(env: dict[str, str], when: float) -> dict[str, str]:
    """``env`` with the clock of the processes started from it moved so that it reads ``when``
    (Unix time) now. The offset is fixed when this is called: call it just before starting."""
    moved = dict(env)
    moved["LD_PRELOAD"] = libfaketime()
    moved["FAKETIME"] = f"{when - time.time():+.3f}"
    moved.pop("FAKETIME_SHARED", None)
    return moved


def connection(sts: str, **extra) -> str:
    """A connection with its own key pair, region and STS endpoint, and ``extra`` (JSON) on top."""
    body = {"role_arn": "arn:aws:iam::123456789012:role/bench", "region_name": "us-east-1",
            "service_config": {"sts": {"endpoint_url": sts}}, **extra}
    auth = f"{urllib.parse.quote(ACCESS_KEY, safe='')}:{urllib.parse.quote(SECRET_KEY, safe='')}"
    return f"aws://{auth}@/?__extra__={urllib.parse.quote(json.dumps(body), safe='')}"


def entry_times(cache_dir: str) -> tuple[float, float]:
    """(fetched, expires) of the one entry in ``cache_dir``, from its header (both formats
    have them as fields 3 and 4: ``credproc-cache VERSION KEY FETCHED EXPIRES ...``)."""
    entries = glob.glob(os.path.join(cache_dir, "*.entry"))
    if len(entries) != 1:
        raise SystemExit(f"expected one entry in {cache_dir}, found {entries}")
    with open(entries[0], "rb") as f:
        fields = f.readline().split(b" ")
    if fields[0] != b"credproc-cache":
        raise SystemExit(f"not a credproc entry: {entries[0]}")
    return float(fields[3]), float(fields[4])


def wait_unlocked(cache_dir: str, timeout: float = 120.0) -> float:
    """Wait until no process holds a lock of ``cache_dir`` (a detached refresher has
    finished); the seconds waited."""
    started = time.monotonic()
    for path in glob.glob(os.path.join(cache_dir, "*.lock")):
        fd = os.open(path, os.O_RDONLY)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - started > timeout:
                        raise SystemExit(f"{path} is still locked after {timeout:g}s") from None
                    time.sleep(0.05)
        finally:
            os.close(fd)
    return time.monotonic() - started


def run(exe: str, env: dict[str, str], *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """One run of ``exe --conn bench``, as an SDK starts it (pipes for stdout and stderr, read
    to their end); the result and its wall time."""
    started = time.perf_counter()
    result = subprocess.run([exe, "--conn", "bench", *args], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=timeout, cwd=env["HOME"])
    return result, time.perf_counter() - started


def credentials(result: subprocess.CompletedProcess) -> dict | None:
    """The credentials a successful run printed, else None."""
    if result.returncode != 0:
        return None
    try:
        out = json.loads(result.stdout)
    except ValueError:
        return None
    return out if isinstance(out, dict) and out.get("AccessKeyId") else None


def expiration(creds: dict) -> float:
    """The printed ``Expiration`` as Unix time."""
    import datetime as dt

    return dt.datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00")).timestamp()


def ratio(new: float, old: float) -> float | None:
    return round(new / old, 3) if old else None


def minutes(seconds: float) -> str:
    """``2h05m`` / ``24m30s`` / ``0``."""
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return (f"{h}h{m:02d}m" if h else f"{m}m") + (f"{s:02d}s" if s else "")

