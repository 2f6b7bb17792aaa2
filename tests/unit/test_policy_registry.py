from __future__ import annotations

import copy

import pytest
import yaml

from model_router.errors import InputError, RegistryError
from model_router.registry import REGISTRY_FILE, load_registry, parse_registry
from model_router.routing.policy import LiveState, Query, rank

RAW = yaml.safe_load(REGISTRY_FILE.read_text())
SMOLLM2, SMOLLM2_BF16 = "smollm2_135m_instruct", "smollm2_135m_instruct_bf16"
QWEN_1_5B, QWEN_0_5B = "qwen2_5_coder_1_5b_instruct", "qwen2_5_coder_0_5b_instruct"
CPU_TEXT = [QWEN_1_5B, QWEN_0_5B, SMOLLM2, SMOLLM2_BF16]


def live(loaded=(), cooling=(), no_fit=(), failures=None) -> LiveState:
    return LiveState(is_loaded=lambda m: m in loaded, blocker=lambda m, forced: "too big" if m in no_fit else "",
                     cooling_s=lambda m: 20.0 if m in cooling else 0.0,
                     recent_failures=lambda m: (failures or {}).get(m, 0))


def test_shipped_registry_is_valid_and_has_both_profiles() -> None:
    reg = load_registry()
    assert set(reg.profiles) == {"cpu", "gpu"}
    assert all(list(reg.chain("cpu", u)) == CPU_TEXT for u in ("agent", "multimodal", "video", "avatar"))
    assert reg.models[QWEN_1_5B].backend == reg.models[QWEN_0_5B].backend == "llamacpp"
    assert reg.models[QWEN_1_5B].cancels_by_id and reg.models[SMOLLM2].cancels_by_id  # our backends' tmr_cancel
    assert not reg.models["qwen2_5_7b_instruct"].cancels_by_id
    assert sum(reg.models[m].memory_mb for m in CPU_TEXT) < reg.profile("cpu").memory_budget_mb  # all loaded at once
    assert reg.chain("gpu", "agent")[0] == "qwen2_5_7b_instruct"
    assert {m.name for m in reg.managed("cpu") if m.pinned} == {"query_classifier", "router", "tmr_metrics"}
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
    (lambda r: r["models"]["phi_2"].pop("tokenizer"), "models.phi_2.tokenizer: required for a vLLM-backend text"),
    (lambda r: r["models"][QWEN_0_5B].update(tokenizer="Qwen/Qwen2.5-Coder-0.5B-Instruct"),
     f"models.{QWEN_0_5B}.tokenizer: only for vLLM-backend models; backend 'llamacpp' applies its own"),
    (lambda r: r["models"][SMOLLM2].update(tool_prompt="template"),
     f"models.{SMOLLM2}.tool_prompt: 'template' needs a tokenizer, or a backend whose template takes the `tools`"),
])
def test_invalid_registry_errors_name_the_field(mutate, words: str) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(RegistryError, match=words.replace("(", r"\(").replace("[", r"\[")):
        parse_registry(raw)


def test_loaded_model_wins_over_cold_one_of_similar_quality() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", Query("agent", "en", "low"), live(loaded={SMOLLM2_BF16}))
    assert r.candidates[0].model == SMOLLM2_BF16 and r.decided_by.startswith("loaded state")
    r = rank(reg, "cpu", Query("agent", "en", "low"), live())
    assert r.candidates[0].model == SMOLLM2 and r.decided_by.startswith("complexity low")
    r = rank(reg, "cpu", Query("agent", "en", "low"), live(loaded={SMOLLM2}))  # it would lead cold too
    assert r.candidates[0].model == SMOLLM2 and r.decided_by.startswith("complexity low")


def test_cooling_and_unfit_models_are_skipped_with_reasons() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", Query("agent", "en"), live(cooling={QWEN_1_5B, SMOLLM2}, no_fit={QWEN_0_5B, SMOLLM2_BF16}))
    assert r.candidates == []
    assert [m for m, _ in r.skipped] == CPU_TEXT
    assert "cooling down" in r.skipped[0][1] and "cannot be loaded now: too big" in r.skipped[1][1]


# -- the CPU profile's three text models: SmolLM2 for simple questions, Qwen2.5-Coder for the rest ---
def test_a_simple_english_question_stays_on_smollm2_cold_or_loaded() -> None:
    reg = load_registry()
    for loaded in ((), (SMOLLM2,), (QWEN_1_5B,)):
        r = rank(reg, "cpu", Query("agent", "en", "low"), live(loaded=loaded))
        assert r.candidates[0].model == SMOLLM2, (loaded, r.candidates)
    assert "complexity low: the cheapest model" in rank(reg, "cpu", Query("agent", "en", "low"), live()).decided_by


def test_a_harder_question_goes_to_qwen_the_hardest_to_the_1_5b() -> None:
    reg = load_registry()
    medium = rank(reg, "cpu", Query("agent", "en", "medium"), live(loaded={SMOLLM2}))
    assert medium.candidates[0].model == QWEN_0_5B and "complexity medium" in medium.decided_by
    hard = rank(reg, "cpu", Query("agent", "en", "high"), live(loaded={SMOLLM2, QWEN_0_5B}))
    assert hard.candidates[0].model == QWEN_1_5B and hard.decided_by == "quality (complexity high)"
    assert [c.model for c in hard.candidates][1:] == [QWEN_0_5B, SMOLLM2, SMOLLM2_BF16]  # the fallbacks, in order


