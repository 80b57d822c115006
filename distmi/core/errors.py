"""Exception hierarchy of distmi.

Every error a user can trigger derives from :class:`DistmiError`. Messages follow one rule:
say what was expected, what arrived, and how to fix it. Subclasses also derive from the
matching built-in (``ValueError``, ``TypeError``, ``KeyError``) so generic handlers keep working.
"""

from __future__ import annotations


class DistmiError(Exception):
    """Root of all distmi errors."""


class InvalidInputError(DistmiError, ValueError):
    """Input data has the wrong shape, type or content."""


class NonFiniteInputError(InvalidInputError):
    """Input contains NaN or +-Inf."""


class ConstantColumnError(InvalidInputError):
    """A column has zero variance, so its mutual information is undefined."""


class TooFewSamplesError(InvalidInputError):
    """Not enough samples for the requested folds, components, neighbours or batches."""


class LengthMismatchError(InvalidInputError):
    """Two inputs that must be paired row by row have different lengths."""


class NonNumericInputError(InvalidInputError, TypeError):
    """Input could not be interpreted as numbers."""


class SingleClassError(InvalidInputError):
    """A label vector has fewer than two classes."""


class InvalidParameterError(DistmiError, ValueError):
    """An estimator or job parameter has an invalid value."""


class UnknownMethodError(DistmiError, KeyError):
    """The requested estimator method is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class EstimationError(DistmiError, RuntimeError):
    """An estimator failed in a way the input could not have prevented."""


class StoreError(DistmiError):
    """Problems with an activation dataset on disk."""


class CorruptDataError(StoreError):
    """A stored file does not match its recorded content hash or cannot be parsed."""


class UnknownLayerError(StoreError, KeyError):
    """A layer name that the model or dataset does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SpecError(DistmiError, ValueError):
    """A job specification is invalid."""
