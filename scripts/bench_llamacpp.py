"""The llama.cpp backend (python_backends/llamacpp) against llama.cpp itself, per Qwen2.5-Coder model.

In one run, for each model (the same GGUF file and settings as its config.pbtxt: threads, batch size
and tokens, chat template), every answer `--max-tokens` long (greedy, `ignore_eos`) for the same
`--prompts` coding questions, rendered through the chat template in the file:

- raw llama.cpp, in this process:
  - concurrency 1: `llama_cpp.Llama` (llama-cpp-python's high-level API, flash attention on as the
    backend's "auto" resolves on a CPU), the same prompt tokens, its greedy `generate` read for
    exactly max_tokens tokens (EOS ignored, as `ignore_eos`; no text decoding). Its prefix reuse is
    reset between prompts, as the backend keeps no prompt cache;
  - concurrency 8: `Llama` has no batching, so our own engine, LlamaTextGenerator
    (python_backends/llamacpp/llamacpp_backend/text_generation.py) in-process, stands for it; it is
    run at concurrency 1 too, which splits the served overhead into engine and Triton;
- served: the model loaded alone by a fresh tritonserver (benchlib.server), requests streamed over
  gRPC straight to the model (not through the router) with
  {"max_tokens": N, "temperature": 0, "ignore_eos": true}.

Prints tokens/s (every generated token over the level's wall time, prefill included) and TTFT p50 at
concurrency 1 and 8; served/raw (goal >= 0.8); batching, served 8 at once vs one at a time (goal
>= x3 on 2 cores); the stub's RSS and PSS (/proc/<pid>/smaps_rollup) after load and after the runs,
and tritonserver's before the load and after the unload (the stub gone). The in-process runs take
the stubs' OpenMP settings (launcher.server_env; llama.cpp's CPU kernels run on OpenMP) and nice
value, so that only the serving path differs; --omp-default leaves this process's environment.

    python scripts/bench_llamacpp.py [--models qwen2_5_coder_0_5b_instruct ...] [--prompts 8]
        [--max-tokens 64] [--concurrency 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchlib import cpu_name, server

from model_router import REPO_ROOT

MODELS = ["qwen2_5_coder_0_5b_instruct", "qwen2_5_coder_1_5b_instruct"]
PROMPTS = [
    "Write a Python function that reverses a linked list.", "Explain what a closure is in JavaScript.",
    "Write a SQL query that finds the second highest salary.", "How do I read a CSV file in Go?",
    "Write a bash one-liner that counts lines in all .py files.", "What is the difference between a list and a tuple?",
    "Implement binary search in C.", "Write a Rust function that checks whether a string is a palindrome.",
    "Explain Big-O notation with an example.", "Write a Python decorator that times a function.",
    "How do I make an HTTP request in Java?", "Write a regular expression that matches an email address.",
    "What does `git rebase` do?", "Write a TypeScript interface for a user with a name and an age.",
    "Implement a stack using two queues in Python.", "Explain the difference between TCP and UDP."]
NICE = -10  # the stubs' serving priority (TritonServer.nice, BackendSettings.serve_nice)
OMP_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@dataclass
class Level:
    """One concurrency level of one engine: every answer's tokens and time to first token."""

    engine: str
    concurrency: int
    wall_s: float = 0.0
    tokens: list[int] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return sum(self.tokens) / self.wall_s if self.wall_s else 0.0

    @property
    def ttft_p50_s(self) -> float:
        values = sorted(self.ttft_s)
        return values[len(values) // 2] if values else float("nan")


def run_level(engine: str, concurrency: int, prompts: list[Any], answer: Callable[[Any], tuple[int, float]]) -> Level:
    """`concurrency` clients take the prompts in turn; `answer(prompt)` -> (tokens, seconds to the first)."""
    level, lock, todo = Level(engine, concurrency), threading.Lock(), list(reversed(prompts))

    def client() -> None:
        while True:
            with lock:
                if not todo:
                    return
                prompt = todo.pop()
            tokens, ttft = answer(prompt)
            with lock:
                level.tokens.append(tokens)
                level.ttft_s.append(ttft)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    level.wall_s = time.perf_counter() - started
    return level


# -- environment and memory ----------------------------------------------------------------------
def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS of a process, in MB (/proc/<pid>/smaps_rollup)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("Rss:", "Pss:"))}
    return {"rss_mb": round(kb["Rss"] / 1024, 1), "pss_mb": round(kb["Pss"] / 1024, 1)}