@pytest.mark.parametrize("needs", [{"tools": True}, {"constrained": True}, {"tools": True, "constrained": True}])
def test_tools_and_structured_answers_go_to_the_1_5b_even_for_a_simple_question(needs: dict) -> None:
    reg = load_registry()
    for prefer in ("balanced", "cost", "quality"):
        r = rank(reg, "cpu", Query("agent", "en", "low", prefer, **needs), live(loaded={SMOLLM2, QWEN_0_5B}))
        assert [c.model for c in r.candidates] == CPU_TEXT, (prefer, r.candidates)  # fallbacks: 0.5B, then SmolLM2
        assert r.decided_by == "quality (tools or a structured answer: the strongest model)"
        assert "best below high (low)" in r.candidates[2].why


def test_the_1_5b_serves_hindi_which_the_others_do_not_list() -> None:
    r = rank(load_registry(), "cpu", Query("agent", "hi", "low"), live(loaded={SMOLLM2}))
    assert [c.model for c in r.candidates] == [QWEN_1_5B] and "language hi" in r.decided_by


def test_when_the_1_5b_cannot_serve_tools_fall_back_down_the_chain() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", Query("agent", "en", "low", tools=True), live(cooling={QWEN_1_5B}))
    assert [c.model for c in r.candidates] == [QWEN_0_5B, SMOLLM2, SMOLLM2_BF16]


def test_a_structured_answer_on_the_gpu_goes_to_the_best_model_not_the_cheaper_one() -> None:
    reg = load_registry()
    assert rank(reg, "gpu", Query("agent", "en", "medium"), live()).candidates[0].model == "phi_2"
    r = rank(reg, "gpu", Query("agent", "en", "medium", constrained=True), live(loaded={"phi_2"}))
    assert r.candidates[0].model == "qwen2_5_7b_instruct"


def test_quality_and_language_lead_on_gpu() -> None:
    reg = load_registry()
    r = rank(reg, "gpu", Query("agent", "ta"), live(loaded={"phi_2"}))
    assert r.candidates[0].model == "qwen2_5_7b_instruct"  # serves Tamil; phi_2 does not list it
    assert ("phi_2", "does not list ta; qwen2_5_7b_instruct does") in r.skipped


def test_latency_cap_puts_slow_models_last() -> None:
    reg = load_registry()
    r = rank(reg, "gpu", Query("agent", "en", max_latency_ms=1000), live(loaded={"phi_2"}))
    assert r.candidates[0].model == "phi_2"
    assert "over max_latency_ms" in r.candidates[-1].why


def test_model_hint_goes_first_and_is_checked() -> None:
    reg = load_registry()
    r = rank(reg, "cpu", Query("agent", "en", model_hint="smollm2_135m_instruct_bf16"), live())
    assert r.candidates[0].model == "smollm2_135m_instruct_bf16"
    with pytest.raises(InputError, match="options.model: 'gpt-9' unknown. Available"):
        rank(reg, "cpu", Query("agent", "en", model_hint="gpt-9"), live())
    with pytest.raises(InputError, match="does not serve use case 'agent' on profile 'cpu'"):
        rank(reg, "cpu", Query("agent", "en", model_hint="phi_2"), live())


def test_easy_english_goes_to_a_cheaper_model_and_hard_to_the_best() -> None:
    reg = load_registry()
    easy = rank(reg, "gpu", Query("agent", "en", "low"), live())
    assert easy.candidates[0].model == "phi_2" and "complexity low" in easy.decided_by
    medium = rank(reg, "gpu", Query("agent", "en", "medium"), live())
    assert medium.candidates[0].model == "phi_2"  # phi_2 handles up to medium, at a third of the cost
    hard = rank(reg, "gpu", Query("agent", "en", "high"), live(loaded={"phi_2"}))
    assert hard.candidates[0].model == "qwen2_5_7b_instruct" and "quality" in hard.decided_by


def test_prefer_moves_the_threshold() -> None:
    reg = load_registry()
    assert rank(reg, "gpu", Query("agent", "en", "low", prefer="quality"), live()).candidates[0].model == \
        "qwen2_5_7b_instruct"
    cheap = rank(reg, "gpu", Query("agent", "en", "medium", prefer="cost"), live())
    assert cheap.candidates[0].model == "phi_2" and "cost" in cheap.decided_by


def test_a_language_a_model_does_not_list_never_goes_to_it_when_another_can_serve() -> None:
    reg = load_registry()
    r = rank(reg, "gpu", Query("agent", "hi", "low", prefer="cost"), live(loaded={"phi_2"}))
    assert [c.model for c in r.candidates] == ["qwen2_5_7b_instruct"] and "language hi" in r.decided_by
    # ... but when only such a model can serve now, it serves rather than no one
    alone = rank(reg, "gpu", Query("agent", "hi", "low"), live(cooling={"qwen2_5_7b_instruct"}))
    assert [c.model for c in alone.candidates] == ["phi_2"]


def test_speech_chains_go_by_quality_whatever_the_complexity() -> None:
    reg = load_registry()
    assert rank(reg, "gpu", Query("stt", "en", "low"), live()).candidates[0].model == "stt_whisper_large_v3"


def test_a_picture_goes_to_the_model_that_sees_it_not_the_cheaper_one_that_reads_it() -> None:
    reg = load_registry()
    seen = rank(reg, "gpu", Query("multimodal", "en", "low", attachments=("image",)), live())
    assert seen.candidates[0].model == "qwen2_5_vl_7b_instruct" and "media" in seen.decided_by
    read = rank(reg, "gpu", Query("avatar", "en", "medium"), live())  # nothing to see: the cheaper writer
    assert read.candidates[0].model == "qwen2_5_7b_instruct"
