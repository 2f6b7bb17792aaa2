"""Each text model's limits, seen from the client's side of the OpenAI front: max_tokens at a model's
limit is served, and one more is refused naming `max_tokens` and the limit, before anything is loaded
or evicted (Triton's repository index, unchanged); a request only some models can take goes to those;
a tool schema over every model's limit is refused naming `tools`. The limits are read here from the
models' own config files, the source the router reads them from."""
from __future__ import annotations

import json
import re
from typing import Iterator

import openai
import pytest

from launcher import TritonServer
from model_router import REPO_ROOT

from .observe import index_states
from .services import error_of, sdk_through_a_front

pytestmark = pytest.mark.integration
# The CPU default's text models, each with the max_tokens its config gives it.
MODELS = ("smollm2_135m_instruct", "smollm2_135m_instruct_bf16", "qwen2_5_coder_0_5b_instruct",
          "qwen2_5_coder_1_5b_instruct")
YES = [{"role": "user", "content": "Reply with the single word yes."}]
SCHEMA_LIMIT = 65536  # no model's config sets max_schema_bytes: each takes the default


def max_tokens_limit(model: str) -> int:
    config = (REPO_ROOT / "model_repository" / model / "config.pbtxt").read_text()
    return int(re.search(r'key: "max_tokens_limit" value: \{ string_value: "(\d+)" \}', config).group(1))


def a_tool(name: str, properties: int) -> dict:
    """A function whose parameters' schema is about properties * 520 bytes of JSON."""
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 480}
                                               for i in range(properties)}}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


@pytest.fixture(scope="module")
def sdk(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with sdk_through_a_front(router, tmp_path_factory.mktemp("limits")) as client:
        yield client


def refused(router: TritonServer, create, **kwargs) -> openai.APIStatusError:
    """The error of a request that must change nothing in Triton's index."""
    before = index_states(router)
    err = error_of(create, **kwargs)
    assert index_states(router) == before, "a refused request loaded or unloaded a model"
    assert isinstance(err, openai.BadRequestError), err
    return err


def test_max_tokens_over_every_models_limit_is_refused_before_any_load(router: TritonServer,
                                                                       sdk: openai.OpenAI) -> None:
    largest = max(max_tokens_limit(m) for m in MODELS)
    err = refused(router, sdk.chat.completions.create, model="auto", messages=YES, max_tokens=largest + 1)
    assert err.body["param"] == "max_tokens", err.body
    assert f"{largest + 1} exceeds the largest limit on offer, {largest}" in err.body["message"]


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens_at_a_models_limit_is_served_and_one_more_is_refused(router: TritonServer, sdk: openai.OpenAI,
                                                                        model: str) -> None:
    limit = max_tokens_limit(model)
    answer = sdk.chat.completions.create(model=model, messages=YES, max_tokens=limit, temperature=0, stop=["\n"])
    assert answer.routing["model"] == model and answer.choices[0].message.content.strip(), answer.routing
    err = refused(router, sdk.chat.completions.create, model=model, messages=YES, max_tokens=limit + 1)
    assert err.body["param"] == "max_tokens" and f"{limit + 1} exceeds the limit of model {model}, {limit}" \
        in err.body["message"], err.body
    err = refused(router, sdk.chat.completions.create, model=model, messages=YES, max_completion_tokens=limit + 1)
    assert err.body["param"] == "max_completion_tokens", err.body


def test_a_request_only_some_models_take_goes_to_those(sdk: openai.OpenAI) -> None:
    need = min(max_tokens_limit(m) for m in MODELS) + 1
    able = {m for m in MODELS if max_tokens_limit(m) >= need}
    assert able and able != set(MODELS)  # the configs give the models different limits
    answer = sdk.chat.completions.create(model="auto", messages=YES, max_tokens=need, temperature=0, stop=["\n"])
    assert answer.routing["model"] in able, answer.routing
    candidates = {c["model"] for c in answer.routing["candidates"]}
    skipped = {s["model"]: s["why"] for s in answer.routing["skipped"]}
    for model in set(MODELS) - able:  # passed over, saying why
        assert model not in candidates and f"max_tokens: {need} exceeds" in skipped[model], answer.routing


def test_a_tool_schema_over_the_limit_is_refused_naming_the_tool(router: TritonServer, sdk: openai.OpenAI) -> None:
    big = a_tool("fill_form", 200)  # about 100 KB
    assert len(json.dumps(big["function"]["parameters"])) > SCHEMA_LIMIT
    err = refused(router, sdk.chat.completions.create, model="auto", messages=YES, tools=[a_tool("ok", 1), big],
                  tool_choice="required")
    assert err.body["param"] == "tools[1]" and f"exceeds the largest limit on offer, {SCHEMA_LIMIT}" \
        in err.body["message"], err.body
    halves = [a_tool("first", 80), a_tool("second", 80)]  # each fits, together they do not
    err = refused(router, sdk.chat.completions.create, model="auto", messages=YES, tools=halves, tool_choice="auto")
    assert err.body["param"] == "tools" and str(SCHEMA_LIMIT) in err.body["message"], err.body


def test_a_prompt_over_the_engines_token_limit_is_refused_under_the_clients_field(sdk: openai.OpenAI) -> None:
    """The router cannot count a prompt's tokens before the model's chat template: the engine refuses it,
    and the client reads the field it sent, not the engine's `text_input`."""
    long = [{"role": "user", "content": "😀" * 3000}]  # under the router's 8000 characters, over 2048 tokens
    err = error_of(sdk.chat.completions.create, model="smollm2_135m_instruct", messages=long, max_tokens=8)
    assert isinstance(err, openai.BadRequestError) and err.body["param"] == "messages", err.body
    assert "tokens: over the limit of 2048" in err.body["message"], err.body


def test_a_prompt_too_long_for_one_model_goes_to_one_with_a_longer_limit(sdk: openai.OpenAI) -> None:
    """The cheapest model's engine refuses the prompt's length (known only after its chat template):
    the request goes on to a model whose limit is longer, saying so."""
    long = [{"role": "system", "content": "hello world " * 1200}, *YES]  # about 2400 tokens: over 2048
    answer = sdk.chat.completions.create(model="auto", messages=long, max_tokens=8, temperature=0, stop=["\n"],
                                         extra_body={"prefer": "cost"})
    assert answer.routing["model"].startswith("qwen2_5_coder"), answer.routing
    refused = {f["model"]: f["error"] for f in answer.routing["fallbacks"]}
    assert "tokens: over the limit of 2048" in refused.get("smollm2_135m_instruct", ""), answer.routing
