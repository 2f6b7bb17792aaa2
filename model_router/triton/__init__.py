"""Triton glue: the helpers every model.py shares, BLS calls with deadlines, model control, metrics.

`adapter` and `bls` import triton_python_backend_utils, so they load only inside a Python-backend stub.
"""
