"""Unit tests import our backends' packages (`transformers_backend`, `llamacpp_backend`) from the tree
they are in.

The editable install finds it only after sys.path, and always in the checkout it was installed
from: a copy of the tree (scripts/mutations.py runs its tests in one) would otherwise test the
checkout's backend instead of its own.
"""
from __future__ import annotations

import sys
from pathlib import Path

for backend in ("transformers", "llamacpp"):
    path = str(Path(__file__).resolve().parents[2] / "python_backends" / backend)
    if path not in sys.path:
        sys.path.insert(0, path)
