"""Polishing a trained program: local search over its discrete choices.

Training optimises a relaxed model; its argmax model is the program. Polishing edits the
program directly: for every predicate row (what key value a query value matches), every read
(which variable a slot reads) and every occurring entry of a categorical MLP's table, it
scores each alternative on training examples and keeps an alternative when it raises training
accuracy, first on a search subset, then confirmed on the whole training split. A predicate or
read edit raises the chosen logit above the row's maximum; an edited table is trained into the
MLP's own weights (``mlp_fit``), and dropped if they cannot hold it. Numerical table MLPs
(``ProgramConfig.num_mlp_tables``) are searched entry by entry over the count pairs that
occur, each entry edited like a predicate row. So the model stays a model of the same shape,
decompiles as before and is verified against its program as before. After each round the
classifier is refit (``refit_classifier``). The round with the best validation accuracy is
kept, and the whole polish only when it beats the starting validation accuracy; the test
split is never read.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from tqdm import tqdm

from crystalbox.programs.data import IGNORE, Split
from crystalbox.programs.fast_predict import (
    Values,
    cat_mlp_table,
    class_logits,
    count_pair_rows,
    embed_values,
    rerun_head,
    run_layer,
)
from crystalbox.programs.mlp_fit import fit_cat_mlp
from crystalbox.programs.model import ProgramLayer, ProgramTransformer
from crystalbox.programs.refit import refit_classifier

__all__ = ["PolishConfig", "PolishEdit", "PolishResult", "polish_program"]

# the logits a head's slots and predicate rows are read from, per kind of choice
_PREDICATES = ("cat_pred", "num_pred")
_HEAD_READS = ("cat_key", "cat_query", "cat_value", "num_key", "num_query", "num_value")
_MLP_READS = ("mlp_read", "num_mlp_read")
# numerical table MLP entries: MLP m's count pair (a, b) is row (m * n_counts + a) * n_counts + b
_NUM_TABLE = "num_mlp_table"


@dataclass(frozen=True)
class PolishConfig:
    """Settings of ``polish_program``.

    ``search_examples``: training examples that score every alternative (0: all of them),
    drawn afresh each round; an improvement found there is confirmed on the whole training
    split before it is kept.
    """

    rounds: int = 2
    search_examples: int = 4000
    reads: bool = True
    tables: bool = True
    refit: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be positive, got {self.rounds}")
        if self.search_examples < 0:
            raise ValueError(
                f"search_examples must be 0 (all) or positive, got {self.search_examples}"
            )


@dataclass(frozen=True)
class PolishEdit:
    """One kept change: ``param[index]`` of layer ``layer`` now selects ``new`` (was ``old``);
    ``train`` is the training accuracy (percent, fast path) after it. Table edits are indexed
    (MLP, input a, input b): ``mlp_table`` for categorical MLPs, ``num_mlp_table`` for
    numerical table MLPs (counts a, b)."""

    round: int
    layer: int
    param: str
    index: tuple[int, ...]
    old: int
    new: int
    train: float


@dataclass(frozen=True)
class PolishResult:
    """Token accuracies (percent, ``model.predict``) before and after polishing."""

    train_before: float
    train_after: float
    val_before: float
    val_after: float
    kept: bool  # validation rose, so the model now holds the polished program
    best_round: int  # the round kept (0: none)
    edits: tuple[PolishEdit, ...]  # the kept round's edits, in order
    evaluations: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["edits"] = [asdict(e) for e in self.edits]
        return out


@dataclass
class _Scorer:
    """Counts correct scored positions of the argmax model on one set of examples.

    ``streams[l]`` caches the stream entering layer ``l`` (``streams[-1]``: after the last
    layer) and ``prefix[l]`` the class scores of the variables present before layer ``l``, so
    that an edit in layer ``l`` re-runs layers ``l``... only, and an edit of one head re-runs
    that head and the layer's MLPs, not the layer's other heads.
    """

    model: ProgramTransformer
    tokens: torch.Tensor  # [b, n]
    targets: torch.Tensor  # [b, n]
    streams: list[Values] = field(default_factory=list)
    prefix: list[torch.Tensor] = field(default_factory=list)  # [b, n, classes] float64
    evaluations: int = 0
    # categorical MLP tables being searched: layer -> MLP index -> table [k * k]
    overrides: dict[int, dict[int, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: ProgramTransformer, split: Split, rows: np.ndarray | None) -> _Scorer:
        inputs = split.inputs if rows is None else split.inputs[rows]
        targets = split.targets if rows is None else split.targets[rows]
        device = model.classifier_num.device
        scorer = cls(model, torch.as_tensor(inputs, device=device), torch.as_tensor(targets))
        scorer.recache()
        return scorer

    @torch.no_grad()
    def recache(self, from_layer: int = 0) -> None:
        """Recompute the cached streams after layer ``from_layer`` and every score prefix
        (the classifier may have changed)."""
        if not self.streams:
            self.streams = [embed_values(self.model, self.tokens)]
        del self.streams[from_layer + 1 :]
        for li, layer in enumerate(self._layers()):
            if li >= from_layer:
                tables = self.overrides.get(li)
                self.streams.append(run_layer(self.model, layer, self.streams[-1], tables))
        self.prefix = [class_logits(self.model, self.streams[0])]
        for before, after in zip(self.streams[:-1], self.streams[1:], strict=True):
            more = class_logits(self.model, after, len(before.cat), len(before.num))
            self.prefix.append(self.prefix[-1] + more)

    def _layers(self) -> list[ProgramLayer]:
        return [cast("ProgramLayer", m) for m in self.model.layers]

    @torch.no_grad()
    def correct(self, from_layer: int = 0, head: tuple[str, int] | None = None) -> int:
        """Correct positions with the model as it is now, given that nothing before layer
        ``from_layer`` changed (and, with ``head=(kind, index)``, nothing in that layer but
        that head)."""
        self.evaluations += 1
        start = self.streams[from_layer]
        layers = self._layers()
        if head is None:
            values = run_layer(
                self.model, layers[from_layer], start, self.overrides.get(from_layer)
            )
        else:
            after = self.streams[from_layer + 1]
            tables = self.overrides.get(from_layer)
            values = rerun_head(self.model, layers[from_layer], start, after, *head, tables)
        for li in range(from_layer + 1, len(layers)):
            values = run_layer(self.model, layers[li], values, self.overrides.get(li))
        rest = class_logits(self.model, values, len(start.cat), len(start.num))
        predicted = (self.prefix[from_layer] + rest).argmax(-1).cpu()
        scored = self.targets != IGNORE
        return int((predicted == self.targets)[scored].sum())

    def percent(self, correct: int) -> float:
        return 100.0 * correct / max(int((self.targets != IGNORE).sum()), 1)

    def values_of(self, layer: int, read: torch.Tensor) -> torch.Tensor:
        """Distinct values ``[u]`` of the categorical variable picked by ``read`` entering
        ``layer``, over this scorer's examples (padding included: it is a value too)."""
        return torch.unique(self.streams[layer].cat[int(read)])


