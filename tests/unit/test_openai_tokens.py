"""Token counts for `usage`: exact with a local model's tokenizer, as the backend feeds the model."""
from __future__ import annotations

import asyncio

import pytest

from launcher import DEFAULT_MODELS_DIR
from openai_front.tokens import Estimate, TokenCounter, Tokenizer

SMOLLM = DEFAULT_MODELS_DIR / "smollm2-135m-instruct"
needs_smollm = pytest.mark.skipif(not (SMOLLM / "tokenizer.json").exists(), reason="prepared by scripts/setup.sh")
TURNS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My name is Ada."},
         {"role": "assistant", "content": "Hello Ada."}, {"role": "user", "content": "What is my name?"}]


@needs_smollm
@pytest.mark.parametrize("turns", [TURNS, TURNS[-1:]])
def test_prompt_tokens_are_what_transformers_feeds_the_model(turns) -> None:
    """Our backend tokenizes with transformers' apply_chat_template (text_generation.py); so does this test."""
    from transformers import AutoTokenizer

    expected = len(AutoTokenizer.from_pretrained(SMOLLM).apply_chat_template(turns, add_generation_prompt=True,
                                                                              tokenize=True, return_dict=False))
    assert Tokenizer(SMOLLM).prompt(turns) == expected


@needs_smollm
def test_answer_tokens_are_the_tokenizers() -> None:
    from transformers import AutoTokenizer

    answer = " The capital of France is Paris."
    expected = len(AutoTokenizer.from_pretrained(SMOLLM)(answer, add_special_tokens=False)["input_ids"])
    assert Tokenizer(SMOLLM).text(answer) == expected


def test_a_model_with_no_local_tokenizer_is_estimated(tmp_path) -> None:
    configs = {"vllm_model": {"parameters": {}}, "gone": None,
               "elsewhere": {"parameters": {"model_path": {"string_value": str(tmp_path / "missing")}}}}

    async def config(model: str):
        return configs[model]

    counter = TokenCounter(config, tmp_path)
    for model in (*configs, None):
        assert isinstance(asyncio.run(counter.counter(model)), Estimate)
    usage = asyncio.run(counter.usage("gone", [{"role": "user", "content": "x" * 10}], "y" * 8))
    assert usage.as_dict() == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5} and not usage.exact


@needs_smollm
def test_a_local_model_is_found_through_its_config(tmp_path) -> None:
    async def config(model: str):
        return {"parameters": {"model_path": {"string_value": "${TMR_MODELS}/smollm2-135m-instruct"}}}

    counter = TokenCounter(config, DEFAULT_MODELS_DIR)
    assert isinstance(asyncio.run(counter.counter("smollm2_135m_instruct")), Tokenizer)
