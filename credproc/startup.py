"""The rest of Python's start-up, for a run that credproc's launcher began without ``site``.

``credproc/_launch.py`` runs the interpreter with ``-I -S`` and only its own package's
directory on the path, which is all a cache hit needs. A run that goes further (a miss, a
due entry's refresher, a command) needs the venv's packages - boto3, a session factory, the
path hook of an editable install - so before it imports any, :func:`complete` runs ``site``
as a normal start would have: the venv's ``pyvenv.cfg``, its site-packages and their
``.pth`` files, ``sitecustomize``. Still isolated: ``PYTHONPATH``, the user site and the
current directory play no part, on a miss as on a hit.
"""

from __future__ import annotations

import os
import sys


def complete(root: str) -> None:
    """Run ``site`` now. ``root`` is the directory the launcher put on the path for the hit."""
    import site

    # Out of the way first, so that site orders the path as it always does (the modules
    # already loaded from it stay loaded, and credproc's others are found through its package).
    while root in sys.path:
        sys.path.remove(root)
    standard_library = len(sys.path)
    site.main()
    if not _finds_this_credproc(root):
        # credproc lives where isolated site does not look: the user site (a `pip install
        # --user`), a --target directory. Its dependencies are installed beside it, and come
        # before site-packages, as they would from the user site or PYTHONPATH; then its .pth
        # files (addsitedir knows the entry now, and does not add it twice).
        sys.path.insert(standard_library, root)
        site.addsitedir(root)


def _finds_this_credproc(root: str) -> bool:
    """Whether the import system, as site has now set it up, finds the credproc package in
    ``root`` (a site-packages directory, or an editable install's finder or path entry)."""
    here = os.path.realpath(os.path.join(root, "credproc"))
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec("credproc", None)
        except Exception:  # noqa: S112 - a broken third-party finder: the next one decides
            continue
        if spec is not None:  # the first finder to answer is the one an import would use
            places = spec.submodule_search_locations or []
            return any(os.path.realpath(place) == here for place in places)
    return False