def _choices(model: ProgramTransformer, layer_index: int, reads: bool) -> Iterator[tuple[str, int]]:
    """(parameter name, row) of every choice to search in one layer, predicates first."""
    layer = cast("ProgramLayer", model.layers[layer_index])
    names = list(_PREDICATES) + (list(_HEAD_READS) + list(_MLP_READS) if reads else [])
    for name in names:
        param = getattr(layer, name)
        if not isinstance(param, torch.nn.Parameter):  # a fixed read (count_only)
            continue
        rows = param.reshape(-1, param.shape[-1])
        for row in range(rows.shape[0]):
            yield name, row


def _candidates(scorer: _Scorer, layer_index: int, name: str, row: int) -> list[int]:
    """Alternatives worth scoring for one row: for a predicate row, the key values that occur
    and one that never does (it matches nothing); for a read, every variable present."""
    layer = cast("ProgramLayer", scorer.model.layers[layer_index])
    param = getattr(layer, name)
    width = int(param.shape[-1])
    if name not in _PREDICATES:
        return list(range(width))
    head, query_value = divmod(row, width)
    prefix = name.split("_")[0]  # "cat" or "num"
    queries = scorer.values_of(layer_index, getattr(layer, f"{prefix}_query")[head].argmax())
    if query_value not in set(queries.tolist()):
        return []  # this query value never occurs, so the row decides nothing here
    keys = scorer.values_of(layer_index, getattr(layer, f"{prefix}_key")[head].argmax())
    present = sorted(set(keys.tolist()))
    absent = [v for v in range(width) if v not in present][:1]
    return present + absent


def _head_of(name: str, row: int, param: torch.Tensor) -> tuple[str, int] | None:
    """(kind, head index) of the head whose predicate row or read ``row`` of ``name`` is;
    None for an MLP read or a numerical table entry."""
    if name in _MLP_READS or name == _NUM_TABLE:
        return None
    head = row // int(param.shape[-2]) if name in _PREDICATES else row
    return name.split("_")[0], head


