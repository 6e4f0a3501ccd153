"""Activation collection at scale: stream layer outputs of many texts into sharded safetensors files.

``collect_activations`` is resumable (re-run the same call after an interruption: committed shards
are kept, the rest is recomputed identically), bounded in memory (one batch and one shard), correct
for left and right padding, and splits its input by rank for multi-process runs (``torchrun``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from crystalbox import _nnsight
from crystalbox.errors import CheckpointError
from crystalbox.methods._common import encode, layer_list
from crystalbox.methods.collection_io import (
    FORMAT_VERSION,
    MANIFEST,
    ActivationDataset,
    load_manifest,
    manifest_lock,
    shard_name,
    verify_shard,
    write_manifest,
    write_shard,
)

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = [
    "ActivationDataset",
    "CollectionSummary",
    "collect_activations",
    "get_token_activations",
    "model_identity",
]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class CollectionSummary:
    """What one call wrote: rows and tokens of this rank, shards written now and in total."""

    directory: Path
    rank: int
    world_size: int
    docs: int
    rows: int
    shards_written: int
    shards_total: int
    complete: bool


def model_identity(model: StandardizedTransformer) -> dict[str, Any]:
    """Name, shape and a weight fingerprint: sha256 of the first embedding rows, or, for a
    model whose embedding has no weight (a Transformer Program's one-hots), of the first
    values of every parameter."""
    config = model.hf_model.config
    embedding = model.hf_model.get_input_embeddings()  # type: ignore[operator]
    embed = getattr(embedding, "weight", None)
    if isinstance(embed, torch.Tensor):
        tensors = [embed[: min(64, embed.shape[0])]]
    else:
        tensors = [p.flatten()[:4096] for p in model.hf_model.parameters()]
    sample = b"".join(t.detach().float().cpu().contiguous().numpy().tobytes() for t in tensors)
    return {
        "name": str(getattr(config, "_name_or_path", "") or type(model.hf_model).__name__),
        "model_type": model.arch.model_type,
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "vocab_size": model.vocab_size,
        "fingerprint": hashlib.sha256(sample).hexdigest()[:32],
    }


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    r = int(os.environ.get("RANK", "0")) if rank is None else rank
    w = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size, got rank={r}, world_size={w}")
    return r, w


def _positions_key(positions: str | Sequence[int]) -> str | list[int]:
    if isinstance(positions, str):
        if positions not in ("all", "last"):
            raise ValueError(
                f"positions must be 'all', 'last' or a list of ints, got {positions!r}"
            )
        return positions
    items = list(positions)
    if not items or not all(isinstance(p, int) and not isinstance(p, bool) for p in items):
        raise ValueError(
            f"positions must be 'all', 'last' or a non-empty list of ints, got {positions!r}"
        )
    return items


def collect_activations(
    model: StandardizedTransformer,
    texts: Iterable[str],
    directory: str | os.PathLike[str],
    *,
    layers: int | Sequence[int] | None = None,
    positions: str | Sequence[int] = "all",
    dtype: str = "float32",
    batch_size: int = 8,
    shard_rows: int = 65536,
    max_length: int = 512,
    padding_side: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
    repair: bool = False,
    progress: bool = True,
) -> CollectionSummary:
    """Write the outputs of ``layers`` at ``positions`` of every text into ``directory``.

    Rows are tokens: ``activations`` ``[rows, layers, d_model]`` with ``doc`` (index of the text in
    ``texts``), ``pos`` (index among the text's real tokens) and ``token`` ``[rows]``.
    ``positions``: ``'all'`` real tokens, ``'last'``, or a list of indices into each text's real
    tokens (negative from the end; texts too short for an index are skipped at it).
    Text ``i`` goes to rank ``i % world_size`` (``rank``/``world_size`` default to ``$RANK``/``$WORLD_SIZE``).
    A shard is closed at the first batch boundary past ``shard_rows`` rows.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if batch_size < 1 or shard_rows < 1 or max_length < 1:
        raise ValueError("batch_size, shard_rows and max_length must be >= 1")
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not one string; wrap it in a list")
    r, w = _rank_world(rank, world_size)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    chosen = layer_list(model, layers)
    config = {
        "model": model_identity(model),
        "layers": list(chosen),
        "positions": _positions_key(positions),
        "dtype": dtype,
        "d_model": model.hidden_size,
        "batch_size": batch_size,
        "shard_rows": shard_rows,
        "max_length": max_length,
        "padding_side": padding_side or model.tokenizer.padding_side,
        "world_size": w,
    }
    done_docs, next_index, existing = _open_manifest(out, config, r, overwrite, repair)
    total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    mine = ((i, t) for i, t in enumerate(texts) if i % w == r)
    remaining = itertools.islice(mine, done_docs, None)
    bar = _progress(progress, total, w, r, done_docs)
    buffer: list[dict[str, torch.Tensor]] = []
    buffered_rows = 0
    docs = done_docs
    written = 0
    first_doc = done_docs
    for batch in _batched(remaining, batch_size):
        for _, text in batch:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}")
        rows = _batch_rows(model, batch, chosen, config, _DTYPES[dtype])
        buffer.append(rows)
        buffered_rows += int(rows["doc"].shape[0])
        docs += len(batch)
        bar.update(len(batch))
        if buffered_rows >= shard_rows:
            _commit(out, r, next_index, buffer, first_doc, docs, config)
            next_index += 1
            written += 1
            buffer, buffered_rows, first_doc = [], 0, docs
    if buffer:
        _commit(out, r, next_index, buffer, first_doc, docs, config)
        written += 1
    _mark_complete(out, r, docs)
    bar.close()
    manifest = load_manifest(out) or {}
    rows_total = sum(e["rows"] for e in manifest.get("shards", []) if e["rank"] == r)
    return CollectionSummary(out, r, w, docs, rows_total, written, existing + written, True)


def _progress(enabled: bool, total: int | None, world: int, rank: int, done: int) -> Any:
    from tqdm.auto import tqdm

    mine = None if total is None else len(range(rank, total, world))
    return tqdm(
        total=mine, initial=done, unit="doc", desc=f"collect (rank {rank})", disable=not enabled
    )


def _batched(items: Iterator[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


def _batch_rows(
    model: StandardizedTransformer,
    batch: list[tuple[int, str]],
    layers: tuple[int, ...],
    config: dict[str, Any],
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """Activations of one batch's selected real tokens, in (doc, position) order."""
    texts = [t for _, t in batch]
    nonempty = [i for i, t in enumerate(texts) if t]
    empty_rows = {
        "activations": torch.empty(0, len(layers), model.hidden_size, dtype=dtype),
        "doc": torch.empty(0, dtype=torch.int64),
        "pos": torch.empty(0, dtype=torch.int64),
        "token": torch.empty(0, dtype=torch.int64),
    }
    if not nonempty:
        return empty_rows
    inputs = encode(
        model,
        [texts[i] for i in nonempty],
        side=config["padding_side"],
        max_length=config["max_length"],
    )
    hidden: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(dict(inputs)) as tracer:
        for layer in layers:
            hidden.append(_nnsight.save(model.layers_output[layer]))
        tracer.stop()  # nothing after the last collected layer is needed (skips the LM head)
    mask = inputs["attention_mask"].bool().cpu()
    index = mask.long().cumsum(1) - 1  # position among real tokens, [batch, pos]
    lengths = mask.sum(1)
    select = mask.clone()
    spec = config["positions"]
    if spec == "last":
        select &= index == (lengths - 1)[:, None]
    elif isinstance(spec, list):
        wanted = torch.zeros_like(mask)
        for p in spec:
            target = torch.where(torch.tensor(p) < 0, lengths + p, torch.full_like(lengths, p))
            wanted |= (
                (index == target[:, None])
                & (target[:, None] >= 0)
                & (target[:, None] < lengths[:, None])
            )
        select &= wanted
    stacked = torch.stack([h.detach().cpu() for h in hidden], 2)  # [batch, pos, layers, d_model]
    doc_ids = torch.tensor([batch[i][0] for i in nonempty])[:, None].expand_as(mask)
    return {
        "activations": stacked[select].to(dtype),
        "doc": doc_ids[select].clone(),
        "pos": index[select].clone(),
        "token": inputs["input_ids"].cpu()[select].clone(),
    }


def _open_manifest(
    out: Path, config: dict[str, Any], rank: int, overwrite: bool, repair: bool
) -> tuple[int, int, int]:
    """Create or check the manifest; returns (docs already done by this rank, next shard index, shards kept)."""
    with manifest_lock(out):
        manifest = load_manifest(out)
        if manifest is not None and overwrite:
            for entry in manifest["shards"]:
                (out / entry["file"]).unlink(missing_ok=True)
            manifest = None
        if manifest is None:
            if any(out.glob("rank*-shard*.safetensors")):
                raise CheckpointError(
                    f"{out} holds shard files but no {MANIFEST}; choose an empty directory"
                )
            manifest = {"format": FORMAT_VERSION, "config": config, "shards": [], "ranks": {}}
            write_manifest(out, manifest)
        _check_same_config(out, manifest["config"], config)
        mine = sorted(
            (e for e in manifest["shards"] if e["rank"] == rank), key=lambda e: e["index"]
        )
        keep = []
        for entry in mine:
            try:
                verify_shard(out, entry)
            except CheckpointError:
                if not repair:
                    raise
                break
            keep.append(entry)
        if len(keep) != len(mine):
            dropped = {e["file"] for e in mine[len(keep) :]}
            manifest["shards"] = [e for e in manifest["shards"] if e["file"] not in dropped]
        done = keep[-1]["docs"][1] if keep else 0
        manifest["ranks"][str(rank)] = {"docs": done, "complete": False}
        write_manifest(out, manifest)
    return done, len(keep), len(keep)


def _check_same_config(out: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    if found.get("model") != wanted["model"]:
        have, want = found.get("model", {}), wanted["model"]
        raise CheckpointError(
            f"{out} holds a collection of another model ({have.get('name')!r}, {have.get('model_type')}, "
            f"fingerprint {have.get('fingerprint')}) than this one ({want['name']!r}, {want['model_type']}, "
            f"fingerprint {want['fingerprint']}); use another directory or overwrite=True"
        )
    diffs = [k for k in wanted if found.get(k) != wanted[k]]
    if diffs:
        details = ", ".join(f"{k}: {found.get(k)!r} there vs {wanted[k]!r} now" for k in diffs)
        raise CheckpointError(
            f"{out} holds a collection with other settings ({details}); resume with the same "
            f"settings, use another directory, or pass overwrite=True"
        )


def _commit(
    out: Path,
    rank: int,
    index: int,
    buffer: list[dict[str, torch.Tensor]],
    first_doc: int,
    last_doc: int,
    config: dict[str, Any],
) -> None:
    """Write one shard, then record it in the manifest (a crash in between only loses this shard)."""
    tensors = {key: torch.cat([b[key] for b in buffer]) for key in buffer[0]}
    name = shard_name(rank, index)
    checksum, size = write_shard(
        out, name, tensors, {"layers": ",".join(map(str, config["layers"]))}
    )
    entry = {
        "file": name,
        "rank": rank,
        "index": index,
        "rows": int(tensors["doc"].shape[0]),
        "tokens": int(tensors["doc"].shape[0]),
        "docs": [first_doc, last_doc],  # this rank's documents [start, end)
        "sha256": checksum,
        "bytes": size,
    }
    with manifest_lock(out):
        manifest = load_manifest(out)
        if manifest is None:
            raise CheckpointError(f"{out / MANIFEST} disappeared during collection")
        manifest["shards"] = [e for e in manifest["shards"] if e["file"] != name] + [entry]
        manifest["ranks"][str(rank)] = {"docs": last_doc, "complete": False}
        manifest["rows"] = sum(e["rows"] for e in manifest["shards"])
        write_manifest(out, manifest)


def _mark_complete(out: Path, rank: int, docs: int) -> None:
    with manifest_lock(out):
        manifest = load_manifest(out)
        if manifest is None:
            raise CheckpointError(f"{out / MANIFEST} disappeared during collection")
        manifest["ranks"][str(rank)] = {"docs": docs, "complete": True}
        manifest["rows"] = sum(e["rows"] for e in manifest["shards"])
        write_manifest(out, manifest)


def get_token_activations(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    layers: int | Sequence[int] | None = None,
    idx: int = -1,
    *,
    batch_size: int = 32,
) -> torch.Tensor:
    """Layer outputs at token ``idx`` of each prompt's real tokens ``[layers, prompts, d_model]`` (in memory)."""
    from crystalbox.methods._common import as_prompts

    texts = as_prompts(prompts)
    chosen = layer_list(model, layers)
    config = {"positions": [idx], "padding_side": None, "max_length": 100_000}
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = list(enumerate(texts[start : start + batch_size], start))
        rows = _batch_rows(model, batch, chosen, config, torch.float32)
        if rows["doc"].shape[0] != len(batch):
            raise IndexError(f"token index {idx} is out of range for at least one prompt")
        parts.append(rows["activations"])
    return torch.cat(parts).transpose(0, 1)
