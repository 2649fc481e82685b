"""credproc's own launcher: the script that ``credproc configure`` writes into ``credential_process``.

    /venv/bin/python -I -S /venv/lib/python3.X/site-packages/credproc/_launch.py --conn prod

The interpreter starts isolated (``-I``: no ``PYTHON*`` variables, no user site, neither the
current directory nor this script's directory on the path) and without ``site`` (``-S``),
which is a quarter of Python's own start-up. The one directory added to the path is the one
holding this package, after the standard library, so a cache hit imports nothing from
anywhere else. Whatever leaves the fast path (a miss, a due entry's refresher, a command,
a flag argparse must read) first has ``credproc.startup`` finish the start-up that ``-S``
skipped, before it imports anything outside the standard library.

A run that stayed on the fast path ends with ``os._exit`` once its output is flushed:
nothing it loaded registered a handler or holds a buffer, and the interpreter's own
tear-down would cost a hit 1.4 ms, as much as credproc's imports and its answer together.

Run as a script, never imported: kept this small because Python compiles a script's source
on every run (it caches only imported modules' bytecode).
"""

import os
import sys

if __name__ == "__main__":
    # This file is <root>/credproc/_launch.py, and <root> is site-packages (or, for an
    # editable install, the source tree).
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.append(root)

    from credproc import cli  # only once root is on the path

    cli.defer_site(root)
    code = cli.main()
    if cli.stayed_on_fast_path():
        # A hit: its output is written, and nothing it loaded has anything to clean up.
        # Tearing the interpreter down would take as long as the hit itself (1.4 ms of ~10).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)  # the full path may leave buffers and atexit handlers (logging's, boto3's)
