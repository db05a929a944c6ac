"""GraphCast from Zero: a JAX + dm-haiku GraphCast that loads DeepMind's published checkpoints."""

__version__ = "0.1.0"
