"""Build the program IR from the discrete model, computing every variable's reachable values.

Domains are computed forward from the inputs and hold for *every* valid input (BOS at
position 0 and nowhere else, no padding inside, at most ``n_ctx`` tokens), not just the data:
a numerical head's range comes from how many keys can match each query value, and each
MLP becomes a lookup table over the full product of its inputs' domains.
"""

from __future__ import annotations

import itertools

import numpy as np

from crystalbox.programs.decompile.ir import (
    CategoricalDomain,
    CategoricalFeature,
    Classifier,
    Domain,
    Lookup,
    NumericalDomain,
    NumericalFeature,
    Predicate,
    Program,
    Select,
    SelectSum,
    Step,
    Variable,
)
from crystalbox.programs.discrete import DiscreteHead, DiscreteMLP, DiscreteModel

__all__ = ["build_program"]


class _Domains:
    """Domains of the variables built so far, plus the values each can take at position 0."""

    def __init__(self, discrete: DiscreteModel) -> None:
        vocab = discrete.input_vocab
        self.bos_id = vocab.index(discrete.bos)
        token_ids = tuple(i for i, t in enumerate(vocab) if t != discrete.pad)
        self.domains: dict[str, Domain] = {
            "tokens": CategoricalDomain(token_ids, vocab),
            "positions": CategoricalDomain(tuple(range(discrete.n_ctx))),
            "ones": NumericalDomain(1, 1),
        }
        self.at_bos: dict[str, frozenset[int]] = {
            "tokens": frozenset({self.bos_id}),
            "positions": frozenset({0}),
        }

    def cat(self, name: str) -> CategoricalDomain:
        domain = self.domains[name]
        if not isinstance(domain, CategoricalDomain):
            raise TypeError(f"variable {name!r} is numerical where a categorical one is needed")
        return domain

    def num(self, name: str) -> NumericalDomain:
        domain = self.domains[name]
        if not isinstance(domain, NumericalDomain):
            raise TypeError(f"variable {name!r} is categorical where a numerical one is needed")
        return domain

    def bos_values(self, name: str) -> frozenset[int]:
        return self.at_bos.get(name, frozenset(self.cat(name).values))


def _predicate(head: DiscreteHead, domains: _Domains) -> Predicate:
    keys = set(domains.cat(head.key).values)
    rows = []
    for q in domains.cat(head.query).values:
        wanted = int(head.predicate[q])
        rows.append((q, wanted if wanted in keys else None))
    return Predicate(tuple(rows))


def _max_matches(head: DiscreteHead, wanted: int | None, domains: _Domains, n_ctx: int) -> int:
    """How many key positions can hold the value ``wanted`` in one valid input."""
    if wanted is None:
        return 0
    if head.key == "positions":
        return 1
    if head.key == "tokens":
        return 1 if wanted == domains.bos_id else n_ctx - 1
    return n_ctx


def _select(head: DiscreteHead, domains: _Domains, n_ctx: int) -> tuple[Step, Variable]:
    predicate = _predicate(head, domains)
    if head.kind == "categorical":
        value_domain = domains.cat(head.value)
        if all(k is None for _, k in predicate.table):
            reach = domains.bos_values(head.value)  # never matches: always copies BOS's value
        else:
            reach = frozenset(value_domain.values)
        domains.at_bos[head.name] = (
            domains.bos_values(head.value) if head.causal else frozenset(reach)
        )
        domain: Domain = CategoricalDomain(tuple(sorted(reach)), value_domain.labels)
        step: Step = Select(
            head.name, head.key, head.query, head.value, predicate, head.causal, head.name
        )
    else:
        value = domains.num(head.value)
        most = max(_max_matches(head, k, domains, n_ctx) for _, k in predicate.table)
        domain = NumericalDomain(min(0, most * value.lo), max(0, most * value.hi))
        step = SelectSum(
            head.name, head.key, head.query, head.value, predicate, head.causal, head.name
        )
    domains.domains[head.name] = domain
    return step, Variable(head.name, head.name, domain, head.layer)


def _lookup(mlp: DiscreteMLP, domains: _Domains) -> tuple[Step, Variable]:
    inputs = tuple(dict.fromkeys(mlp.inputs))  # both slots reading one variable: one input
    value_lists = [domains.domains[name].values for name in inputs]
    keys = list(itertools.product(*value_lists))
    grid = np.asarray(keys, dtype=np.int64).reshape(len(keys), len(inputs))
    first = grid[:, 0]
    second = grid[:, 1] if len(inputs) == 2 else grid[:, 0]
    outputs = mlp.evaluate(first, second).astype(np.int64)
    table = tuple((key, int(out)) for key, out in zip(keys, outputs, strict=True))
    reach = frozenset(int(o) for o in outputs)
    domain = CategoricalDomain(tuple(sorted(reach)))
    if mlp.kind == "categorical":
        at_bos = {
            out
            for key, out in table
            if all(v in domains.bos_values(n) for v, n in zip(key, inputs, strict=True))
        }
        domains.at_bos[mlp.output] = frozenset(at_bos)
    domains.domains[mlp.output] = domain
    step = Lookup(mlp.output, inputs, table, None, mlp.name)
    return step, Variable(mlp.output, mlp.name, domain, mlp.layer)


def _classifier(discrete: DiscreteModel, domains: _Domains) -> Classifier:
    features: list[CategoricalFeature | NumericalFeature] = []
    for var in discrete.variables:
        weight = discrete.classifier[var.name]
        domain = domains.domains[var.name]
        if isinstance(domain, CategoricalDomain):
            rows = tuple((v, tuple(float(x) for x in weight[v])) for v in domain.values)
            features.append(CategoricalFeature(var.name, rows))
        else:
            features.append(NumericalFeature(var.name, tuple(float(x) for x in weight[0])))
    n_classes = len(discrete.output_vocab)
    return Classifier(tuple(features), (0.0,) * n_classes, discrete.output_vocab)


def build_program(discrete: DiscreteModel, task: str = "program") -> Program:
    """The unsimplified program of ``discrete``: one step per head and MLP, every feature."""
    domains = _Domains(discrete)
    variables = [
        Variable(name, name, domains.domains[name]) for name in ("tokens", "positions", "ones")
    ]
    steps: list[Step] = []
    for layer in range(discrete.n_layers):
        for head in (h for h in discrete.heads if h.layer == layer):
            step, var = _select(head, domains, discrete.n_ctx)
            steps.append(step)
            variables.append(var)
        for mlp in (m for m in discrete.mlps if m.layer == layer):
            step, var = _lookup(mlp, domains)
            steps.append(step)
            variables.append(var)
    return Program(
        variables=tuple(variables),
        steps=tuple(steps),
        classifier=_classifier(discrete, domains),
        input_vocab=discrete.input_vocab,
        bos=discrete.bos,
        pad=discrete.pad,
        eos=discrete.eos,
        n_ctx=discrete.n_ctx,
        causal=discrete.causal,
        task=task,
    )
