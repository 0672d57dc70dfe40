"""nimgen: GitOps trees (Helm charts and Argo CD Applications) for NVIDIA NIM LLMs on EKS."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nimgen")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
