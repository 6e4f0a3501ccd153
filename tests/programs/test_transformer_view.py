"""A program seen as a HF model: identical to the program, and read by the standardized interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from crystalbox import StandardizedTransformer
from crystalbox._nnsight import save
from crystalbox.loading import load_model
from crystalbox.programs import ProgramTransformer, load_program
from crystalbox.programs.fast_predict import class_logits, embed_values, run_layer
from crystalbox.programs.tasks import make_task
from crystalbox.programs.transformer_view import as_transformer, program_vocab
from tests.programs.conftest import CLASSES, MODEL_KINDS, VOCAB, random_model, random_tokens

CHECKPOINTS = Path(__file__).resolve().parents[2] / "docs" / "programs-checkpoints"


@dataclass(frozen=True)
class Vocabularies:
    name: str = "random"
    input_vocab: tuple[str, ...] = VOCAB
    output_vocab: tuple[str, ...] = CLASSES


def class_ids(view: object) -> list[int]:
    vocab = view.tokenizer.get_vocab()  # type: ignore[attr-defined]
    return [vocab[c] for c in view.model.config.output_vocab]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_view_logits_are_the_programs_own(kind: str) -> None:
    program = random_model(**MODEL_KINDS[kind])  # type: ignore[arg-type]
    view = as_transformer(program, Vocabularies())
    tokens = random_tokens()
    logits = view.model(input_ids=tokens).logits  # [b, n, vocab]
    ids = class_ids(view)
    assert logits.shape == (*tokens.shape, len(VOCAB) + len(CLASSES))
    assert torch.equal(logits[..., ids], program(tokens))  # bit for bit
    others = [i for i in range(logits.shape[-1]) if i not in ids]
    assert (logits[..., others] == torch.finfo(logits.dtype).min).all()
    assert torch.equal(logits.argmax(-1), torch.tensor(ids)[program.predict(tokens)])
    expected = "ProgramForCausalLM" if program.config.causal else "ProgramForMaskedLM"
    assert type(view.model).__name__ == expected


def test_view_shares_the_programs_parameters() -> None:
    program = random_model(causal=False)
    view = as_transformer(program, Vocabularies())
    shared = {id(p) for p in program.parameters()}
    trainable = {id(p) for p in view.model.parameters() if p.requires_grad}
    assert trainable == shared  # the rest: each attention's fixed o_proj placement
    before = view.model(input_ids=random_tokens()).logits[..., class_ids(view)]
    with torch.no_grad():
        program.layers[0].cat_pred.mul_(-1.0)  # another program: other key values selected
    after = view.model(input_ids=random_tokens()).logits[..., class_ids(view)]
    assert not torch.equal(after, before)
    assert torch.equal(after, program(random_tokens()))  # the edit shows in the view


@pytest.mark.parametrize("name", ["sort", "most_freq", "dyck2", "icl"])
def test_committed_checkpoints_through_the_view(name: str) -> None:
    loaded = load_program(CHECKPOINTS / name)
    view = as_transformer(CHECKPOINTS / name)
    tokens = torch.as_tensor(_some_inputs(name))
    assert torch.equal(
        view.model(input_ids=tokens).logits[..., class_ids(view)], loaded.model(tokens)
    )


def _some_inputs(name: str) -> list[list[int]]:
    from crystalbox.programs.data import make_data

    return make_data(make_task(name), 0, 200, 20, 20).test.inputs.tolist()


@pytest.fixture(scope="module", params=["bidirectional", "causal", "tables"])
def standardized(
    request: pytest.FixtureRequest,
) -> tuple[StandardizedTransformer, ProgramTransformer]:
    program = random_model(**MODEL_KINDS[request.param])  # type: ignore[arg-type]
    view = as_transformer(program, Vocabularies())
    return StandardizedTransformer(view.model, tokenizer=view.tokenizer), program


def test_validation_passes_on_the_view(
    standardized: tuple[StandardizedTransformer, ProgramTransformer],
) -> None:
    model, program = standardized
    report = model.validate()
    assert report.ok, report.table()
    assert model.arch.source == "registered"
    assert model.kind == ("causal" if program.config.causal else "masked")
    assert model.num_heads == program.config.n_cat_heads
    assert model.vocab_size == len(VOCAB) + len(CLASSES)


def per_layer(model: StandardizedTransformer, accessor: str, text: str) -> list[torch.Tensor]:
    """The three layers' values of ``accessor`` (e.g. ``layers_output``) on ``text``."""
    values = getattr(model, accessor)
    with model.trace(text):
        first, second, third = save(values[0]), save(values[1]), save(values[2])
    return [first, second, third]


