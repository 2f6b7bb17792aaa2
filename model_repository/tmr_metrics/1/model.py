"""Triton adapter for the router's metrics: ops in (JSON), applied to the router's metric families."""
from __future__ import annotations

import triton_python_backend_utils as pb_utils

from model_router.contract.metrics import MetricOps
from model_router.errors import InputError
from model_router.triton.adapter import RequestModel, getter, response
from model_router.triton.metrics import HOW, ROUTER_FAMILIES, MetricFamilies


class TritonPythonModel(RequestModel):
    name = "tmr_metrics"

    def initialize(self, args: dict) -> None:
        self.families = MetricFamilies(pb_utils, ROUTER_FAMILIES)

    def answer(self, request):
        ops = list(MetricOps.decode(getter(request)).ops)
        unknown = {family for family, *_ in ops} - set(ROUTER_FAMILIES) | {how for _, how, *_ in ops} - set(HOW)
        if unknown:
            raise InputError("ops", f"unknown metric families or operations {sorted(unknown)}")
        self.families.apply(ops)
        return response(MetricOps.applied(len(ops)))

    def finalize(self) -> None:
        super().finalize()
        self.families.close()
