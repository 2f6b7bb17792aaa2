"""Tiny, randomly initialised speech checkpoints, made on the spot (no hub): they exercise the
transformers backend's speech tasks end to end where Whisper large-v3 and Bark cannot be had."""
from __future__ import annotations

import json
from pathlib import Path

from launcher import DEFAULT_MODELS_DIR

WHISPER_TOKENIZER = DEFAULT_MODELS_DIR / "whisper-base-ct2" / "tokenizer.json"  # prepared by scripts/setup.sh


def tiny_whisper(out: Path, tokenizer: Path = WHISPER_TOKENIZER) -> Path:
    """A 2-layer Whisper with the real multilingual tokenizer, so that language tokens resolve."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    tok = WhisperTokenizerFast(tokenizer_file=str(tokenizer))
    sot, eot, no_ts = (tok.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>"))
    langs = tok.convert_ids_to_tokens(list(range(sot + 1, sot + 100)))
    ids = dict(decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot)
    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=51865, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, **ids))
    model.generation_config = GenerationConfig(
        **ids, no_timestamps_token_id=no_ts, is_multilingual=True, lang_to_id={t: sot + 1 + i for i, t in enumerate(langs)},
        task_to_id={"transcribe": tok.convert_tokens_to_ids("<|transcribe|>"), "translate": tok.convert_tokens_to_ids("<|translate|>")},
        max_length=64, begin_suppress_tokens=[220, eot], prev_sot_token_id=tok.convert_tokens_to_ids("<|startofprev|>"),
        max_initial_timestamp_index=50)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


def tiny_vits(out: Path) -> Path:
    """A 1-layer VITS (the MMS-TTS architecture) over plain letters."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    out.mkdir(parents=True, exist_ok=True)
    chars = list(" abcdefghijklmnopqrstuvwxyz'.,?!-")
    (out / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    VitsTokenizer(str(out / "vocab.json"), add_blank=True, normalize=True, phonemize=False).save_pretrained(out)
    VitsModel(VitsConfig(
        vocab_size=len(chars), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, ffn_dim=64, flow_size=32,
        prior_encoder_num_flows=1, posterior_encoder_num_wavenet_layers=1, prior_encoder_num_wavenet_layers=1,
        duration_predictor_filter_channels=32, upsample_initial_channel=32, upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        sampling_rate=16000, depth_separable_num_layers=1, use_stochastic_duration_prediction=False)).save_pretrained(out)
    return out
