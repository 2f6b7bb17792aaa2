"""A request's text in a batch: released piece by piece, cut at its stop strings; its token choice."""
import torch

from model_router.contract.sampling import SamplingParams
from transformers_backend.decoding import TextSoFar, TokenChooser


def feed(texts: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text released when the whole text grows through `texts` (the last one final)."""
    t = TextSoFar(stops)
    out = "".join(t.update(text, final=i == len(texts) - 1) for i, text in enumerate(texts))
    return out, t.stopped


def test_cut_at_stop_across_pieces() -> None:
    assert feed(["Hello wo", "Hello world. E", "Hello world. END more"], ("END",)) == ("Hello world. ", True)


def test_no_stop_passes_everything_as_it_comes() -> None:
    t = TextSoFar()
    assert [t.update("a"), t.update("a"), t.update("ab")] == ["a", "", "b"]


def test_stop_never_seen_flushes_tail() -> None:
    assert feed(["abc", "abcdef"], ("xyz",)) == ("abcdef", False)


def test_partial_character_is_held_until_complete() -> None:
    t = TextSoFar()
    assert t.update("na\ufffd") == "na" and t.update("naï") == "ï"
    cut = TextSoFar()  # max_tokens ended it mid-character: the broken bytes are left out
    assert cut.update("😀\ufffd") == "😀" and cut.update("😀\ufffd", final=True) == ""


def test_greedy_takes_the_best_token_and_a_seed_repeats_samples() -> None:
    logits = torch.tensor([0.1, 2.0, 0.3, 1.9])
    assert TokenChooser(SamplingParams()).choose(logits, [0]) == 1
    sampled = SamplingParams(temperature=1.5, seed=11)
    draws = [[TokenChooser(sampled).choose(logits, [0]) for _ in range(1)] for _ in range(2)]
    many = TokenChooser(sampled)
    assert draws[0] == draws[1] and len({many.choose(logits, [0]) for _ in range(40)}) > 1


def test_repetition_penalty_lowers_tokens_already_seen() -> None:
    logits = torch.tensor([0.1, 2.0, 0.3, 1.9])
    assert TokenChooser(SamplingParams(repetition_penalty=2.0)).choose(logits, [1]) == 3
