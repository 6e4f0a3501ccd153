"""``crystalbox patch | attribute | ablate | steer | patchscope | collect``: the methods from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crystalbox.cli.common import add_model_option, guard, model_from_args

DEFAULT_POSITIVE = (
    "I love this, it is wonderful",
    "What a great and happy day",
    "This is fantastic news",
)
DEFAULT_NEGATIVE = (
    "I hate this, it is terrible",
    "What an awful and sad day",
    "This is horrible news",
)


def register(subparsers: Any) -> None:
    patch = subparsers.add_parser(
        "patch", help="activation patching grid (layers x positions or heads) + heatmap"
    )
    _pair_args(patch)
    patch.add_argument(
        "--component", default="resid", choices=["resid", "resid_pre", "attn", "mlp", "heads"]
    )
    patch.add_argument("--batch-size", type=int, default=32)
    patch.set_defaults(func=guard(_patch))

    attribute = subparsers.add_parser(
        "attribute", help="attribution patching (gradient estimate of 'patch')"
    )
    _pair_args(attribute)
    attribute.add_argument(
        "--component", default="resid", choices=["resid", "resid_pre", "attn", "mlp", "heads"]
    )
    attribute.add_argument(
        "--compare", action="store_true", help="also run exact patching and compare"
    )
    attribute.set_defaults(func=guard(_attribute))

    ablate = subparsers.add_parser(
        "ablate", help="next-token distribution with a component ablated"
    )
    ablate.add_argument("prompt")
    add_model_option(ablate)
    ablate.add_argument("--target", default="mlp", choices=["layer", "attn", "mlp", "heads"])
    ablate.add_argument("--layers", default="0", help="comma-separated layers (default: 0)")
    ablate.add_argument("--heads", default=None, help="comma-separated heads (for --target heads)")
    ablate.add_argument("--kind", default="zero", choices=["zero", "mean", "resample"])
    ablate.add_argument(
        "--reference", action="append", default=None, help="reference prompt (repeatable)"
    )
    ablate.set_defaults(func=guard(_ablate))

    steer = subparsers.add_parser("steer", help="generate with a contrastive steering vector added")
    steer.add_argument("prompt")
    add_model_option(steer)
    steer.add_argument(
        "--positive", action="append", default=None, help="positive prompt (repeatable)"
    )
    steer.add_argument(
        "--negative", action="append", default=None, help="negative prompt (repeatable)"
    )
    steer.add_argument(
        "--layer", type=int, default=None, help="layer to steer (default: a third of the depth)"
    )
    steer.add_argument("--factor", type=float, default=2.0)
    steer.add_argument("--max-new-tokens", type=int, default=20)
    steer.set_defaults(func=guard(_steer))

    scope = subparsers.add_parser(
        "patchscope", help="identity patchscope: what each layer's last hidden state says"
    )
    scope.add_argument("prompt")
    add_model_option(scope)
    scope.add_argument("--target", default=None, help="target prompt (default: the repeat prompt)")
    scope.set_defaults(func=guard(_patchscope))

    collect = subparsers.add_parser(
        "collect", help="stream activations into sharded safetensors (resumable)"
    )
    collect.add_argument("texts", nargs="*", help="texts (or use --file)")
    add_model_option(collect)
    collect.add_argument(
        "--file", type=Path, default=None, help="a .txt (one text per line) or .jsonl file"
    )
    collect.add_argument(
        "--field", default="text", help="JSONL field holding the text (default: text)"
    )
    collect.add_argument("--out", type=Path, default=Path("out/activations"))
    collect.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    collect.add_argument(
        "--positions", default="all", help="'all', 'last' or comma-separated indices"
    )
    collect.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    collect.add_argument("--batch-size", type=int, default=8)
    collect.add_argument("--shard-rows", type=int, default=65536)
    collect.add_argument("--max-length", type=int, default=512)
    collect.add_argument("--rank", type=int, default=None, help="default: $RANK or 0")
    collect.add_argument("--world-size", type=int, default=None, help="default: $WORLD_SIZE or 1")
    collect.add_argument("--overwrite", action="store_true")
    collect.add_argument(
        "--repair", action="store_true", help="recompute corrupted or missing shards"
    )
    collect.add_argument("--no-progress", action="store_true")
    collect.set_defaults(func=guard(_collect))


def _pair_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clean", nargs="?", default="The capital of France is")
    parser.add_argument("corrupted", nargs="?", default="The capital of Italy is")
    add_model_option(parser)
    parser.add_argument(
        "--correct", default=None, help="token of the clean answer (default: clean top token)"
    )
    parser.add_argument(
        "--incorrect", default=None, help="token of the corrupted answer (default: its top token)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the heatmap (default: out/)"
    )
    parser.add_argument(
        "--html", action="store_true", help="also write an interactive HTML heatmap"
    )


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def _metric(model: Any, args: argparse.Namespace) -> Any:
    from crystalbox.methods.metrics import logit_diff, target_prob

    if args.correct and args.incorrect:
        return logit_diff(args.correct, args.incorrect, model.tokenizer)
    if args.correct:
        return target_prob(args.correct, model.tokenizer)
    if args.incorrect:
        raise ValueError("--incorrect needs --correct too")
    return None


def _print_grid(result: Any) -> None:
    print(f"{result.method} patching of {result.component}: metric {result.metric}")
    print(f"  clean {result.clean_score:.4f}, corrupted {result.corrupted_score:.4f}")
    effect = result.effect
    flat = effect.abs().flatten().topk(min(5, effect.numel())).indices.tolist()
    print("  largest effects (layer, column, effect):")
    for index in flat:
        row, col = divmod(index, effect.shape[1])
        print(
            f"    layer {result.layers[row]:>3}  {result.column_names[col]!r:<14} {float(effect[row, col]):+.4f}"
        )


def _save_plots(result: Any, args: argparse.Namespace, stem: str) -> None:
    png = result.plot(args.out / f"{stem}.png")
    print(f"  heatmap: {png}")
    if args.html:
        print(f"  interactive: {result.plot(args.out / f'{stem}.html')}")


def _patch(args: argparse.Namespace) -> int:
    from crystalbox.methods.patching import activation_patching

    model = model_from_args(args)
    result = activation_patching(
        model,
        args.clean,
        args.corrupted,
        metric=_metric(model, args),
        component=args.component,
        batch_size=args.batch_size,
    )
    _print_grid(result)
    _save_plots(result, args, f"patch_{args.component}")
    return 0


def _attribute(args: argparse.Namespace) -> int:
    from crystalbox.methods.attribution import attribution_patching, compare_patching
    from crystalbox.methods.patching import activation_patching

    model = model_from_args(args)
    metric = _metric(model, args)
    result = attribution_patching(
        model, args.clean, args.corrupted, metric=metric, component=args.component
    )
    _print_grid(result)
    _save_plots(result, args, f"attribution_{args.component}")
    if args.compare:
        exact = activation_patching(
            model, args.clean, args.corrupted, metric=metric, component=args.component
        )
        print(f"  vs exact patching: {compare_patching(exact, result)}")
    return 0


def _top(model: Any, probs: Any, k: int = 5) -> str:
    values, ids = probs.topk(k)
    return ", ".join(
        f"{model.tokenizer.decode([int(i)])!r} {float(v):.3f}"
        for v, i in zip(values, ids, strict=True)
    )


def _ablate(args: argparse.Namespace) -> int:
    from crystalbox.methods.ablation import ablate

    model = model_from_args(args)
    layers = _ints(args.layers) or [0]
    result = ablate(
        model,
        [args.prompt],
        args.target,
        layers,
        kind=args.kind,
        heads=_ints(args.heads),
        reference=args.reference,
    )
    print(f"baseline: {_top(model, result.baseline_probs[0])}")
    print(f"ablated ({args.kind} {args.target} at layers {layers}): {_top(model, result.probs[0])}")
    print(f"KL(baseline || ablated) = {float(result.kl()[0]):.4f}")
    return 0


def _steer(args: argparse.Namespace) -> int:
    from crystalbox.methods.steering import contrastive_steering_vector, steered_generate

    model = model_from_args(args)
    layer = args.layer if args.layer is not None else model.num_layers // 3
    vector = contrastive_steering_vector(
        model,
        args.positive or list(DEFAULT_POSITIVE),
        args.negative or list(DEFAULT_NEGATIVE),
        layers=[layer],
    )
    n = args.max_new_tokens
    plain = steered_generate(model, [args.prompt], vector, factor=0.0, max_new_tokens=n)[0]
    plus = steered_generate(model, [args.prompt], vector, factor=args.factor, max_new_tokens=n)[0]
    minus = steered_generate(model, [args.prompt], vector, factor=-args.factor, max_new_tokens=n)[0]
    print(
        f"steering vector at layer {layer} (norm {float(vector.norms()[0]):.2f}), factor {args.factor}"
    )
    print(f"  unsteered: {(args.prompt + plain)!r}")
    print(f"  +vector:   {(args.prompt + plus)!r}")
    print(f"  -vector:   {(args.prompt + minus)!r}")
    return 0


def _patchscope(args: argparse.Namespace) -> int:
    from crystalbox.methods.patchscopes import TargetPrompt, patchscope_lens, repeat_prompt

    model = model_from_args(args)
    target = TargetPrompt(args.target, -1) if args.target else repeat_prompt()
    probs = patchscope_lens(model, [args.prompt], target)[0]  # [layers, vocab]
    print(f"patchscope of {args.prompt!r} into {target.prompt!r}")
    for layer in range(probs.shape[0]):
        print(f"  layer {layer:>3}: {_top(model, probs[layer], 3)}")
    return 0


def _texts(args: argparse.Namespace) -> Iterator[str] | list[str]:
    if args.file is None:
        if not args.texts:
            raise ValueError(
                "give texts as arguments or --file PATH (.txt: one per line, .jsonl: --field)"
            )
        return list(args.texts)
    path: Path = args.file
    if not path.exists():
        raise ValueError(f"--file {path} does not exist")

    def lines() -> Iterator[str]:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\n")
                if path.suffix == ".jsonl":
                    if line.strip():
                        yield str(json.loads(line)[args.field])
                elif line:
                    yield line

    return lines()


def _collect(args: argparse.Namespace) -> int:
    from crystalbox.methods.collection import collect_activations

    model = model_from_args(args)
    positions: str | list[int] = args.positions
    if args.positions not in ("all", "last"):
        positions = _ints(args.positions) or []
    summary = collect_activations(
        model,
        _texts(args),
        args.out,
        layers=_ints(args.layers),
        positions=positions,
        dtype=args.dtype,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        max_length=args.max_length,
        rank=args.rank,
        world_size=args.world_size,
        overwrite=args.overwrite,
        repair=args.repair,
        progress=not args.no_progress,
    )
    print(
        f"rank {summary.rank}/{summary.world_size}: {summary.docs} texts, {summary.rows} rows in "
        f"{summary.shards_total} shards ({summary.shards_written} written now) under {summary.directory}"
    )
    if summary.docs and not summary.rows:
        print(
            f"crystalbox collect: note: no rows were collected; every text is shorter than "
            f"positions {args.positions} (a text too short for an index is skipped at it)",
            file=sys.stderr,
        )
    return 0