def _select(param: torch.Tensor, row: int, choice: int) -> None:
    """Make ``choice`` the argmax of row ``row`` of ``param`` (flattened over leading dims)."""
    rows = param.data.view(-1, param.shape[-1])
    rows[row, choice] = rows[row].max() + 1.0


class _Round:
    """One pass over every choice; edits are applied to the model as they are kept."""

    def __init__(
        self, model: ProgramTransformer, search: _Scorer, full: _Scorer, round_index: int
    ) -> None:
        self.model, self.search, self.full, self.round = model, search, full, round_index
        self.search_score, self.full_score = search.correct(), full.correct()
        self.edits: list[PolishEdit] = []

    def _confirm(
        self, layer: int, best_score: int, head: tuple[str, int] | None = None
    ) -> int | None:
        """The whole-split score of a change that won on the search set, if it also wins."""
        confirmed = self.full.correct(layer, head)
        if confirmed <= self.full_score:
            return None
        self.search_score, self.full_score = best_score, confirmed
        self.search.recache(layer)
        self.full.recache(layer)
        return confirmed

    def _record(self, layer: int, param: str, index: tuple[int, ...], old: int, new: int) -> None:
        train = self.full.percent(self.full_score)
        self.edits.append(PolishEdit(self.round, layer, param, index, old, new, train))

    def row(self, li: int, name: str, row: int) -> None:
        """Search one predicate row or read."""
        param = getattr(self.model.layers[li], name)
        rows = param.data.view(-1, param.shape[-1])
        current = int(rows[row].argmax())
        saved = rows[row].clone()
        head = _head_of(name, row, param)
        best, best_score = current, self.search_score
        for choice in _candidates(self.search, li, name, row):
            if choice == current:
                continue
            _select(param, row, choice)
            score = self.search.correct(li, head)
            rows[row] = saved
            if score > best_score:
                best, best_score = choice, score
        if best == current:
            return
        _select(param, row, best)
        if self._confirm(li, best_score, head) is None:
            rows[row] = saved
            return
        index = tuple(int(i) for i in np.unravel_index(row, tuple(param.shape[:-1])))
        if name == _NUM_TABLE:  # (MLP, count a, count b)
            index = (index[0], *divmod(index[1], self.model.config.n_counts))
        self._record(li, name, index, current, best)

    def table(self, li: int, m: int) -> None:
        """Search every occurring entry of categorical MLP ``m``'s table, then write the
        edited table into the MLP's weights (all of this MLP's edits are undone if the fit
        fails)."""
        layer = cast("ProgramLayer", self.model.layers[li])
        k = self.model.config.d_var
        table = cat_mlp_table(layer, m).clone()
        overrides = self.search.overrides.setdefault(li, {})
        self.full.overrides.setdefault(li, {})[m] = overrides[m] = table
        first_edit = len(self.edits)
        outputs = sorted(set(table.tolist()))
        choices = outputs + [v for v in range(k) if v not in outputs][:1]
        for pair in _occurring_pairs(self.search, li, m):
            current = int(table[pair])
            best, best_score = current, self.search_score
            for choice in choices:
                if choice == current:
                    continue
                table[pair] = choice
                score = self.search.correct(li)
                if score > best_score:
                    best, best_score = choice, score
            table[pair] = best
            if best == current:
                continue
            if self._confirm(li, best_score) is None:
                table[pair] = current
                continue
            self._record(li, "mlp_table", (m, *divmod(pair, k)), current, best)
        del self.search.overrides[li][m], self.full.overrides[li][m]
        if len(self.edits) > first_edit and not fit_cat_mlp(layer, m, table):
            del self.edits[first_edit:]  # the weights could not hold it: back to the trained
        self.search.recache(li)
        self.full.recache(li)
        self.search_score, self.full_score = self.search.correct(li), self.full.correct(li)


def _occurring_pairs(scorer: _Scorer, li: int, m: int) -> list[int]:
    """Input pairs ``a * k + b`` of categorical MLP ``m`` of layer ``li`` that occur on the
    scorer's examples, most frequent first."""
    layer = cast("ProgramLayer", scorer.model.layers[li])
    k = scorer.model.config.d_var
    after = scorer.streams[li + 1]  # MLP inputs come before any MLP output: tables don't matter
    read = layer.mlp_read[m].argmax(-1)
    pairs = after.cat[int(read[0])] * k + after.cat[int(read[1])]
    values, counts = torch.unique(pairs, return_counts=True)
    return [int(v) for v in values[counts.argsort(descending=True, stable=True)]]


