"""Writing a file so that it cannot be lost or half-written.

`write_file(path, write, caller)` is the one way nncore writes a file
(model files, weights files, checkpoints, ONNX exports):

* what is at `path` is respected: a directory, device, FIFO or socket is
  refused before anything is written; a symlink is written through (its
  target is replaced, the link stays); an existing file keeps its
  permission bits (and, where allowed, its owner); a new file gets
  0666 & ~umask, like any file a program creates;
* the data goes to an unnamed temporary file in the target's directory
  (Linux `O_TMPFILE`), flushed and fsynced, then linked into place: a new
  target appears complete, an existing one is replaced by a rename, so a
  reader sees the old file or the new one and a process killed at any
  moment (kill -9) leaves no temporary file behind -- except for the two
  system calls between linking and renaming over an existing file; a
  temporary of that moment carries the writer's host and process id and
  the next write into the directory removes it once that process is gone.
  Where `O_TMPFILE` is missing, a named temporary of the same naming is
  used and cleaned up the same way;
* errors name the path the caller gave, never a temporary.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import stat
import time
from typing import Callable

PREFIX = ".nncore-tmp-"
SUFFIX = ".tmp"
# .nncore-tmp-<host>-<pid>-<random>.tmp
OUR_TEMPORARY = re.compile(r"\.nncore-tmp-(?P<host>.*)-(?P<pid>[0-9]+)-[0-9a-f]{16}\.tmp")
# mkstemp names of nncore before this module (no owner recorded: removed by age)
OLD_TEMPORARY = re.compile(r"\.nncore-[a-z0-9_]{8}\.tmp")
STALE_SECONDS = 24 * 3600          # a temporary of another host this old is abandoned
_PROC_FD = "/proc/self/fd"

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def write_file(path, write: Callable, caller: str) -> None:
    """Call write(f) on a binary file object that becomes `path` once it
    returns (see the module docstring); `caller` starts error messages."""
    given = os.fspath(path)
    if isinstance(given, bytes):
        given = os.fsdecode(given)
    target = os.path.realpath(given)          # through symlinks, dangling ones too
    directory = os.path.dirname(target)
    try:
        existing = _existing(target)
        if existing is not None:
            _refuse_non_regular(existing, given, caller)
        remove_stale_temporaries(directory)
        if _has_tmpfile():
            try:
                fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
            else:
                _write_unnamed(fd, target, directory, existing, write)
                return
        _write_named(target, directory, existing, write)
    except OSError as error:
        raise _naming(error, given, caller) from None


def _existing(target: str):
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None


def _refuse_non_regular(st: os.stat_result, given: str, caller: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"{caller}: {given!r} is a directory; give "
                                f"the path of a file to write", given)
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise FileExistsError(errno.EEXIST, f"{caller}: {given!r} is {kind}; nncore writes "
                          f"only regular files and leaves it as it is", given)


def _naming(error: OSError, given: str, caller: str) -> OSError:
    """`error` with a message that names the path the caller gave."""
    if (error.strerror or "").startswith(caller):      # raised here, already names it
        return error
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        reason = f"{reason} (does the directory {os.path.dirname(given) or '.'!r} exist?)"
    named = type(error)(error.errno, f"{caller}: cannot write {given!r}: {reason}", given)
    return named


def _has_tmpfile() -> bool:
    return hasattr(os, "O_TMPFILE") and os.path.isdir(_PROC_FD)


def _temporary_name(directory: str) -> str:
    name = f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(8)}{SUFFIX}"
    return os.path.join(directory, name)


def _fill(fd: int, existing, write: Callable) -> None:
    """Write the data to fd, give it the existing file's owner and mode,
    flush and fsync it (fd stays open)."""
    with os.fdopen(fd, "wb", closefd=False) as f:
        write(f)
        f.flush()
    if existing is not None and hasattr(os, "fchown"):      # (POSIX)
        if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, existing.st_uid, existing.st_gid)
            except OSError:           # not allowed: the writer owns the new file
                pass
        os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    os.fsync(fd)


def _write_unnamed(fd: int, target: str, directory: str, existing, write: Callable) -> None:
    try:
        _fill(fd, existing, write)
        if existing is None:
            try:                      # a new file appears complete, in one step
                _link(fd, target)
                fsync_directory(directory)
                return
            except FileExistsError:   # created meanwhile: replace it as below
                pass
        temporary = _temporary_name(directory)
        _link(fd, temporary)
        _replace(temporary, target)
    finally:
        os.close(fd)
    fsync_directory(directory)


def _link(fd: int, name: str) -> None:
    """Give the unnamed file open as fd the name `name` (linkat through
    /proc/self/fd with AT_SYMLINK_FOLLOW; os.link makes it linkat only when
    given a directory fd)."""
    proc = os.open(_PROC_FD, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _write_named(target: str, directory: str, existing, write: Callable) -> None:
    temporary = _temporary_name(directory)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                 getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            _fill(fd, existing, write)
        finally:
            os.close(fd)
        _replace(temporary, target)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    fsync_directory(directory)


def _replace(temporary: str, target: str) -> None:
    try:
        os.replace(temporary, target)
    except BaseException:
        _unlink_quietly(temporary)
        raise


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def remove_stale_temporaries(directory: str) -> int:
    """Remove the temporaries of nncore writers in `directory` that can no
    longer finish: of this host and a process that is gone, or older than
    STALE_SECONDS.  Returns how many were removed."""
    host, removed = socket.gethostname(), 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(".nncore-"):
            continue
        ours = OUR_TEMPORARY.fullmatch(entry.name)
        if ours is None and not OLD_TEMPORARY.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
        except OSError:
            continue
        gone = ours is not None and ours["host"] == host and not _alive(int(ours["pid"]))
        if gone or old:
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":   # (os.kill on Windows terminates)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:        # not possible on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
