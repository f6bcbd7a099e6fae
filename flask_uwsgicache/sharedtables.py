"""Tables in memory shared by the processes of one uWSGI instance.

A table is ``MAP_SHARED`` memory made by the process that forks the others (the
master, or the only process without one) before it forks, or, when the app is loaded
in each worker (``lazy-apps``) or in a mule, a file named after the master (its pid,
start time and pid namespace: containers that share the directory all have a pid 1) in
a directory of the user's own, mode 0700, in the temporary directory
(``flask-uwsgicache-<uid>``; the next instance that starts removes the files of masters
that are gone). Where the processes cannot meet (lazy-apps without a master, a
directory or file that is not the user's own) there is no table, and one log line says
why: each user of a table decides what to do without one. A new table holds zeros.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import stat
import tempfile
from pathlib import Path

logger = logging.getLogger("flask_uwsgicache")


def map_table(kind: str, identity: str, size: int, purpose: str) -> mmap.mmap | None:
    """The table of ``size`` bytes for ``identity`` (a cache and prefix) under uWSGI,
    shared by the processes of this instance; None, with a log line that says
    ``purpose``'s consequence, when they cannot meet. ``kind`` names the layout (a file
    suffix: a table of another layout is never opened as this one)."""
    import uwsgi

    owner = uwsgi.masterpid()
    # worker_id() 0 in the process that forks the workers, before the fork; a mule
    # has worker id 0 too, but is not the master. Without a master and with one
    # process (--pyrun too) there is no one to share with (docs/uwsgi-cache2-facts.rst
    # §14).
    alone = not owner and uwsgi.numproc == 1
    if alone or (uwsgi.worker_id() == 0 and owner in (0, os.getpid())):
        return mmap.mmap(-1, size)
    # Made after the fork: the processes meet in a file named after the master (its pid
    # and start time: a pid comes back, in a container after each restart).
    if not owner:
        return not_shared(
            purpose, "the app is loaded in each worker and there is no master"
        )
    directory = private_directory()
    if directory is None:
        return not_shared(
            purpose, f"no private directory of this user's in {tempfile.gettempdir()}"
        )
    digest = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    started = int(getattr(uwsgi, "started_on", 0))
    remove_stale(directory, owner, started)
    # And the pid namespace: containers that share the directory (and the user) all
    # have a master of pid 1, and a rollout may start them in the same second.
    path = directory / f"{owner}-{started}-ns{_pid_namespace()}-{digest}.{kind}"
    return open_table_file(path, size, purpose)


def _pid_namespace() -> int:
    """The inode of this process's pid namespace (Linux), or 0."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def private_directory() -> Path | None:
    """This user's directory for table files (made mode 0700 in the temporary
    directory), or None if that name is taken by anything else."""
    directory = Path(tempfile.gettempdir()) / f"flask-uwsgicache-{os.geteuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        found = os.lstat(directory)
    except OSError:
        return None
    if (
        not stat.S_ISDIR(found.st_mode)
        or found.st_uid != os.geteuid()
        or found.st_mode & 0o077
    ):
        return None
    return directory


def open_table_file(path: Path, size: int, purpose: str = "") -> mmap.mmap | None:
    """The table in the file at ``path``, made with ``size`` zero bytes if it is not
    there; None (and a log line) if it is not a plain file of this user's of at most
    ``size`` bytes."""
    try:
        # Not a link, a plain file of this user's: a name in a shared directory may
        # have been made by someone else, to have these writes land in their file.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(path, flags, 0o600)
    except OSError as error:
        return not_shared(purpose, f"cannot open {path} ({error.strerror})")
    try:
        found = os.fstat(descriptor)
        if (
            not stat.S_ISREG(found.st_mode)
            or found.st_uid != os.geteuid()
            or found.st_nlink != 1
            or found.st_mode & 0o077
        ):
            return not_shared(purpose, f"{path} is not a private file of this user's")
        if found.st_size < size:
            os.ftruncate(descriptor, size)  # zeros; the same size from every worker
        elif found.st_size > size:
            return not_shared(purpose, f"{path} belongs to an instance with more workers")
        return mmap.mmap(descriptor, size)
    finally:
        os.close(descriptor)


def not_shared(purpose: str, reason: str) -> mmap.mmap | None:
    """None (no shared table), with a log line saying why and what follows."""
    logger.warning("flask-uwsgicache: %s: %s.", purpose, reason)
    return None


def remove_stale(directory: Path, running: int, started: int) -> None:
    """Remove the table files of uWSGI masters that are gone (never raises)."""
    here = f"ns{_pid_namespace()}"
    for path in directory.iterdir():
        try:
            parts = path.name.split("-")
            owner, since = int(parts[0]), int(parts[1])
            if parts[2].startswith("ns") and parts[2] != here:
                continue  # another pid namespace's (a container's): its pids are not ours
            if owner == running:
                gone = since != started  # this pid, an earlier master
            else:
                try:
                    os.kill(owner, 0)
                    gone = False
                except ProcessLookupError:
                    gone = True
            if gone:
                path.unlink(missing_ok=True)
        except Exception:  # not one of ours, or not ours to remove: leave it
            continue
