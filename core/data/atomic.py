"""Files written so that a crash, a kill or a full disk leaves the old file or the new one,
whole: each is written to a temporary name in its folder, flushed to disk and renamed over
the old one; :func:`write_new_files` also keeps files a user may have edited. The lowest
layer that writes files (``data split``, ``data flowers102``) holds it; the engine's
checkpoints, manifests and the search's tables use it too."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import IO, Callable, Mapping

from corolla.plugin.errors import CorollaError, DataError

#: the ending of a file still being written (``.tmp-XXXX.ckpt``)
TEMP_SUFFIX = ".ckpt"


class WriteError(CorollaError):
    """A file could not be written (a full disk, no permission); the previous file is intact."""


def unwritable_reason(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be made or written: a file in the way of a folder on its path,
    else the system's reason (read-only, no permission)."""
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    return f"{blocking} is a file, not a folder" if blocking is not None else exc.strerror or str(exc)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:class:`WriteError` says which file could not
    be written, and that its previous version is intact)."""
    path = Path(path)
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = staged_file(path.parent, lambda stream: stream.write(text.encode("utf-8")), replaces=path)
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        old = "the previous one is intact" if path.is_file() else "nothing was written"
        raise WriteError(f"could not write {path}: {exc.strerror or exc}; {old}") from exc
    return path


def write_new_files(files: Mapping[Path, str], *, writer: str, instead: str) -> None:
    """Write each ``{path: text}`` atomically, or none of them when one already exists with other text.

    Rewriting a file with the same text is allowed, so a command can be run again. Otherwise a
    :class:`DataError` from ``writer`` names the files it keeps, then says what to do ``instead``.
    """
    different = [str(path) for path, text in files.items() if path.is_file() and path.read_bytes() != text.encode("utf-8")]
    if different:
        raise DataError(f"{writer}: {', '.join(different)} already exist{'s' if len(different) == 1 else ''} "
                        f"with other contents than this run would write; kept as they are. {instead}")
    for path, text in files.items():
        write_text(path, text)


def staged_file(directory: Path, write: Callable[[IO[bytes]], object], *, replaces: Path | None = None) -> str:
    """A new temporary file in ``directory`` with what ``write`` wrote, flushed to disk: the
    caller renames it into place (or removes it).

    It gets the mode a plain ``open()`` would give it (``0o666`` less the umask), or the mode of
    ``replaces`` when that file exists, so that renaming it into place keeps a user's ``chmod``
    (``tempfile.mkstemp`` made every file ``0o600``, unreadable to a team).
    """
    handle, temp = _create_temp(directory)
    try:
        if replaces is not None:
            try:
                os.fchmod(handle, stat.S_IMODE(os.stat(replaces).st_mode))
            except FileNotFoundError:
                pass
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def _create_temp(directory: Path) -> tuple[int, str]:
    """A new ``.tmp-XXXX.ckpt`` in ``directory``, created as ``open()`` creates files (the
    umask applies), under a name no other writer holds (``O_EXCL``)."""
    while True:
        temp = os.path.join(directory, f".tmp-{secrets.token_hex(6)}{TEMP_SUFFIX}")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), temp
        except FileExistsError:
            continue
