from __future__ import annotations

import pytest
import torch

from crystalbox._nnsight import save
from crystalbox.methods import TargetPrompt, patchscope_generate, patchscope_lens, repeat_prompt
from crystalbox.methods._common import encode


def test_repeat_prompt_is_the_identity_prompt():
    target = repeat_prompt()
    assert target.prompt == "king king\n1135 1135\nhello hello\n?"
    assert target.index_to_patch == -1
    assert repeat_prompt(["a"], rel="=", sep=";", placeholder="x").prompt == "a=a;x"


def test_patching_a_prompt_into_itself_changes_nothing(tiny):
    target = repeat_prompt()
    probs = patchscope_lens(tiny, [target.prompt, target.prompt], target, batch_size=4)
    assert probs.shape == (2, tiny.num_layers, tiny.vocab_size)
    with torch.no_grad(), tiny.trace(dict(encode(tiny, [target.prompt]))):
        plain = save(tiny.next_token_probs)
    for layer in range(tiny.num_layers):
        torch.testing.assert_close(probs[0, layer], plain[0], rtol=0, atol=1e-5)
    other = patchscope_lens(tiny, ["Paris is a city", "x"], target, layers=[0, 2])
    assert other.shape == (2, 2, tiny.vocab_size)
    assert not torch.allclose(other[0, 0], plain[0])


def test_patchscope_generate(tiny):
    target = TargetPrompt("The word is", -1)
    same = patchscope_generate(tiny, ["The word is"], target, layer=1, max_new_tokens=3)
    inputs = encode(tiny, ["The word is"], side="left")
    ref = tiny.hf_model.generate(
        **inputs,
        max_new_tokens=3,
        min_new_tokens=3,
        do_sample=False,
        pad_token_id=tiny.tokenizer.pad_token_id,
    )
    assert same == [tiny.tokenizer.decode(ref[0, -3:])]
    assert (
        len(patchscope_generate(tiny, ["Hello", "The cat sat"], None, layer=0, max_new_tokens=2))
        == 2
    )


def test_patchscope_bad_input(tiny):
    with pytest.raises(IndexError, match="index_to_patch"):
        patchscope_lens(tiny, ["a b"], TargetPrompt("x y", 5))
    with pytest.raises(ValueError, match="one per source prompt"):
        patchscope_lens(tiny, ["a", "b"], [TargetPrompt("x")])
    with pytest.raises(ValueError, match="non-empty"):
        TargetPrompt("")
