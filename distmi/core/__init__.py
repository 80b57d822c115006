"""Bottom layer: exceptions, validation, seeds, result types. Imports nothing else of distmi."""

from distmi.core.errors import (
    ConstantColumnError,
    CorruptDataError,
    DistmiError,
    EstimationError,
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    NonFiniteInputError,
    NonNumericInputError,
    SingleClassError,
    SpecError,
    StoreError,
    TooFewSamplesError,
    UnknownLayerError,
    UnknownMethodError,
)
from distmi.core.results import MIResult, percentile_interval
from distmi.core.seeds import check_seed, derive_rng, derive_seed

__all__ = [
    "ConstantColumnError",
    "CorruptDataError",
    "DistmiError",
    "EstimationError",
    "InvalidInputError",
    "InvalidParameterError",
    "LengthMismatchError",
    "MIResult",
    "NonFiniteInputError",
    "NonNumericInputError",
    "SingleClassError",
    "SpecError",
    "StoreError",
    "TooFewSamplesError",
    "UnknownLayerError",
    "UnknownMethodError",
    "check_seed",
    "derive_rng",
    "derive_seed",
    "percentile_interval",
]
