"""Seed derivation from stable identifiers.

A work unit's seed is a pure function of the root seed and the unit's stable id (a tuple of
strings and integers), never of worker rank or scheduling order. This is what makes one process
and fifty Ray actors produce the same numbers.

    seed = SeedSequence([root, *blake2b(repr(key))]).generate_state(1, uint64)[0] >> 1
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from distmi.core.errors import InvalidParameterError

KeyPart = str | int


def _key_words(key: Sequence[KeyPart]) -> list[int]:
    """Hash a stable key to four 32-bit words (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(f"{type(part).__name__}:{part}" for part in key)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


SEED_LIMIT = 2**63


def check_seed(random_state: int | None) -> int:
    """Validate an integer root seed in [0, 2^63); ``None`` gives 0 (internal callers only).

    User-facing entry points take ``random_state=None`` to mean fresh entropy instead: they
    call :func:`resolve_seed`.
    """
    if random_state is None:
        return 0
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise InvalidParameterError(
            f"random_state must be a non-negative integer or None, got {random_state!r} "
            f"({type(random_state).__name__}); pass e.g. random_state=0 (None draws a fresh "
            "seed and records it in the result's params)."
        )
    if not 0 <= random_state < SEED_LIMIT:
        raise InvalidParameterError(
            f"random_state must be in [0, 2**63), got {random_state}; pass a non-negative "
            "integer below 2**63, or None for a fresh seed."
        )
    return int(random_state)


def resolve_seed(random_state: int | None) -> int:
    """The root seed of one estimate: ``random_state`` itself, or fresh entropy for ``None``.

    ``None`` draws 63 bits from the operating system (``numpy.random.SeedSequence()``), so
    two calls differ; estimators record the drawn seed in ``MIResult.params["random_state"]``
    and passing it back as ``random_state`` reproduces the result exactly.
    """
    if random_state is None:
        return int(np.random.SeedSequence().entropy) % SEED_LIMIT
    return check_seed(random_state)


def derive_seed(root: int | None, *key: KeyPart) -> int:
    """Derive a 63-bit seed from a root seed and a stable key.

    ``derive_seed(0, "bootstrap")`` is the same on every machine, process and Python run.
    """
    root = check_seed(root)
    seq = np.random.SeedSequence([root, *_key_words(key)])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def derive_rng(root: int | None, *key: KeyPart) -> np.random.Generator:
    """A numpy Generator seeded by :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(root, *key))
