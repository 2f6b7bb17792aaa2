from __future__ import annotations

import copy

import pytest
import yaml

from model_router.errors import InputError, RegistryError
from model_router.registry import REGISTRY_FILE, load_registry, parse_registry
from model_router.routing.policy import LiveState, rank

RAW = yaml.safe_load(REGISTRY_FILE.read_text())


def live(loaded=(), cooling=(), no_fit=(), failures=None) -> LiveState:
    return LiveState(is_loaded=lambda m: m in loaded, fits=lambda m: m not in no_fit,
                     cooling_s=lambda m: 20.0 if m in cooling else 0.0,
                     recent_failures=lambda m: (failures or {}).get(m, 0))


def test_shipped_registry_is_valid_and_has_both_profiles() -> None:
    reg = load_registry()
    assert set(reg.profiles) == {"cpu", "gpu"}
    assert reg.chain("cpu", "agent")[0] == "smollm2_135m_instruct"
    assert reg.chain("gpu", "agent")[0] == "qwen2_5_7b_instruct"
    assert {m.name for m in reg.managed("cpu") if m.pinned} == {"query_classifier", "router"}
    assert all(reg.models[m].backend == "vllm" for m in ("qwen2_5_7b_instruct", "qwen2_5_vl_7b_instruct",
                                                          "qwen2_audio_7b_instruct", "phi_2"))
    assert "tts" not in reg.models["qwen2_audio_7b_instruct"].use_cases  # audio in, text out


@pytest.mark.parametrize("mutate, words", [
    (lambda r: r["models"]["phi_2"].update(backend="onnx"), "models.phi_2.backend: 'onnx' unknown. Available"),
    (lambda r: r["models"]["phi_2"].pop("quality"), "models.phi_2.quality: required"),
    (lambda r: r["models"]["phi_2"].update(quality=3), "models.phi_2.quality: 3 is out of range"),
    (lambda r: r["models"]["phi_2"].update(use_cases=["chat"]), "models.phi_2.use_cases[0]: 'chat' unknown"),
    (lambda r: r["chains"]["cpu"].update(agent=["nope"]), "chains.cpu.agent: model 'nope' unknown"),
    (lambda r: r["chains"]["cpu"].update(agent=["phi_2"]), "is not in profile 'cpu'"),
    (lambda r: r["chains"]["gpu"].update(tts=["phi_2"]), "does not serve 'tts'"),
    (lambda r: r["models"]["phi_2"].update(memory_mb="lots"), "models.phi_2.memory_mb: expected"),
])
def test_invalid_registry_errors_name_the_field(mutate, words: str) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(RegistryError, match=words.replace("(", r"\(").replace("[", r"\[")):
        parse_registry(raw)


def test_loaded_model_wins_over_cold_one_of_similar_quality() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", "agent", "en", live(loaded={"smollm2_135m_instruct_bf16"}))
    assert r.candidates[0].model == "smollm2_135m_instruct_bf16"
    r = rank(reg, "cpu", "agent", "en", live())
    assert r.candidates[0].model == "smollm2_135m_instruct"


def test_cooling_and_unfit_models_are_skipped_with_reasons() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", "agent", "en", live(cooling={"smollm2_135m_instruct"}, no_fit={"smollm2_135m_instruct_bf16"}))
    assert r.candidates == []
    assert [m for m, _ in r.skipped] == ["smollm2_135m_instruct", "smollm2_135m_instruct_bf16"]
    assert "cooling down" in r.skipped[0][1] and "memory budget" in r.skipped[1][1]


def test_quality_and_language_lead_on_gpu() -> None:
    reg = load_registry()
    r = rank(reg, "gpu", "agent", "ta", live(loaded={"phi_2"}))
    assert r.candidates[0].model == "qwen2_5_7b_instruct"  # serves Tamil, far better quality


def test_latency_cap_puts_slow_models_last() -> None:
    reg = load_registry()
    r = rank(reg, "gpu", "agent", "en", live(loaded={"phi_2"}), max_latency_ms=1000)
    assert r.candidates[0].model == "phi_2"
    assert "over max_latency_ms" in r.candidates[-1].why


def test_model_hint_goes_first_and_is_checked() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", "agent", "en", live(), model_hint="smollm2_135m_instruct_bf16")
    assert r.candidates[0].model == "smollm2_135m_instruct_bf16"
    with pytest.raises(InputError, match="options.model: 'gpt-9' unknown. Available"):
        rank(reg, "cpu", "agent", "en", live(), model_hint="gpt-9")
    with pytest.raises(InputError, match="does not serve use case 'agent' on profile 'cpu'"):
        rank(reg, "cpu", "agent", "en", live(), model_hint="phi_2")
