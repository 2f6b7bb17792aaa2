"""Triton adapter for the router's metrics: ops in (JSON), applied to the router's metric families."""
from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.triton.adapter import RequestModel, first_text
from model_router.triton.metrics import HOW, ROUTER_FAMILIES, MetricFamilies

MAX_OPS_CHARS = 8 << 20


class TritonPythonModel(RequestModel):
    name = "tmr_metrics"

    def initialize(self, args: dict) -> None:
        self.families = MetricFamilies(pb_utils, ROUTER_FAMILIES)

    def answer(self, request):
        try:
            ops = [(family, how, float(value), dict(labels))
                   for family, how, value, labels in json.loads(first_text(request, "ops", MAX_OPS_CHARS))]
        except (ValueError, TypeError) as exc:
            raise InputError("ops", f"expected JSON [[family, how, value, labels], ...]: {exc}") from None
        unknown = {family for family, *_ in ops} - set(ROUTER_FAMILIES) | {how for _, how, *_ in ops} - set(HOW)
        if unknown:
            raise InputError("ops", f"unknown metric families or operations {sorted(unknown)}")
        self.families.apply(ops)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("applied", np.array([len(ops)], np.int32))])

    def finalize(self) -> None:
        self.families.close()
