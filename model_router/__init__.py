"""Triton Model Router: classify a request, pick a model, make sure it is loaded, serve it."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
__all__ = ["REPO_ROOT"]
