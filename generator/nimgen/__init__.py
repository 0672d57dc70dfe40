"""nimgen: GitOps trees (Helm charts and Argo CD Applications) for NVIDIA NIM LLMs on EKS."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """`__version__` on first use: importing importlib.metadata costs every command ~30 ms of start-up."""
    if name != "__version__":
        raise AttributeError(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nimgen")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"
