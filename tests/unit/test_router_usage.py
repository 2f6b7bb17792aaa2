"""The router's usage is the engine's: a text generator counts output tokens per response (as vLLM
does), so a streamed answer's completion_tokens is the sum over its responses, the same count the
engine gives for the answer unstreamed."""
from __future__ import annotations

from model_router.contract.generation import GenerateOutput
from model_router.contract.router import RouterAnswer, Usage
from model_router.errors import never

from .test_router import build, req

RETURNS = frozenset({"finish_reason", "num_input_tokens", "num_output_tokens"})
# An engine's answer in pieces (the second piece carries two tokens, as a busy batch sends them) and
# its last response: the end-of-sequence token counted, no text.
STREAMED = [GenerateOutput("Par", None, 9, 1), GenerateOutput("is is", None, 9, 2), GenerateOutput("", "stop", 9, 1)]
WHOLE = GenerateOutput("Paris is", "stop", 9, 4)


def routed(stream: bool) -> RouterAnswer:
    router, _, _ = build()

    def invoke(spec, inputs, streaming, timeout_s, outputs, cancelled=never, gone=None):
        assert streaming == stream
        yield from (out.encode(RETURNS) for out in (STREAMED if streaming else [WHOLE]))

    router.invoke = invoke
    *pieces, done = router.route(req({"stream": stream}))
    assert done.final and done.text == "Paris is", done  # the whole text, streamed or not
    assert [p.text for p in pieces] == (["Par", "is is"] if stream else []) and not any(p.final for p in pieces)
    return done


def test_a_streamed_answer_counts_every_responses_tokens() -> None:
    assert routed(stream=True).usage == routed(stream=False).usage == Usage(9, 4)
