"""reachable.py — a client binary every user can run, for the tests that
run moactl as another user (test-moactl.py, test-moactl-daemon.py)."""
import atexit
import os
import shutil
import tempfile


def _parents(path):
    path = os.path.dirname(os.path.abspath(path))
    while True:
        yield path
        if path == "/":
            return
        path = os.path.dirname(path)


def reachable(path):
    """@path itself when every user can run it, else a copy in a fresh
    mode-755 directory under /tmp: the clone may sit in root's mode-700 home
    directory, and the access tests must run wherever it is. The copy's
    directory is removed at exit."""
    if os.access(path, os.X_OK) and all(os.stat(d).st_mode & 0o001 for d in _parents(path)):
        return path
    d = tempfile.mkdtemp(prefix="moactl-bin-", dir="/tmp")
    atexit.register(shutil.rmtree, d, True)
    os.chmod(d, 0o755)
    copy = os.path.join(d, os.path.basename(path))
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return copy
