"""The continuous-batching engine on a tiny random Llama made here: whatever the order and timing of
arrivals and however full the batch, each request gets the tokens `model.generate` makes for it
alone (greedy, float64 so that batching's different arithmetic cannot flip a choice); a request
that fails fails alone; the counts it reports are those of its tokens."""
from __future__ import annotations

import threading
from typing import Callable

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from model_router.contract.generation import GenerateOutput
from model_router.contract.sampling import SamplingParams
from transformers_backend.batching import ContinuousBatcher
from transformers_backend.kv_rows import TorchRows
from transformers_backend.sequence import Sequence

VOCAB = 64
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,"  # one character a token
WAIT_S = 120  # a safety net for a hung engine, not a speed claim


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=None, eos_token_id=None, pad_token_id=0)
    m = LlamaForCausalLM(config).double().eval()
    m.generation_config.eos_token_id = None
    m.generation_config.pad_token_id = 0
    return m


def decode(ids: list[int]) -> str:
    return "".join(ALPHABET[i] for i in ids)


class Record:
    """A sink that keeps what it is told; `fail_at`: raise on that piece (a request whose own work breaks)."""

    def __init__(self, fail_at: int = 0, pieces_seen: threading.Event | None = None, after: int = 0) -> None:
        self.outs: list[GenerateOutput] = []
        self.final: GenerateOutput | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.fail_at, self.pieces_seen, self.after = fail_at, pieces_seen, after

    def piece(self, out: GenerateOutput) -> None:
        self.outs.append(out)
        if self.pieces_seen is not None and len(self.outs) == self.after:
            self.pieces_seen.set()
        if len(self.outs) == self.fail_at:
            raise ValueError("this request's sink broke")

    def end(self, out: GenerateOutput, error: BaseException | None = None) -> None:
        self.final, self.error = out, error
        self.done.set()

    def wait(self) -> Record:
        assert self.done.wait(WAIT_S), "the engine never ended the request"
        return self

    @property
    def text(self) -> str:
        return "".join(o.text for o in self.outs) + (self.final.text if self.final else "")

    @property
    def tokens(self) -> int:
        return sum(o.num_output_tokens for o in self.outs) + (self.final.num_output_tokens if self.final else 0)


def reference(model: LlamaForCausalLM, prompt: list[int], n: int) -> list[int]:
    """The tokens `generate` makes for the prompt alone, greedy."""
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, len(prompt):].tolist()


def prompts(count: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(1, VOCAB, (3 + 4 * i,), generator=g).tolist() for i in range(count)]


def batch_sizes(model: LlamaForCausalLM) -> tuple[list[int], object]:
    """The number of rows of every forward pass, seen at the model's door."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda mod, args, kw: sizes.append(kw["input_ids"].shape[0]),
                                             with_kwargs=True)
    return sizes, handle


def run(engine: ContinuousBatcher, prompt: list[int], n: int, sink: Record | None = None, **params) -> Record:
    sink = sink or Record()
    engine.submit(Sequence(prompt, SamplingParams(max_tokens=n, **params), sink))
    return sink


def test_staggered_arrivals_get_what_generate_makes(model) -> None:
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8)
    try:
        first_pieces = threading.Event()
        ps = prompts(4)
        first = run(engine, ps[0], 24, Record(pieces_seen=first_pieces, after=5))
        assert first_pieces.wait(WAIT_S)
        later = [run(engine, p, 16) for p in ps[1:]]  # join a batch already decoding
        for p, n, sink in zip(ps, (24, 16, 16, 16), [first, *later]):
            sink.wait()
            assert sink.error is None and sink.text == decode(reference(model, p, n)), p
    finally:
        engine.close()


class Ordered(Record):
    """A sink that writes its name into `order` when its request ends; `then` runs at its `after`-th
    piece, on the engine's thread between two steps (so what it submits is waiting at the next one)."""

    def __init__(self, name: str, order: list[str], then: Callable[[], None] | None = None,
                 after: int = 0) -> None:
        super().__init__(after=after)
        self.name, self.order, self.then = name, order, then

    def piece(self, out: GenerateOutput) -> None:
        super().piece(out)
        if self.then is not None and len(self.outs) == self.after:
            self.then()

    def end(self, out: GenerateOutput, error: BaseException | None = None) -> None:
        self.order.append(self.name)
        super().end(out, error)


def test_a_request_joins_a_batch_already_decoding_and_leaves_it_first(model) -> None:
    """A short request that arrives while a long one decodes joins the running batch at the next step
    and ends while the long one goes on: a batch that took no one in until it drained would end the
    long one first. Shown by the order of the ends, not by time."""
    order: list[str] = []
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8)
    try:
        ps = prompts(2)
        short = Ordered("short", order)

        def join() -> None:
            engine.submit(Sequence(ps[1], SamplingParams(max_tokens=4), short))

        long = run(engine, ps[0], 60, Ordered("long", order, then=join, after=3))
        long.wait(), short.wait()
    finally:
        engine.close()
    assert order == ["short", "long"], order
    assert short.text == decode(reference(model, ps[1], 4)) and long.text == decode(reference(model, ps[0], 60))


