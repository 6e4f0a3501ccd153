"""Small file helpers shared by the writers of checkpoints and activation shards."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["apply_umask", "write_atomically"]


def apply_umask(path: str | Path) -> None:
    """Give ``path`` the permissions a newly created file gets (0666 less the umask).

    safetensors writes through a private temporary file (mode 0600), which would leave a saved
    checkpoint unreadable to the owner's group and to other users.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` by ``write(temporary path)`` in the same folder (made if missing), then
    rename it into place, so a crash never leaves a partial file or loses an earlier one."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        apply_umask(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
