"""The one write rule of every stage: build the output under a temporary name beside it, fsync,
then rename it into place; replace an existing output only with --force. A file is replaced by
one `os.replace`. A folder cannot be swapped in one step, so the old one is renamed aside, the
new one renamed in, and only then the old one deleted: a crash in between leaves the old folder
under `.<name>.old-<pid>`, which the next run puts back. Temporary names end in the writer's PID;
the next run into the same place removes those of dead runs, and says so. Writes that fail for
lack of space or permission become one-line `UserError`s, whichever library made the write."""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import ParityError, UserError

log = logging.getLogger("common.writes")

# What the machine, not the code, is to blame for: a full disk, a quota, a file size limit,
# a read-only or forbidden folder. Other errors are bugs and keep their traceback, unless the
# evidence below puts them on the disk.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
# The C++ and Rust writers (safetensors, onnx's protobuf, onnxruntime, OpenVINO) report a full disk
# in their own words, often without the errno ("Protobuf serialization failed", "basic_ios::clear:
# iostream error"). Their failure is put on the disk only on evidence: the errno's text in the
# error, the kernel's SIGXFSZ (a file reached this process's RLIMIT_FSIZE), or less than
# LOW_SPACE left on the filesystem after the failure.
SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
LOW_SPACE = 64 * 2**20
_size_limit = {"hit": False}  # set by the SIGXFSZ handler
LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)")


def temp_name(target: Path, kind: str = "tmp") -> Path:
    """`.<name>.tmp-<pid>` (or `.old-<pid>`) beside `target`: hidden, and owned by this process."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}")


def check_target(target: Path, force: bool, *, folder: bool, flag: str = "--out") -> None:
    """Before any work: the place can be written, and an existing output needs --force."""
    if target.exists() and target.is_dir() != folder:
        kind = "a folder" if target.is_dir() else "a file"
        raise UserError(f"{target} exists and is {kind}; pass another {flag}")
    full = target.is_dir() and any(target.iterdir()) if folder else target.exists()
    if full and not force:
        what = "already exists and is not empty" if folder else "already exists"
        raise UserError(f"{target} {what}; pass --force to replace it")
    check_writable(target, flag)


def check_writable(target: Path, flag: str = "--out") -> None:
    """The nearest existing folder above `target` is a folder this process can write in."""
    above = target.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise UserError(f"cannot create {target}: {above} is a file; pass another {flag}")
    try:
        with tempfile.TemporaryFile(dir=above):  # O_TMPFILE on Linux: nothing left even if killed
            pass
    except OSError as e:
        raise UserError(
            f"cannot write {target}: {above} is not writable ({os.strerror(e.errno)}); "
            f"pass another {flag}"
        ) from None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it: what it left earlier is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    return True


def remove_leftovers(target: Path) -> None:
    """Remove the temporary files and folders that dead runs left beside `target`; an old
    output that a run set aside and never got to delete is put back if `target` is missing."""
    if not target.parent.is_dir():
        return
    for path in sorted(target.parent.iterdir()):
        found = LEFTOVER.fullmatch(path.name)
        if not found or found["name"] != target.name or pid_alive(int(found["pid"])):
            continue
        pid = int(found["pid"])
        if found["kind"] == "old" and not target.exists():
            os.replace(path, target)
            log.warning("put back %s, set aside by a run that died (pid %d)", target, pid)
            continue
        _remove(path)
        log.warning("removed %s, left by a run that died (pid %d)", path, pid)


@contextmanager
def atomic_file(target: Path, *, tidy: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; when the block succeeds it is fsynced and renamed
    over `target`, otherwise removed. `tidy=False` skips removing dead runs' leftovers (for
    folders that are tidied as a whole, such as a staged folder shared by many processes)."""
    if tidy:
        remove_leftovers(target)
    tmp = temp_name(target)
    try:
        with _noting_size_limit():
            yield tmp
            _fsync(tmp)
            os.replace(tmp, target)
            _fsync(target.parent)
    except (UserError, ParityError):
        raise
    except Exception as e:
        _raise_write_error(e, target, target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    """Replace `target` with `text` atomically (UTF-8)."""
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty folder beside `out`; when the block succeeds every file in it is fsynced
    and it replaces `out` (the old one is deleted only once the new one is in place)."""
    tmp = temp_name(out)
    try:
        with _noting_size_limit():
            out.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(out)
            tmp.mkdir()
            yield tmp
            _fsync_tree(tmp)
            _swap_in(tmp, out)
    except (UserError, ParityError):
        raise
    except Exception as e:
        _raise_write_error(e, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Around a library call that writes `path` in a staged folder: its failure for lack of space
    names `path` as it will be called once the folder is in place (staged_folder alone can only
    name the folder)."""
    try:
        with _noting_size_limit():
            yield
    except (UserError, ParityError):
        raise
    except Exception as e:
        final = Path(*(m["name"] if (m := LEFTOVER.fullmatch(p)) else p for p in path.parts))
        _raise_write_error(e, final, path.parent)


def _swap_in(new: Path, out: Path) -> None:
    if not (out.exists() or out.is_symlink()):
        os.replace(new, out)
        _fsync(out.parent)
        return
    old = temp_name(out, "old")
    os.replace(out, old)
    try:
        os.replace(new, out)
    except OSError:
        os.replace(old, out)  # the old output back in place before the error is reported
        raise
    _fsync(out.parent)
    _remove(old)


def _raise_write_error(error: Exception, target: Path, where: Path) -> None:
    """A one-line UserError when the machine is to blame (see `_machine_reason`), else `error`."""
    reason = _machine_reason(error, where)
    if reason is None:
        raise error
    kept = "the existing one is kept" if target.exists() else "nothing was written"
    raise UserError(
        f"could not write {target} ({reason}); {kept}; free some space or pass a place you "
        "can write"
    ) from None


def _machine_reason(error: Exception, where: Path) -> str | None:
    """Why a write failed, when the disk, a quota, the file size limit or permissions are to blame
    (`where`: the folder written in, whose filesystem is asked for its free space); else None."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if _size_limit["hit"] and limit != resource.RLIM_INFINITY:
        return f"{os.strerror(errno.EFBIG)}: this process may write files of {_size(limit)} at most"
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return os.strerror(error.errno)
    chain, cause = [], error
    while cause is not None and len(chain) < 10:  # safetensors' error quotes the OS's words
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    said = [os.strerror(code) for code in SPACE_ERRNOS if os.strerror(code) in " ".join(chain)]
    if said:
        return said[0]
    while not where.is_dir() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    return f"{os.strerror(errno.ENOSPC)}: {_size(free)} free" if free < LOW_SPACE else None


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


@contextmanager
def _noting_size_limit() -> Iterator[None]:
    """Catch SIGXFSZ, which the kernel sends when a write reaches the file size limit (which may
    be set or lowered while the process runs), to note that it did: the write still fails with
    EFBIG, as with the signal ignored (Python's default). The old handler is put back after, as
    Python resets its handlers to the default (death) when it exits. Only the main thread can
    set one; writes in other threads rely on the other evidence."""
    _size_limit["hit"] = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGXFSZ, lambda *_: _size_limit.update(hit=True))
    try:
        yield
    finally:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN if previous is None else previous)


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename is durable once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
