"""Small file helpers shared by the writers of checkpoints and activation shards."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["apply_umask"]


def apply_umask(path: str | Path) -> None:
    """Give ``path`` the permissions a newly created file gets (0666 less the umask).

    safetensors writes through a private temporary file (mode 0600), which would leave a saved
    checkpoint unreadable to the owner's group and to other users.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
