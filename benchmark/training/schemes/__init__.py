"""Training schemes: reusable procedures that train any method able to give what they need.

Each scheme is one module here plus one YAML in configs/training/ (its settings and its
budget per profile). A method's YAML names its default scheme (`train.scheme`); the
command line picks another (`training=bilevel_jfb`). The smooth-regularizer schemes (bilevel,
score matching) share regbench.training.schemes.regularizer.
"""

from regbench.training.schemes.base import NEEDS, Scheme, load_scheme, scheme_for, seeded_init

__all__ = ["NEEDS", "Scheme", "load_scheme", "scheme_for", "seeded_init"]
