from transformers_backend.text_generation import _cut_at_stop


def test_cut_at_stop_across_pieces() -> None:
    assert "".join(_cut_at_stop(iter(["Hello wo", "rld. E", "ND more"]), ("END",))) == "Hello world. "


def test_no_stop_passes_everything() -> None:
    assert list(_cut_at_stop(iter(["a", "", "b"]), ())) == ["a", "b"]


def test_stop_never_seen_flushes_tail() -> None:
    assert "".join(_cut_at_stop(iter(["abc", "def"]), ("xyz",))) == "abcdef"
