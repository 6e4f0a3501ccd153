"""The typed program IR: variables with value domains, steps, and the classifier.

A ``Program`` is what a decompiled Transformer Program *is*: input variables (``tokens``,
``positions``, ``ones``), then a sequence of steps in execution order, each writing one new
variable, then a linear classifier over some variables. Categorical values are stored as
the model's integer ids; ``CategoricalDomain.labels`` gives their readable names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "CategoricalDomain",
    "CategoricalFeature",
    "Classifier",
    "Constant",
    "Domain",
    "Lookup",
    "NumericalDomain",
    "NumericalFeature",
    "Predicate",
    "PredicateForm",
    "Program",
    "Select",
    "SelectSum",
    "Step",
    "Variable",
]

Label = str | int
PredicateForm = Literal["table", "equal", "offset", "mirror", "constant", "never"]


@dataclass(frozen=True)
class CategoricalDomain:
    """Reachable value ids (ascending); ``labels[id]`` names every id, or ``None``: ids are ints."""

    values: tuple[int, ...]
    labels: tuple[str, ...] | None = None

    def label(self, value: int) -> Label:
        return value if self.labels is None else self.labels[value]

    @property
    def size(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class NumericalDomain:
    """Integer values ``lo..hi`` (inclusive): every value the variable can reach."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"empty numerical domain [{self.lo}, {self.hi}]")

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.lo, self.hi + 1))

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    @property
    def labels(self) -> None:
        return None

    def label(self, value: int) -> Label:
        return value


Domain = CategoricalDomain | NumericalDomain


@dataclass(frozen=True)
class Variable:
    """A named variable; ``source`` is the model's module (or embedding) that writes it."""

    name: str
    source: str
    domain: Domain
    layer: int | None = None

    @property
    def kind(self) -> Literal["categorical", "numerical"]:
        return "categorical" if isinstance(self.domain, CategoricalDomain) else "numerical"


@dataclass(frozen=True)
class Predicate:
    """``table``: (query value, wanted key value or ``None`` = matches nothing reachable).

    ``form`` is how it reads: ``equal`` (``k == q``), ``offset`` (``k == q + offset``),
    ``mirror`` (``k == offset - q``), ``constant`` (``k == constant``), ``never`` (no
    reachable key matches: always BOS), or ``table``; rows the form does not describe are
    its exceptions. The table is authoritative; the form is a summary set by simplify.
    """

    table: tuple[tuple[int, int | None], ...]
    form: PredicateForm = "table"
    offset: int = 0
    constant: int | None = None

    def wanted(self, query: int) -> int | None:
        for q, k in self.table:
            if q == query:
                return k
        return None


@dataclass(frozen=True)
class Select:
    """Categorical head: ``output = aggregate(select_closest(keys, queries, predicate), values)``."""

    output: str
    keys: str
    queries: str
    values: str
    predicate: Predicate
    causal: bool
    source: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.keys, self.queries, self.values)


@dataclass(frozen=True)
class SelectSum:
    """Numerical head: ``output = aggregate_sum(select(keys, queries, predicate), values)``."""

    output: str
    keys: str
    queries: str
    values: str
    predicate: Predicate
    causal: bool
    source: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.keys, self.queries, self.values)


@dataclass(frozen=True)
class Lookup:
    """MLP as a table: ``table`` maps input values (one per input) to the output value.

    Inputs missing from the table give ``default`` (``None``: the table must be complete).
    """

    output: str
    inputs: tuple[str, ...]
    table: tuple[tuple[tuple[int, ...], int], ...]
    default: int | None
    source: str

    def as_dict(self) -> dict[tuple[int, ...], int]:
        return dict(self.table)


@dataclass(frozen=True)
class Constant:
    """A variable with one reachable value at every position."""

    output: str
    value: int
    source: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


Step = Select | SelectSum | Lookup | Constant


@dataclass(frozen=True)
class CategoricalFeature:
    """Classifier weights of a categorical variable: one row of class scores per value."""

    variable: str
    rows: tuple[tuple[int, tuple[float, ...]], ...]


@dataclass(frozen=True)
class NumericalFeature:
    """Classifier weights of a numerical variable: class scores multiplied by its value."""

    variable: str
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Classifier:
    """``logits = bias + sum of feature scores``; the prediction is the argmax class."""

    features: tuple[CategoricalFeature | NumericalFeature, ...]
    bias: tuple[float, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Program:
    """A whole program: input variables, steps in order, classifier, vocabularies."""

    variables: tuple[Variable, ...]
    steps: tuple[Step, ...]
    classifier: Classifier
    input_vocab: tuple[str, ...]
    bos: str
    pad: str
    eos: str | None
    n_ctx: int
    causal: bool
    task: str = "program"
    notes: tuple[str, ...] = field(default=())

    def variable(self, name: str) -> Variable:
        for var in self.variables:
            if var.name == name:
                return var
        raise KeyError(f"no variable {name!r}; known: {[v.name for v in self.variables]}")

    def step_of(self, name: str) -> Step | None:
        """The step that writes ``name`` (``None`` for an input variable)."""
        for step in self.steps:
            if step.output == name:
                return step
        return None

    def with_steps(self, steps: tuple[Step, ...], classifier: Classifier | None = None) -> Program:
        """The same program with other steps (variables no step or input writes are dropped)."""
        written = {s.output for s in steps} | {v.name for v in self.variables if v.layer is None}
        variables = tuple(v for v in self.variables if v.name in written)
        return replace(
            self,
            variables=variables,
            steps=steps,
            classifier=classifier if classifier is not None else self.classifier,
        )
