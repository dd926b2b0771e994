"""Writing a file so that readers see the old content or the new, never a mix.

Everything the engine writes goes through here: weights, checkpoints, ONNX
files, training logs, reports and downloaded datasets. The content goes to a
temporary file in the target's folder, is synced to disk, and is renamed over
the target; an error or a crash at any point leaves the target as it was and
no temporary file behind.
"""

import contextlib
import errno
import os


@contextlib.contextmanager
def replacing(path):
    """`with replacing(path) as (f, tmp):` write binary `f` (at `tmp`); a clean exit puts it at `path`.

    The block may read `tmp` back (after f.flush()) to check what it wrote; raising
    inside the block discards it.
    """
    folder = check_target(path)
    tmp, fd = _create_temp(folder, os.path.basename(path))
    try:
        with open(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also on KeyboardInterrupt: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def check_target(path):
    """path's folder, once it is sure that `replacing(path)` can start: the folder exists and path
    is not a folder. Errors name the target, not the temporary file that would fail."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "no such folder to write into", folder)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", os.fspath(path))
    return folder


def write_bytes(path, chunks):
    """Write the byte strings `chunks`, in order, as the new content of `path`."""
    with replacing(path) as (f, _):
        for chunk in chunks:
            f.write(chunk)


def write_text(path, text):
    """Write `text` (UTF-8) as the new content of `path`."""
    write_bytes(path, [text.encode("utf-8")])


def _create_temp(folder, base):
    # Not mkstemp: its 0o600 mode would end up on the written file. Mode 0o666
    # lets the umask decide, as a plain open() would; O_EXCL keeps it race-free.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{os.urandom(8).hex()}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise PermissionError(errno.EACCES, "no permission to write in this folder", folder) from None
    raise FileExistsError(f"could not create a temporary file in {folder}")


def _fsync_dir(folder):
    # Makes the rename itself survive a power loss; not possible everywhere
    # (e.g. Windows), and the data is already safe, so failures are ignored.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
