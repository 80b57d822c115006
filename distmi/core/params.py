"""Parameter schemas of the estimators: strict pydantic models validated in one place.

Every method's parameters are a :class:`StrictParams` model: unknown names are rejected with
the allowed list, and types are strict, so ``"7"`` is not an integer, ``True`` is not a
number and ``3.5`` is not an integer (an integer is accepted where a float is expected, and
numpy scalars such as ``np.int64(3)`` are taken as the Python numbers they hold).
:func:`parse_params` turns pydantic's errors into one
:class:`~distmi.core.errors.InvalidParameterError` that names each field, the problem and the
value received.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from distmi.core.errors import InvalidParameterError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictParams(BaseModel):
    """Base of the estimator parameter schemas (strict types, no unknown names, frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _numpy_scalars(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v.item() if isinstance(v, np.generic) else v for k, v in data.items()}
        return data


def parse_params(model: type[ModelT], what: str, params: dict[str, Any]) -> ModelT:
    """Build ``model(**params)``; pydantic errors become :class:`InvalidParameterError`.

    Args:
        model: the schema.
        what: the method's display name for messages, e.g. ``"KSG"``.
        params: the user's parameters.
    """
    try:
        return model(**params)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "parameters"
            if err["type"] == "extra_forbidden":
                allowed = sorted(model.model_fields)
                problems.append(f"unknown {what} parameter {loc!r}; allowed: {allowed}")
            else:
                problems.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise InvalidParameterError(f"invalid {what} parameters: " + "; ".join(problems)) from None