def _occurring_count_pairs(scorer: _Scorer, li: int) -> list[int]:
    """Rows of layer ``li``'s numerical table MLPs (``num_mlp_table`` flattened over MLPs)
    whose count pairs occur on the scorer's examples, most frequent first within each MLP."""
    layer = cast("ProgramLayer", scorer.model.layers[li])
    n = scorer.model.config.n_counts
    after = scorer.streams[li + 1]
    rows: list[int] = []
    for m in range(layer.num_mlp_read.shape[0]):
        read = layer.num_mlp_read[m].argmax(-1)
        pairs = count_pair_rows(
            scorer.model.config, after.num[int(read[0])], after.num[int(read[1])]
        )
        values, counts = torch.unique(m * n * n + pairs, return_counts=True)
        rows.extend(int(v) for v in values[counts.argsort(descending=True, stable=True)])
    return rows


def _search_round(
    model: ProgramTransformer,
    search: _Scorer,
    full: _Scorer,
    config: PolishConfig,
    round_index: int,
) -> list[PolishEdit]:
    jobs: list[tuple[int, str, int]] = []
    for li, module in enumerate(model.layers):
        jobs.extend((li, name, row) for name, row in _choices(model, li, config.reads))
        if config.tables:
            n_mlps = cast("ProgramLayer", module).mlp_read.shape[0]
            jobs.extend((li, "mlp_table", m) for m in range(n_mlps))
            if model.config.num_mlp_tables:  # entries edited in place: no fit needed
                jobs.extend((li, _NUM_TABLE, row) for row in _occurring_count_pairs(search, li))
    state = _Round(model, search, full, round_index)
    bar = tqdm(jobs, desc=f"polish round {round_index}", disable=not config.progress)
    for li, name, row in bar:
        if name == "mlp_table":
            state.table(li, row)
        else:
            state.row(li, name, row)
        bar.set_postfix(train=f"{full.percent(state.full_score):.3f}", edits=len(state.edits))
    return state.edits


def polish_program(
    model: ProgramTransformer, train: Split, val: Split, config: PolishConfig | None = None
) -> PolishResult:
    """Polish ``model``'s program in place by local search on ``train`` (see the module).

    Keeps the round with the best validation accuracy when it beats the starting one, else
    restores the model bit-exactly. Reported accuracies are those of ``model.predict``.
    """
    from crystalbox.programs.train import accuracy

    config = config or PolishConfig()
    if not len(train) or not len(val):
        raise ValueError("polish_program needs non-empty train and validation splits")
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    # before any search: also checks the splits' tokens fit the model (clear errors)
    train_before, val_before = accuracy(model, train), accuracy(model, val)
    rng = np.random.default_rng(config.seed)
    subset = 0 < config.search_examples < len(train)

    def draw() -> np.ndarray | None:  # each round searches on its own subset
        if not subset:
            return None
        return np.sort(rng.choice(len(train), config.search_examples, replace=False))

    full = _Scorer.of(model, train, None)
    search: _Scorer | None = None
    evaluations = 0
    start = copy.deepcopy(model.state_dict())
    best = (val_before, start, 0, 0)  # validation, state, round, number of edits
    edits: list[PolishEdit] = []
    for round_index in range(1, config.rounds + 1):
        if search is None or subset:
            search = _Scorer.of(model, train, draw())
        found = _search_round(model, search, full, config, round_index)
        evaluations += search.evaluations
        search.evaluations = 0
        edits.extend(found)
        if config.refit:
            refit_classifier(model, train, val)
            full.recache()  # the cached class scores used the old classifier
            if not subset:  # (a subset is drawn afresh next round anyway)
                search.recache()
        val_now = accuracy(model, val)
        if val_now > best[0]:
            best = (val_now, copy.deepcopy(model.state_dict()), round_index, len(edits))
        if not found:
            break
    model.load_state_dict(best[1])
    model.train(was_training)
    kept = best[2] > 0
    return PolishResult(
        train_before=train_before,
        train_after=accuracy(model, train) if kept else train_before,
        val_before=val_before,
        val_after=best[0],
        kept=kept,
        best_round=best[2],
        edits=tuple(edits[: best[3]]),
        evaluations=evaluations + full.evaluations,
        seconds=time.perf_counter() - started,
    )
