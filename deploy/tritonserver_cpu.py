"""`tritonserver` in the CPU image (deploy/Dockerfile.cpu): the pytriton wheel's server, started with
the launcher's environment (the stub in our venv, weights at TMR_MODELS, OpenMP's spin policy) and
backend directory, and every argument passed through. Kubernetes' CPU overlay runs the same
`tritonserver` command and flags as docker compose's GPU service does with NGC's binary.
"""
from __future__ import annotations

import os
import sys

from launcher import prepare_backends, pytriton_root, server_env


def main(argv: list[str]) -> None:
    binary = str(pytriton_root() / "bin" / "tritonserver")
    os.execve(binary, [binary, f"--backend-directory={prepare_backends()}", *argv], server_env())


if __name__ == "__main__":
    main(sys.argv[1:])
