"""The GPU deployment files, checked as files (no Docker engine runs on our machines)."""
from __future__ import annotations

import json
import re

import yaml

from model_router import REPO_ROOT
from model_router.registry import load_registry

# AsyncEngineArgs fields of vLLM 0.5.5, the version in NGC tritonserver:24.10-vllm-python-py3.
VLLM_055_ENGINE_ARGS = {
    "model", "tokenizer", "skip_tokenizer_init", "tokenizer_mode", "trust_remote_code", "download_dir",
    "load_format", "dtype", "kv_cache_dtype", "quantization_param_path", "seed", "max_model_len",
    "worker_use_ray", "distributed_executor_backend", "pipeline_parallel_size", "tensor_parallel_size",
    "max_parallel_loading_workers", "block_size", "enable_prefix_caching", "disable_sliding_window",
    "use_v2_block_manager", "swap_space", "cpu_offload_gb", "gpu_memory_utilization", "max_num_batched_tokens",
    "max_num_seqs", "max_logprobs", "disable_log_stats", "revision", "code_revision", "rope_scaling",
    "rope_theta", "tokenizer_revision", "quantization", "enforce_eager", "max_context_len_to_capture",
    "max_seq_len_to_capture", "disable_custom_all_reduce", "tokenizer_pool_size", "tokenizer_pool_type",
    "tokenizer_pool_extra_config", "limit_mm_per_prompt", "enable_lora", "max_loras", "max_lora_rank",
    "enable_prompt_adapter", "max_prompt_adapters", "max_prompt_adapter_token", "fully_sharded_loras",
    "lora_extra_vocab_size", "long_lora_scaling_factors", "lora_dtype", "max_cpu_loras", "device",
    "num_scheduler_steps", "ray_workers_use_nsight", "num_gpu_blocks_override", "num_lookahead_slots",
    "model_loader_extra_config", "ignore_patterns", "preemption_mode", "scheduler_delay_factor",
    "enable_chunked_prefill", "guided_decoding_backend", "speculative_model", "speculative_draft_tensor_parallel_size",
    "num_speculative_tokens", "speculative_max_model_len", "speculative_disable_by_batch_size",
    "ngram_prompt_lookup_max", "ngram_prompt_lookup_min", "spec_decoding_acceptance_method",
    "typical_acceptance_sampler_posterior_threshold", "typical_acceptance_sampler_posterior_alpha",
    "qlora_adapter_name_or_path", "disable_logprobs_during_spec_decoding", "otlp_traces_endpoint",
    "collect_detailed_traces", "disable_async_output_proc", "override_neuron_config", "disable_log_requests",
    "engine_use_ray",
}
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_services_ports_and_gpu() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"triton", "prometheus", "grafana"}
    triton = services["triton"]
    assert set(triton["ports"]) == {"8000:8000", "8001:8001", "8002:8002"}
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert triton["shm_size"]
    cmd = " ".join(triton["command"])
    assert "--model-control-mode=explicit" in cmd and "--http-restricted-api=model-repository:admin-key=" in cmd
    assert "--grpc-restricted-protocol=model-repository:admin-key=" in cmd
    assert "nvcr.io/nvidia/tritonserver:24.10-vllm-python-py3" in (REPO_ROOT / "deploy" / "Dockerfile").read_text()


def test_every_mounted_path_exists() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("${"):
                continue  # set by the operator (the model cache)
            assert (REPO_ROOT / host).exists(), f"{name}: {host} is missing"
    assert (REPO_ROOT / COMPOSE["services"]["triton"]["build"]["dockerfile"]).exists()


def test_prometheus_scrapes_triton_and_dashboard_queries_our_metrics() -> None:
    prom = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["triton:8002"]
    dash = json.loads((REPO_ROOT / "deploy" / "grafana" / "dashboards" / "router.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in ("tmr_routing_decisions_total", "tmr_model_loads_total", "tmr_model_evictions_total",
                   "tmr_model_load_duration_seconds_bucket", "tmr_classifier_latency_seconds_bucket",
                   "nv_gpu_memory_used_bytes"):
        assert metric in exprs


def test_gpu_models_have_valid_vllm_configs() -> None:
    reg = load_registry()
    vllm = [m for m in reg.models.values() if m.backend == "vllm"]
    assert {m.name for m in vllm} == {"qwen2_5_7b_instruct", "qwen2_5_vl_7b_instruct", "qwen2_audio_7b_instruct", "phi_2"}
    for m in vllm:
        folder = REPO_ROOT / "model_repository_gpu" / m.name
        assert re.search(r'backend:\s*"vllm"', (folder / "config.pbtxt").read_text())
        args = json.loads((folder / "1" / "model.json").read_text())
        assert set(args) <= VLLM_055_ENGINE_ARGS, set(args) - VLLM_055_ENGINE_ARGS
        # The declared GPU memory must match what vLLM will take on an 80 GB card.
        assert abs(args["gpu_memory_utilization"] * 81559 - m.gpu_memory_mb) < 0.1 * m.gpu_memory_mb, m.name


def test_cpu_models_have_folders() -> None:
    reg = load_registry()
    for m in reg.models.values():
        if "cpu" in m.profiles:
            assert (REPO_ROOT / "model_repository" / m.name / "config.pbtxt").exists(), m.name


def test_gpu_speech_models_are_transformers_backend_on_gpu() -> None:
    reg = load_registry()
    tasks = {"stt": "automatic-speech-recognition", "tts": "text-to-speech"}
    entries = [m for m in reg.models.values() if m.backend == "transformers" and m.profiles == ("gpu",)]
    assert {m.name for m in entries} == {"stt_whisper_large_v3", "tts_bark"}
    for m in entries:
        config = (REPO_ROOT / "model_repository_gpu" / m.name / "config.pbtxt").read_text()
        assert re.search(r'backend:\s*"transformers"', config) and "KIND_GPU" in config
        assert f'string_value: "{tasks[m.interface]}"' in config and "decoupled" not in config
        assert (REPO_ROOT / "model_repository_gpu" / m.name / "1").is_dir()


def test_image_carries_what_the_steps_need() -> None:
    docker = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    reqs = (REPO_ROOT / "deploy" / "requirements-gpu.txt").read_text()
    assert "espeak-ng" in docker and "tesseract-ocr-hin" in docker
    for pkg in ("faster-whisper", "av==", "pillow=="):
        assert pkg in reqs
