"""Shared helpers for the ML Engineering Interview Lab notebooks.

Importing the package is cheap: it loads only the pure-Python modules below. Modules that need a
framework (``device``, ``train``, ``bench`` with CUDA, ...) import it themselves, so
``from helpers import train`` is where PyTorch is first imported.
"""

from helpers.claims import claim, claim_if, worked
from helpers.config import pick

__all__ = ["claim", "claim_if", "pick", "worked"]
__version__ = "0.1.0"