def goes_quiet(pid: int, within_s: float = 120.0) -> None:
    """Wait until the process uses almost no CPU for a second (a load's warm-up threads done)."""
    from launcher.process import cpu_seconds

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.1:
            return


def model_settings(model: str) -> Any:
    """The backend's settings of `model`, read from its config.pbtxt as the backend reads them."""
    from model_router.triton.control import repository_config
    from transformers_backend.settings import BackendSettings

    return BackendSettings.from_config(json.loads(repository_config(REPO_ROOT / "model_repository" / model)))


# -- raw: in this process ------------------------------------------------------------------------
class _Answer:
    """A Sink (transformers_backend.sequence) that counts an answer's tokens and times its first piece."""

    def __init__(self) -> None:
        self.started, self.first, self.tokens = time.perf_counter(), 0.0, 0
        self.done, self.error = threading.Event(), None

    def piece(self, out: Any) -> None:
        self.first = self.first or time.perf_counter()
        self.tokens += out.num_output_tokens or 0

    def end(self, out: Any, error: BaseException | None = None) -> None:
        self.tokens += out.num_output_tokens or 0
        self.error = error
        self.done.set()


def in_process(settings: Any, prompts: list[str], max_tokens: int,
               levels: list[int]) -> tuple[list[list[int]], list[Level]]:
    """Our engine (LlamaTextGenerator) in this process: the prompts' token ids and one Level per concurrency."""
    from llamacpp_backend.text_generation import LlamaTextGenerator

    from model_router.contract.sampling import SamplingParams

    gen = LlamaTextGenerator(settings.model_path, threads=settings.threads, use_chat_template=settings.chat_template,
                             max_input_tokens=settings.max_input_tokens, max_batch_size=settings.max_batch_size,
                             max_batch_tokens=settings.max_batch_tokens, gather_s=settings.gather_s,
                             stream_interval=settings.stream_interval, busy_rows=settings.stream_interval_rows)
    try:
        gen.grammars.tokenizer  # its warm-up thread builds this: done before anything is timed
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)

        def answer(prompt: str) -> tuple[int, float]:
            sink = _Answer()
            gen.submit(prompt, params, sink)
            sink.done.wait()
            if sink.error is not None:
                raise RuntimeError(f"in-process answer failed: {sink.error}")
            return sink.tokens, sink.first - sink.started

        answer(prompts[0])  # warm up: a whole answer, as each engine gets
        ids = [gen.encode(p) for p in prompts]
        return ids, [run_level("ours, in process", c, prompts, answer) for c in levels]
    finally:
        gen.close()


def llama_cpp_itself(settings: Any, ids: list[list[int]], max_tokens: int) -> Level:
    """llama_cpp.Llama, one prompt at a time: greedy, exactly max_tokens tokens each."""
    from llama_cpp import Llama

    llm = Llama(settings.model_path, n_ctx=settings.max_batch_tokens, n_threads=settings.threads or None,
                n_threads_batch=settings.threads or None, flash_attn=True, verbose=False)
    try:
        def answer(prompt: list[int]) -> tuple[int, float]:
            llm.reset()  # no prefix reuse from the previous prompt (the backend keeps no prompt cache)
            started, first, made = time.perf_counter(), 0.0, 0
            for _ in llm.generate(prompt, temp=0.0, repeat_penalty=1.0):
                first = first or time.perf_counter()
                made += 1
                if made == max_tokens:
                    break
            return made, first - started

        answer(ids[0])  # warm up
        return run_level("llama_cpp.Llama, in process", 1, ids, answer)
    finally:
        llm.close()