def test_attention_probabilities_are_the_selections(
    standardized: tuple[StandardizedTransformer, ProgramTransformer],
) -> None:
    model, program = standardized
    text = "a b a c d d b"
    tokens = model.tokenizer(text, return_tensors="pt")["input_ids"]
    probs = per_layer(model, "attention_probabilities", text)
    cats, nums, key_mask = program.embed(tokens)
    for i, layer in enumerate(program.layers):
        selected = layer.selections(torch.cat(cats), torch.cat(nums), key_mask)[0]
        expected = torch.nn.functional.one_hot(selected, tokens.shape[1]).float()
        assert torch.equal(probs[i], expected)
        cats, nums = layer(cats, nums, key_mask, "argmax", 1.0)


def test_logit_lens_scores_the_variables_written_so_far(
    standardized: tuple[StandardizedTransformer, ProgramTransformer],
) -> None:
    """Projecting layer i's output is the classifier over the variables up to layer i."""
    model, program = standardized
    text = "b b c a"
    tokens = model.tokenizer(text, return_tensors="pt")["input_ids"]
    hidden = per_layer(model, "layers_output", text)
    ids = class_ids(as_transformer(program, Vocabularies()))
    values = embed_values(program, tokens)
    for i, layer in enumerate(program.layers):
        values = run_layer(program, layer, values)
        lens = model.project_on_vocab(hidden[i])[..., ids]
        assert torch.allclose(lens.double(), class_logits(program, values), atol=1e-4)


def test_writing_attention_changes_what_a_head_copies(
    standardized: tuple[StandardizedTransformer, ProgramTransformer],
) -> None:
    """A head made to select BOS everywhere copies its value variable at BOS."""
    model, program = standardized
    text = "a b c d"
    n = len(text.split()) + 1
    bos = torch.zeros(1, program.config.n_cat_heads, n, n)
    bos[..., 0] = 1.0
    with model.trace(text):
        model.attention_probabilities[0] = bos
        written = save(model.attentions_output[0])
    tokens = model.tokenizer(text, return_tensors="pt")["input_ids"]
    cats, nums, key_mask = program.embed(tokens)
    cat_values = program.layers[0].selections(torch.cat(cats), torch.cat(nums), key_mask)[1]
    k = program.config.d_var
    for h in range(program.config.n_cat_heads):
        slot = written[0, :, (2 + h) * k : (3 + h) * k]  # [pos, k]: head h's variable
        assert torch.equal(slot.argmax(-1), cat_values[0, h, 0].expand(n))


EVERY_CHECKPOINT = sorted(
    [*CHECKPOINTS.iterdir(), *(CHECKPOINTS.parent / "programs-checkpoints-polished").iterdir()]
)


@pytest.mark.parametrize(
    "path",
    EVERY_CHECKPOINT,
    ids=[
        f"{'polished' if 'polished' in p.parent.name else 'trained'}-{p.name}"
        for p in EVERY_CHECKPOINT
    ],
)
def test_every_committed_checkpoint_validates_through_the_interface(path: Path) -> None:
    report = StandardizedTransformer(str(path)).validate()
    assert report.ok, report.table()


def test_checkpoint_folder_loads_as_a_standardized_model() -> None:
    loaded = load_model(CHECKPOINTS / "sort")
    assert type(loaded.model).__name__ == "ProgramForMaskedLM" and loaded.task == "masked"
    model = StandardizedTransformer(str(CHECKPOINTS / "sort"))
    with model.trace("3 1 2 2 0"):
        logits = save(model.logits)
    predicted = model.tokenizer.convert_ids_to_tokens(logits[0].argmax(-1).tolist())
    assert predicted[1:6] == ["0", "1", "2", "2", "3"]


def test_vocabulary_puts_input_tokens_first() -> None:
    assert program_vocab(VOCAB, CLASSES) == [*VOCAB, *CLASSES]
    task = make_task("sort")
    assert program_vocab(task.input_vocab, task.output_vocab) == list(
        task.input_vocab
    )  # its classes are all input tokens


