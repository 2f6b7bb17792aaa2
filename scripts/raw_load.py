"""Baseline for the cold switch: load the same weights in a plain Python process and time the
first token. Run as its own process (imports included), printing JSON timings in seconds."""
from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer  # noqa: E402


def main() -> None:
    path = sys.argv[1]
    torch.set_num_threads(2)
    imported = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    loaded = time.perf_counter()
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    worker = threading.Thread(target=model.generate, kwargs=dict(**enc, max_new_tokens=8, do_sample=False,
                                                                  streamer=streamer))
    worker.start()
    next(iter(streamer))
    first = time.perf_counter()
    print("first-token", flush=True)  # the parent times the whole process up to this line
    worker.join()
    print(json.dumps({"imports_s": imported - T0, "load_s": loaded - imported, "first_token_s": first - loaded,
                      "process_to_first_token_s": first - T0}))


if __name__ == "__main__":
    main()
