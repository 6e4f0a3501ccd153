"""On-disk layout of an activation collection: safetensors shards, one JSON manifest, checksums.

Layout of a collection directory::

    manifest.json                        # config (model identity, layers, dtype, ...) + shards + ranks
    rank00000-shard00000.safetensors     # activations [rows, layers, d_model], doc [rows], pos [rows], token [rows]

Shards are written to a temporary name and renamed; the manifest is rewritten atomically under a
file lock, so several processes (ranks) can share one manifest and a killed run loses at most the
shard it was writing.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crystalbox._files import apply_umask
from crystalbox.errors import CheckpointError

__all__ = ["FORMAT_VERSION", "MANIFEST", "ActivationDataset", "load_manifest", "sha256_file"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_LOCK = "manifest.lock"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_name(rank: int, index: int) -> str:
    return f"rank{rank:05d}-shard{index:05d}.safetensors"


@contextlib.contextmanager
def manifest_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock around a manifest read-modify-write (POSIX ``flock``; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(directory / _LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``directory`` (None when there is none)."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} is not valid JSON ({exc}); the collection is damaged"
        ) from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format {manifest.get('format')!r}; this crystalbox reads format {FORMAT_VERSION}"
        )
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


def write_shard(
    directory: Path, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> tuple[str, int]:
    """Write a shard atomically; returns (sha256, bytes)."""
    from safetensors.torch import save_file

    tmp = directory / f".{name}.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    apply_umask(tmp)
    checksum = sha256_file(tmp)
    size = tmp.stat().st_size
    os.replace(tmp, directory / name)
    return checksum, size


def verify_shard(directory: Path, entry: dict[str, Any]) -> None:
    """CheckpointError when a shard is missing or its checksum differs from the manifest."""
    path = directory / entry["file"]
    if not path.exists():
        raise CheckpointError(
            f"shard {path} listed in the manifest is missing; run the collection again with "
            f"repair=True (crystalbox collect --repair) to recompute it"
        )
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise CheckpointError(
            f"shard {path} is corrupted: its sha256 is {actual[:16]}..., the manifest says "
            f"{entry['sha256'][:16]}...; run the collection again with repair=True "
            f"(crystalbox collect --repair) to recompute it and the shards after it"
        )


@dataclass(frozen=True)
class _Shard:
    path: Path
    rows: int


class ActivationDataset(torch.utils.data.Dataset[torch.Tensor]):
    """A collection as a memory-mapped dataset: item ``i`` is ``[layers, d_model]`` (or ``[d_model]``
    with ``layer=``). ``metadata(i)`` gives its (doc, pos, token). Checksums are verified on open
    unless ``verify=False``.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, layer: int | None = None, verify: bool = True
    ) -> None:
        self.directory = Path(directory)
        manifest = load_manifest(self.directory)
        if manifest is None:
            raise CheckpointError(
                f"{self.directory} holds no activation collection ({MANIFEST} not found)"
            )
        self.manifest = manifest
        self.config: dict[str, Any] = manifest["config"]
        layers = list(self.config["layers"])
        if layer is not None and layer not in layers:
            raise ValueError(
                f"layer {layer} was not collected; this collection has layers {layers}"
            )
        self._layer_index = None if layer is None else layers.index(layer)
        entries = sorted(manifest["shards"], key=lambda e: (e["rank"], e["index"]))
        if verify:
            for entry in entries:
                verify_shard(self.directory, entry)
        self._shards = [_Shard(self.directory / e["file"], int(e["rows"])) for e in entries]
        self._starts: list[int] = []
        total = 0
        for shard in self._shards:
            self._starts.append(total)
            total += shard.rows
        self._len = total
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return self._len

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the memory maps
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.config["layers"])

    def _locate(self, index: int) -> tuple[int, int]:
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} rows")
        index %= self._len
        shard = bisect.bisect_right(self._starts, index) - 1
        return shard, index - self._starts[shard]

    def _handle(self, shard: int) -> Any:
        handle = self._handles.get(shard)
        if handle is None:
            from safetensors import safe_open

            handle = safe_open(str(self._shards[shard].path), framework="pt")  # memory-mapped
            self._handles[shard] = handle
        return handle

    def __getitem__(self, index: int) -> torch.Tensor:
        shard, local = self._locate(index)
        row = self._handle(shard).get_slice("activations")[local : local + 1][0]
        return row if self._layer_index is None else row[self._layer_index]

    def metadata(self, index: int) -> tuple[int, int, int]:
        """(doc index in the input, position among the doc's tokens, token id) of row ``index``."""
        shard, local = self._locate(index)
        handle = self._handle(shard)
        return tuple(
            int(handle.get_slice(k)[local : local + 1][0]) for k in ("doc", "pos", "token")
        )  # type: ignore[return-value]

    def shard(self, index: int) -> dict[str, torch.Tensor]:
        """All tensors of one shard (activations, doc, pos, token)."""
        handle = self._handle(index)
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open has no iterator

    def num_shards(self) -> int:
        return len(self._shards)
