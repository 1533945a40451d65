"""Drawn identifiers: random in production, from the seed in embedded mode (deterministic).

These are the ids inside the schemes of :mod:`domain.ids` (``c:conv-9f3a51c2e07b4d18``).
"""

from __future__ import annotations

import random
import secrets


class IdSource:
    """Draws ids like ``conv-9f3a51c2e07b4d18``. ``seed=None`` draws from the OS's randomness."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None

    def new(self, prefix: str) -> str:
        if self._rng is None:
            return f"{prefix}-{secrets.token_hex(8)}"
        return f"{prefix}-{self._rng.getrandbits(64):016x}"
