"""Files in the output folder: written whole or not at all, and never left half-written.

Every file is first written under ``--out/.tmp/`` with a name that says which process wrote it
(``<name>.<host>.<pid>.tmp``) and then renamed into place. A run removes its own temporary
files when it stops (normally, on a signal or on a full disk) and, when it starts, those of
dead runs on the same host; another host's are left alone unless older than a day (several
hosts may write one shared output folder through a cluster's array jobs).
"""
from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

TMP = ".tmp"
#: Written into every output folder: a later run over a parent folder skips this tree.
MARKER = ".digitize-output"
#: Another host's temporary files older than this (s) are taken to be a dead run's.
STALE_FOREIGN_S = 24 * 3600
#: errno values that mean "the output disk cannot take more": stop the batch, do not fail on
#: every page that follows.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)

_HOST = socket.gethostname().replace(".", "-") or "host"


def tmp_tag() -> str:
    return f".{_HOST}.{os.getpid()}.tmp"


def tmp_path(tmp_dir: Path, name: str) -> Path:
    return tmp_dir / f"{name}{tmp_tag()}"


def atomic_write(path: Path, data: bytes, tmp_dir: Path) -> None:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(tmp_dir, path.name)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_own(tmp_dir: Path) -> int:
    """Remove this process's temporary files; returns how many there were."""
    return _remove(tmp_dir, lambda host, pid, age: host == _HOST and pid == os.getpid())


def remove_stale(tmp_dir: Path) -> int:
    """Remove temporary files of runs that are no longer alive."""
    return _remove(tmp_dir, lambda host, pid, age: (not _alive(pid)) if host == _HOST
                   else age > STALE_FOREIGN_S)


def _remove(tmp_dir: Path, dead) -> int:
    n = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except OSError:
        return 0
    now = time.time()
    for e in entries:
        parts = e.name.rsplit(".", 3)  # <name>.<host>.<pid>.tmp
        if len(parts) != 4 or parts[3] != "tmp" or not parts[2].isdigit():
            continue
        try:
            if dead(parts[1], int(parts[2]), now - e.stat().st_mtime):
                os.unlink(e.path)
                n += 1
        except OSError:
            pass
    try:
        tmp_dir.rmdir()  # only when empty
    except OSError:
        pass
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written there; raises OSError otherwise."""
    out.mkdir(parents=True, exist_ok=True)
    probe = out / f".write-test{tmp_tag()}"
    try:
        probe.write_bytes(b"digitize")
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
