"""Kept for existing imports: the adapters now live in :mod:`kdcore.verify.adapters`, beside their one user.

``from kdcore.adapters import get_adapter`` still works and gives the very same objects.
"""

from .verify.adapters import (
    FRAMEWORKS,
    Adapter,
    Evaluation,
    FrameworkNotInstalledError,
    JaxAdapter,
    NotScalarError,
    NumpyAdapter,
    TensorflowAdapter,
    TorchAdapter,
    get_adapter,
)

__all__ = [
    "FRAMEWORKS",
    "Adapter",
    "Evaluation",
    "FrameworkNotInstalledError",
    "JaxAdapter",
    "NotScalarError",
    "NumpyAdapter",
    "TensorflowAdapter",
    "TorchAdapter",
    "get_adapter",
]