def test_full_batches_queue_in_order_and_answer_alike(model) -> None:
    sizes, handle = batch_sizes(model)
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=2, gather_s=0.2)
    try:
        ps = prompts(5)
        sinks = [run(engine, p, 12) for p in ps]
        for p, sink in zip(ps, sinks):
            assert sink.wait().error is None and sink.text == decode(reference(model, p, 12)), p
    finally:
        engine.close()
        handle.remove()
    assert max(sizes) == 2 and 2 in sizes, sizes  # rows shared steps, never more than the limit


def test_a_row_that_raises_in_a_step_fails_alone(model) -> None:
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8, gather_s=0.2)
    try:
        ps = prompts(3)
        sinks = [run(engine, ps[0], 16), run(engine, ps[1], 16, Record(fail_at=3)), run(engine, ps[2], 16)]
        for s in sinks:
            s.wait()
        assert isinstance(sinks[1].error, ValueError) and len(sinks[1].outs) == 3
        for p, s in ((ps[0], sinks[0]), (ps[2], sinks[2])):
            assert s.error is None and s.text == decode(reference(model, p, 16))
        # The engine serves on.
        assert run(engine, ps[1], 8).wait().text == decode(reference(model, ps[1], 8))
    finally:
        engine.close()


def test_a_prompt_that_breaks_the_prefill_fails_alone(model) -> None:
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8, gather_s=0.2)
    try:
        ps = prompts(2)
        good = run(engine, ps[0], 10)
        bad = run(engine, [1, 2, VOCAB + 5], 10)  # a token the embedding does not have
        other = run(engine, ps[1], 10)
        assert bad.wait().error is not None
        for p, s in ((ps[0], good), (ps[1], other)):
            assert s.wait().error is None and s.text == decode(reference(model, p, 10))
    finally:
        engine.close()


def test_counts_and_finish_reasons(model) -> None:
    p = prompts(1)[0]
    free = reference(model, p, 20)
    eos = free[6]
    stop_at = free.index(eos)  # the first time the model makes that token
    engine = ContinuousBatcher(TorchRows(model), decode, eos={eos}, max_batch_size=8)
    try:
        length = run(engine, p, stop_at)
        stopped = run(engine, p, 20)
        for s in (length, stopped):
            s.wait()
    finally:
        engine.close()
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set())
    try:
        by_string = run(engine, p, 20, stop=[decode(free[8:10])]).wait()
    finally:
        engine.close()
    assert (length.final.finish_reason, length.tokens, length.text) == ("length", stop_at, decode(free[:stop_at]))
    # The end-of-sequence token counts as made (vLLM counts it), and is not text.
    assert (stopped.final.finish_reason, stopped.tokens, stopped.text) == ("stop", stop_at + 1, decode(free[:stop_at]))
    cut = decode(free).find(decode(free[8:10]))
    assert by_string.final.finish_reason == "stop" and by_string.text == decode(free)[:cut]
    assert all(o.num_input_tokens == len(p) for o in [*stopped.outs, stopped.final])


def test_cumulative_logprob_is_the_sum_over_the_chosen_tokens(model) -> None:
    p = prompts(1)[0]
    ids = torch.tensor([p])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, min_new_tokens=8,
                         do_sample=False, output_logits=True, return_dict_in_generate=True)
    chosen = out.sequences[0, len(p):]
    expected = sum(float(torch.log_softmax(lg[0].float(), -1)[t]) for lg, t in zip(out.logits, chosen))
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set())
    try:
        sink = Record()
        engine.submit(Sequence(p, SamplingParams(max_tokens=8), sink, want_logprob=True))
        sink.wait()
    finally:
        engine.close()
    assert sink.final.cumulative_logprob == pytest.approx(expected, rel=1e-4)


def test_a_cancelled_request_ends_with_abort(model) -> None:
    cancelled = threading.Event()
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set())
    try:
        sink = Record(pieces_seen=cancelled, after=2)
        engine.submit(Sequence(prompts(1)[0], SamplingParams(max_tokens=400), sink, cancelled.is_set))
        sink.wait()
    finally:
        engine.close()
    assert sink.error is None and sink.final.finish_reason == "abort" and sink.tokens < 400


def test_a_busy_batch_sends_longer_pieces_with_the_same_text(model) -> None:
    """From busy_rows rows on, a piece carries up to stream_interval tokens (the first comes alone);
    below it, one token a piece. The text and the token counts are those of every-token streaming."""
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8, gather_s=0.2, stream_interval=3,
                               busy_rows=3)
    try:
        ps = prompts(3)
        busy = [run(engine, p, 14) for p in ps]  # three rows together: busy
        for p, sink in zip(ps, busy):
            assert sink.wait().error is None and sink.text == decode(reference(model, p, 14)), p
            sizes = [o.num_output_tokens for o in sink.outs]
            assert sizes[0] == 1 and max(sizes) == 3 and len(sizes) < 14 and sink.tokens == 14, sizes
        alone = run(engine, ps[0], 8).wait()  # one row: not busy
        assert [o.num_output_tokens for o in alone.outs] == [1] * 8 and alone.text == busy[0].text[:8]
    finally:
        engine.close()
