"""GPU path check, for a machine with an NVIDIA GPU: NVML memory as the loader sees it, eviction
driven by NVML's free memory, and our transformers backend's engines on CUDA (text generation,
speech recognition, text to speech). Where vLLM is installed (the NGC container), first: every
model.json of the GPU profile builds vLLM's AsyncEngineArgs.

The weights are random (an architecture from a config.json; tiny speech models from
tests/tiny_models.py), since the check is of the serving path, not of answer quality.
Usage: python scripts/gpu_check.py SMOLLM2_DIR_WITH_CONFIG_AND_TOKENIZER [WHISPER_TOKENIZER_JSON]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
from model_router.contract.sampling import SamplingParams
from model_router.serving.loader import Limits, ModelLoader
from model_router.serving.memory import detect_gpu


class CudaAllocation:
    """A stand-in model that holds real GPU memory: loading allocates it, unloading frees it."""

    def __init__(self, sizes_mb: dict[str, int]) -> None:
        self.sizes, self.held = sizes_mb, {}

    def load(self, name: str, config: str | None = None) -> None:
        self.held[name] = torch.empty(self.sizes[name] * 2**20, dtype=torch.uint8, device="cuda")

    def unload(self, name: str) -> None:
        self.held.pop(name, None)
        torch.cuda.empty_cache()

    def wait_unloaded(self, name: str, timeout: float) -> None:
        torch.cuda.synchronize()

    def states(self) -> dict[str, str]:
        return {name: "READY" for name in self.held}


def engine_args() -> None:
    """Every model.json of the GPU profile builds the vLLM backend's AsyncEngineArgs (in the NGC
    container, where vLLM is installed; no weights are read)."""
    import json

    from vllm.engine.arg_utils import AsyncEngineArgs

    for path in sorted((REPO / "model_repository_gpu").glob("*/1/model.json")):
        args = AsyncEngineArgs(**json.loads(path.read_text()))
        print(f"{path.parent.parent.name}: AsyncEngineArgs of vLLM accepts it ({args.model})")


def main() -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        engine_args()
    gpu = detect_gpu()
    assert gpu is not None, "no NVML"
    print(f"{torch.cuda.get_device_name()}: NVML total {gpu.total_mb():.0f} MB, free {gpu.free_mb():.0f} MB")
    third = int(gpu.free_mb() * 0.4)  # three of these cannot be held at once
    control = CudaAllocation({"a": third, "b": third, "c": third})
    loader = ModelLoader(control, {n: (0.0, float(third), False) for n in "abc"}, memory_budget_mb=1e9, gpu=gpu,
                         limits=Limits(min_residency_s=0))
    for name in "abc":
        loader.acquire(name).close()
        print(f"acquired {name} ({third} MB): held {sorted(control.held)}, NVML free {gpu.free_mb():.0f} MB")
    assert "a" not in control.held and {"b", "c"} <= set(control.held), control.held
    control.held.clear()
    torch.cuda.empty_cache()

    from transformers import AutoConfig, AutoModelForCausalLM

    from transformers_backend.text_generation import TextGenerator

    src = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src)).save_pretrained(tmp)
        for f in src.iterdir():
            if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
                (Path(tmp) / f.name).write_bytes(f.read_bytes())
        t0 = time.perf_counter()
        gen = TextGenerator(tmp, device="cuda", dtype="bfloat16")
        torch.cuda.synchronize()
        load_s = time.perf_counter() - t0
        used = torch.cuda.memory_allocated() / 2**20
        params = SamplingParams(max_tokens=64, temperature=0.0)
        list(gen.generate("Warm up.", SamplingParams(max_tokens=4)))
        t0 = time.perf_counter()
        pieces = list(gen.generate("What is the capital of France?", params))
        dt = time.perf_counter() - t0
        n = len(gen.tokenizer("".join(pieces))["input_ids"])
        print(f"TextGenerator on CUDA (random SmolLM2-135M architecture, bf16): load {load_s:.2f} s, "
              f"{used:.0f} MB allocated, {n} tokens in {dt:.2f} s = {n / dt:.0f} tokens/s streaming")
        batching(gen)
        gen.close()
    if len(sys.argv) > 2:
        speech(Path(sys.argv[2]))


def batching(gen) -> None:
    """Continuous batching on CUDA: 8 prompts of different lengths, one by one and all at once; the greedy
    answers must match, and the ratio of the times says what batching buys on this GPU."""
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"Question {i}: " + "tell me about the sea. " * (1 + 5 * i) for i in range(8)]
    params = SamplingParams(max_tokens=32, temperature=0.0, ignore_eos=True)
    t0 = time.perf_counter()
    alone = ["".join(gen.generate(p, params)) for p in prompts]
    one_by_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: "".join(gen.generate(p, params)), prompts))
    at_once = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(alone, together))
    print(f"continuous batching on CUDA: 8 x 32 tokens one by one {one_by_one:.2f} s, at once {at_once:.2f} s "
          f"(x{one_by_one / at_once:.1f}); greedy answers identical: {same}/8")


def speech(tokenizer: Path) -> None:
    import io
    import wave

    import numpy as np

    from tests.tiny_models import tiny_vits, tiny_whisper
    from transformers_backend import speech_recognition
    from transformers_backend.speech_recognition import SpeechRecognizer
    from transformers_backend.text_to_speech import Synthesizer

    try:
        import av  # noqa: F401
    except ImportError:  # the device image lacks PyAV: read the WAV here instead
        def wav_samples(data: bytes, field: str = "audio") -> np.ndarray:
            w = wave.open(io.BytesIO(data))
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        speech_recognition.decode_audio = wav_samples
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        tts = Synthesizer(str(tiny_vits(Path(tmp) / "vits")), device="cuda", dtype="float32")
        wav, rate = tts.synthesize("hello world, this is a test.")
        t0 = time.perf_counter()
        wav, rate = tts.synthesize("hello world, this is a test of speech on the gpu.")
        tts_s = time.perf_counter() - t0
        seconds = wave.open(io.BytesIO(wav)).getnframes() / rate
        print(f"Synthesizer on CUDA (tiny VITS): {seconds:.2f} s of {rate} Hz audio in {tts_s * 1000:.0f} ms, "
              f"device {next(tts.pipe.model.parameters()).device}")
        asr = SpeechRecognizer(str(tiny_whisper(Path(tmp) / "whisper", tokenizer)), device="cuda", dtype="float16",
                               max_new_tokens=16)
        t0 = time.perf_counter()
        out = asr.transcribe(wav)
        asr_s = time.perf_counter() - t0
        hinted = asr.transcribe(wav, "hi")
        print(f"SpeechRecognizer on CUDA (tiny Whisper, fp16): detected {out.language!r}, {len(out.segments)} segments "
              f"in {asr_s * 1000:.0f} ms; with hint: {hinted.language!r}; device {asr.pipe.model.device}, "
              f"dtype {asr.pipe.model.dtype}")
        assert out.language and hinted.language == "hi"


if __name__ == "__main__":
    main()
