"""Deterministic identifiers drawn from a seeded random.Random (never uuid4 or the clock)."""

from __future__ import annotations

import random
import uuid


class IdFactory:
    """Makes GUIDs, hex strings and Leapsome-style target ids from one rng."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._target_ids: set[str] = set()

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(4 * length):0{length}x}"

    def target_id(self) -> str:
        """A SCIM id as Leapsome returns it: u_ + 8 hex characters, unique."""
        while True:
            value = "u_" + self.hex(8)
            if value not in self._target_ids:
                self._target_ids.add(value)
                return value

    def request_id(self) -> str:
        return "req-" + self.hex(16)
