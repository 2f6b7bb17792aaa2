"""Client for Triton Model Router over tritonclient (HTTP and gRPC)."""
from .api import RouterClient

__all__ = ["RouterClient"]
