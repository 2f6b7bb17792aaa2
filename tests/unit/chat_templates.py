"""Tiny tokenizers with real chat templates, made in a folder (as the registry's `tokenizer` allows), so
that the router's rendering (routing/chat.py) runs through transformers' own apply_chat_template."""
from __future__ import annotations

import json
from pathlib import Path

SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
# Qwen2-VL's chat template, as its tokenizer_config.json ships it (image parts become IMAGE), and, as
# Qwen2.5's does, the tools and each past call (arguments with `tojson`) in <tool_call> tags.
QWEN_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools><|im_end|>\n"
    "{% endif %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% for call in message.get('tool_calls', []) %}\n<tool_call>\n{\"name\": \"{{ call.function.name }}\", "
    "\"arguments\": {{ call.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
USER_TURN = "<|im_start|>user\n"
ANSWER_STARTS = "<|im_end|>\n<|im_start|>assistant\n"


def tiny_tokenizer(folder: Path, template: str | None = QWEN_TEMPLATE) -> Path:
    """A word-level tokenizer with Qwen's special tokens and `template` (none: no chat template), in a
    folder that AutoTokenizer opens (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, **{t: i + 1 for i, t in enumerate(SPECIAL)}}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIAL)
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "eos_token": "<|im_end|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **({"chat_template": template}
                                                                             if template else {})}))
    return folder


def user_turn(prompt: str) -> str:
    """The text of the last user turn of a prompt rendered with QWEN_TEMPLATE."""
    assert prompt.endswith(ANSWER_STARTS), prompt
    return prompt[:-len(ANSWER_STARTS)].rsplit(USER_TURN, 1)[1]
