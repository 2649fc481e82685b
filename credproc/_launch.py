# credproc's own launcher, what `credproc configure` writes into credential_process:
#   VENV/bin/python -I -S VENV/lib/python3.X/site-packages/credproc/_launch.py --conn ID
# Isolated, without site, and only this package's directory on the path (after the standard
# library) for a hit; cli.full_path loads site when the run leaves the fast path. A hit ends
# with os._exit (tear-down would cost it 1.4 ms). Why: docs/design.md, item 14. Run as a
# script, which Python compiles on every run: hence short, and the prose is elsewhere.
import os
import sys

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # site-packages, or the source tree
    sys.path.append(root)

    from credproc import cli

    cli.defer_site(root)
    code = cli.main()
    if cli.stayed_on_fast_path():  # nothing loaded that holds a buffer or an atexit handler
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