def test_bad_input_is_a_clear_error() -> None:
    program = random_model(causal=False)
    view = as_transformer(program, Vocabularies())
    with pytest.raises(ValueError, match="'z' is not in the program's vocabulary"):
        view.tokenizer("a z b")
    too_long = view.tokenizer("a b c d a b c d a", return_tensors="pt")["input_ids"]
    with pytest.raises(ValueError, match="exceeds the model's context"):
        view.model(input_ids=too_long)
    output_only = torch.tensor([[1, 2, len(VOCAB)]])  # "0": a class, not an input token
    with pytest.raises(ValueError, match="'0' is an output class of the program"):
        view.model(input_ids=output_only)
    with pytest.raises(NotImplementedError, match="save_program"):
        view.model.save_pretrained("anywhere")
    with pytest.raises(TypeError, match="pass task="):
        as_transformer(program)
    with pytest.raises(ValueError, match="pass the task the program was trained on"):
        as_transformer(program, make_task("sort"))
    with pytest.raises(TypeError, match="not int"):
        as_transformer(3)
    with pytest.raises(TypeError, match="dtype does not apply"):
        load_model(CHECKPOINTS / "sort", dtype=torch.float16)


def test_logit_lens_method_reads_a_program() -> None:
    """The methods library runs unchanged: the last layer's lens is the program's output."""
    from crystalbox.methods.lens import logit_lens

    model = StandardizedTransformer(str(CHECKPOINTS / "sort"))
    result = logit_lens(model, "3 1 4 2 0")
    last = [top[0] for top in result.top_strings[0][-1]]
    assert last[1:6] == ["0", "1", "2", "3", "4"]


def test_head_patching_finds_the_icl_programs_induction_head() -> None:
    """Per-head outputs are readable and writable: patching one head of the committed icl
    program recovers the answer (the other variables still read the corrupted token, so the
    logit difference is not exactly the clean one), patching any other head nothing."""
    from crystalbox.methods.patching import activation_patching

    model = StandardizedTransformer(str(CHECKPOINTS / "icl"))
    result = activation_patching(model, "a 1 b 2 a", "a 1 b 2 b", component="heads")
    recovered = result.normalized()  # [layers, heads]: 1 = the clean answer back
    assert recovered[1, 0] > 0.99
    recovered[1, 0] = 0.0
    assert recovered.abs().max() == 0.0


def test_generation_through_the_view_keeps_word_boundaries() -> None:
    """A word-level program's continuation appends to the prompt with its separating space."""
    from crystalbox.methods.steering import steered_generate

    model = StandardizedTransformer(str(CHECKPOINTS / "icl"))
    zero = torch.zeros(model.hidden_size)
    assert steered_generate(model, ["a 1 b 2 a"], zero, layers=0, max_new_tokens=1) == [" 1"]


def test_collection_fingerprints_programs_by_their_parameters() -> None:
    """A program's embedding has no weight: the collection fingerprint hashes its parameters,
    so two programs of the same task and shape never share a fingerprint."""
    from crystalbox.methods.collection import model_identity

    task = make_task("most_freq")
    first = StandardizedTransformer(str(CHECKPOINTS / "most_freq"))
    view = as_transformer(
        load_program(CHECKPOINTS.parent / "programs-checkpoints-polished" / "most_freq")
    )
    second = StandardizedTransformer(view.model, tokenizer=view.tokenizer)
    assert view.model.config.task_name == task.name
    one, two = model_identity(first), model_identity(second)
    assert one["hidden_size"] == two["hidden_size"] and one["fingerprint"] != two["fingerprint"]


def test_attribution_patching_refuses_a_program() -> None:
    from crystalbox.methods.attribution import attribution_patching

    model = StandardizedTransformer(str(CHECKPOINTS / "icl"))
    with pytest.raises(ValueError, match="use exact activation patching"):
        attribution_patching(model, "a 1 b 2 a", "a 1 b 2 b")


def test_the_program_circuits_example_finds_the_induction_head(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import runpy

    example = runpy.run_path(str(CHECKPOINTS.parents[1] / "examples" / "program_circuits.py"))
    example["main"]()
    out = capsys.readouterr().out
    assert "validation of crystalbox_program: PASS" in out
    assert "layer 1 head 0 recovers 1.000 of the answer" in out
    assert "key: ['<s>', 'a', '<s>', '<s>', '<s>', '1']" in out