# -- served --------------------------------------------------------------------------------------
def served(model: str, prompts: list[str], max_tokens: int, levels: list[int],
           prompt_tokens: list[int]) -> tuple[list[Level], dict[str, Any]]:
    """The model alone in a fresh tritonserver, streamed to over gRPC: Levels and memory readings."""
    from client import RouterClient
    from model_router.contract.generation import GenerateOutput, GenerateRequest
    from model_router.serving.stubs import stub_pids

    sampling = {"max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    memory: dict[str, Any] = {}
    with server(None, []) as (_, grpc_url, srv):
        memory["tritonserver_before_load"] = memory_mb(srv.proc.pid)
        started = time.perf_counter()
        srv.load_model(model)
        memory["load_s"] = round(time.perf_counter() - started, 2)
        stub = stub_pids(srv.proc.pid)[model][0]
        goes_quiet(stub)
        memory["stub_after_load"] = memory_mb(stub)
        grpc = RouterClient(grpc_url, "grpc", timeout=600)
        seen_input: list[int] = []
        try:
            def answer(prompt: str) -> tuple[int, float]:
                request = GenerateRequest(prompt, sampling, stream=True,
                                          returns=frozenset({"num_input_tokens", "num_output_tokens"}))
                started, first, tokens = time.perf_counter(), 0.0, 0
                for out in grpc.stream_responses(model, request.encode(), request.outputs):
                    first = first or time.perf_counter()
                    got = GenerateOutput.decode(out)
                    tokens += got.num_output_tokens or 0
                    if got.num_input_tokens:
                        seen_input.append(got.num_input_tokens)
                return tokens, first - started

            answer(prompts[0])  # warm up
            seen_input.clear()
            results = [run_level("served, Triton gRPC", c, prompts, answer) for c in levels]
        finally:
            grpc.close()
        memory["same_prompt_tokens"] = set(seen_input) == set(prompt_tokens)
        memory["stub_after_runs"] = memory_mb(stub)
        with closing(srv.client()) as control:
            control.unload_model(model)
        deadline = time.monotonic() + 60
        while stub_pids(srv.proc.pid).get(model) and time.monotonic() < deadline:
            time.sleep(0.2)
        memory["stub_gone_after_unload"] = not stub_pids(srv.proc.pid).get(model)
        memory["tritonserver_after_unload"] = memory_mb(srv.proc.pid)
    return results, memory


# -- report --------------------------------------------------------------------------------------
def bench_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = model_settings(model)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.prompts)]
    levels = [1, args.concurrency]
    size_mb = Path(settings.model_path).stat().st_size / 2**20
    print(f"\n== {model}: {Path(settings.model_path).name} ({size_mb:.0f} MB), threads {settings.threads}, "
          f"max_batch_size {settings.max_batch_size}, max_batch_tokens {settings.max_batch_tokens}", flush=True)
    ids, ours = in_process(settings, prompts, args.max_tokens, levels)
    raw1 = llama_cpp_itself(settings, ids, args.max_tokens)
    serve, memory = served(model, prompts, args.max_tokens, levels, [len(i) for i in ids])
    print(f"{'engine':<30} {'conc':>4} {'tokens/s':>9} {'TTFT p50':>9} {'answers':>7} {'tokens':>6}")
    for lv in [raw1, *ours, *serve]:
        print(f"{lv.engine:<30} {lv.concurrency:>4} {lv.tokens_per_s:>9.1f} {lv.ttft_p50_s:>8.2f}s "
              f"{len(lv.tokens):>7} {sum(lv.tokens):>6}")
    short = [lv.engine for lv in [raw1, *ours, *serve] if any(t != args.max_tokens for t in lv.tokens)]
    if short:
        print(f"WARNING: answers not {args.max_tokens} tokens long in: {', '.join(short)}")
    s1, sc = serve[0].tokens_per_s, serve[1].tokens_per_s
    c = args.concurrency
    ratios = {"served_vs_raw_c1": s1 / raw1.tokens_per_s, f"served_vs_raw_c{c}": sc / ours[1].tokens_per_s,
              "engine_vs_raw_c1": ours[0].tokens_per_s / raw1.tokens_per_s, f"batching_served_c{c}_vs_c1": sc / s1}
    print(f"served / raw: conc 1 {ratios['served_vs_raw_c1']:.2f} (vs llama_cpp.Llama), conc {c} "
          f"{ratios[f'served_vs_raw_c{c}']:.2f} (vs our engine in process); goal >= 0.8")
    print(f"  our engine in process / llama_cpp.Llama, conc 1: {ratios['engine_vs_raw_c1']:.2f}")
    print(f"batching, served: {c} at once vs one at a time x{ratios[f'batching_served_c{c}_vs_c1']:.2f} tokens/s "
          f"(goal >= x3), TTFT p50 at {c}: {serve[1].ttft_p50_s:.2f} s (at 1: {serve[0].ttft_p50_s:.2f} s)")
    m = memory
    print(f"memory (MB): tritonserver before load RSS {m['tritonserver_before_load']['rss_mb']:.0f} "
          f"PSS {m['tritonserver_before_load']['pss_mb']:.0f}; load {m['load_s']:.1f} s")
    print(f"  stub after load        RSS {m['stub_after_load']['rss_mb']:.0f} PSS {m['stub_after_load']['pss_mb']:.0f}")
    print(f"  stub after the runs    RSS {m['stub_after_runs']['rss_mb']:.0f} PSS {m['stub_after_runs']['pss_mb']:.0f}")
    print(f"  after unload: stub gone {m['stub_gone_after_unload']}, tritonserver RSS "
          f"{m['tritonserver_after_unload']['rss_mb']:.0f} PSS {m['tritonserver_after_unload']['pss_mb']:.0f}")
    print(f"  served prompts had the in-process prompt token counts: {m['same_prompt_tokens']}", flush=True)
    return {"model": model, "levels": [{**asdict(lv), "tokens_per_s": round(lv.tokens_per_s, 2),
                                        "ttft_p50_s": round(lv.ttft_p50_s, 3)} for lv in [raw1, *ours, *serve]],
            "ratios": {k: round(v, 3) for k, v in ratios.items()}, "memory": memory}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    ap.add_argument("--prompts", type=int, default=8, help="answers per level (distinct coding questions)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (ignore_eos)")
    ap.add_argument("--concurrency", type=int, default=8, help="the batched level (besides 1)")
    ap.add_argument("--omp-default", action="store_true",
                    help="run the in-process engines with this process's OpenMP settings, not the stubs'")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    from launcher import DEFAULT_MODELS_DIR, server_env, try_nice

    os.environ.setdefault("TMR_MODELS", str(DEFAULT_MODELS_DIR))  # the configs' ${TMR_MODELS}
    if not args.omp_default:  # before llama.cpp's OpenMP runtime loads: it reads them once
        env = server_env()
        os.environ.update({k: env[k] for k in OMP_KEYS if k in env})
    try_nice(NICE)
    for backend in ("llamacpp", "transformers"):
        sys.path.insert(0, str(REPO_ROOT / "python_backends" / backend))
    omp = " ".join(f"{k}={os.environ.get(k, '-')}" for k in OMP_KEYS)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); in-process OpenMP: {omp}; "
          f"nice {os.getpriority(os.PRIO_PROCESS, 0)}")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"{args.prompts} prompts, {args.max_tokens} tokens each (greedy, ignore_eos), "
          f"concurrency 1 and {args.concurrency}")
    results = [bench_model(model, args) for model in args.models]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
