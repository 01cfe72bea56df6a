"""Seeded, deterministic simulator of a Leapsome-like Entra tenant: provisioning events, job
snapshots, the SCIM server's audit trail and the ground truth the rest of provlens is tested against.

    from simulator import generate, write, Simulation
    sim = generate(seed=7, users=200, days=14)
    paths = write(sim, "data/sim", page_size=500)
"""

from .generator import DEFAULT_END, generate
from .model import Simulation
from .writer import write

__all__ = ["DEFAULT_END", "Simulation", "generate", "write"]
