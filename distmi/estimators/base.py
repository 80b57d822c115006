"""The estimator contract: one base class that every scikit-learn-style MI estimator follows.

- **Construction stores, fit computes.** ``__init__`` only stores its arguments under their
  own names; nothing is validated or computed until :meth:`MIEstimator.fit`. An unfitted
  estimator is therefore a serialisable specification (``get_params()``), which is what a Ray
  actor receives.
- **Parameters** are the ``__init__`` arguments plus, for classes that take ``**params``, the
  names of the method's parameter schema (pydantic for ``gmm``/``ksg``/``sliced``, the
  bound-aware validator of the neural bounds). :meth:`~MIEstimator.get_params`,
  :meth:`~MIEstimator.set_params` and ``sklearn.base.clone`` behave as in scikit-learn;
  unknown names raise :class:`~distmi.core.errors.InvalidParameterError` with the allowed list.
- **Fit** validates the method parameters (``MethodSpec.validate_params``), the seed, the
  number of replicates and the data, in that order, estimates through the ``method=`` registry
  (so the class, :func:`distmi.mutual_information` and a job give the same numbers), and sets
  ``result_`` (the :class:`~distmi.core.results.MIResult`), ``mi_`` (nats), ``mi_std_``,
  ``ci_`` and ``status_`` (``"ok"`` or why the value is not to be trusted).
- **Seeds**: ``random_state`` is an integer in [0, 2^63) or ``None``. ``None`` draws a fresh
  seed from the operating system on every fit and records it in ``result_.params
  ["random_state"]``; passing that number back reproduces the fit exactly.
- **Devices**: ``device`` takes ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``
  (:mod:`distmi.core.devices`).

:class:`MethodEstimator` wraps any registered method (plug-ins included) in this contract.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Self

from distmi.core.errors import InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.seeds import resolve_seed
from distmi.core.validation import (
    as_float_matrix,
    as_labels,
    check_bool,
    check_int,
    check_same_length,
)
from distmi.estimators.registry import MethodSpec, get_method

CALL_PARAMS = ("discrete_y", "n_bootstrap", "random_state")
"""Parameters of every estimator that the registry passes as keywords, not method params."""


class MIEstimator:
    """Base class of the scikit-learn-style estimators (see the module docstring).

    Subclasses set :attr:`method` (the registry name) and define ``__init__`` with explicit
    keyword arguments stored under their own names; a subclass that also takes ``**params``
    names the dict attribute holding them in :attr:`extra_params_attr` and lists the names it
    accepts in :meth:`_extra_param_names`.
    """

    method: ClassVar[str] = ""
    extra_params_attr: ClassVar[str | None] = None
    class_params: ClassVar[tuple[str, ...]] = ()  # params of the class, not of the method

    # ---- parameters ---------------------------------------------------------------------
    @classmethod
    def _init_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def _extra_param_names(self) -> tuple[str, ...]:
        """Names accepted through ``**params`` (none unless a subclass says so)."""
        return ()

    def _method_name(self) -> str:
        return self.method

    @classmethod
    def for_method(cls, name: str, **params: Any) -> Self:
        """An estimator of registry method ``name`` with ``params`` (classes serving several
        methods, such as :class:`~distmi.estimators.neural.NeuralMI`, take the name)."""
        if name != cls.method:
            raise InvalidParameterError(
                f"{cls.__name__} estimates method {cls.method!r}, not {name!r}."
            )
        return cls(**params)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters (constructor arguments), as scikit-learn defines them."""
        params = {name: getattr(self, name) for name in self._init_param_names()}
        if self.extra_params_attr is not None:
            params.update(getattr(self, self.extra_params_attr))
        return params

    def set_params(self, **params: Any) -> Self:
        """Set parameters by name; unknown names raise :class:`InvalidParameterError`."""
        init_names = self._init_param_names()
        extra_names = self._extra_param_names()
        for name, value in params.items():
            if name in init_names:
                setattr(self, name, value)
            elif name in extra_names and self.extra_params_attr is not None:
                getattr(self, self.extra_params_attr)[name] = value
            else:
                allowed = sorted({*init_names, *extra_names})
                raise InvalidParameterError(
                    f"unknown {type(self).__name__} parameter {name!r}; allowed: {allowed}"
                )
        return self

    def method_params(self) -> dict[str, Any]:
        """The parameters passed to the registry method (all but ``discrete_y``,
        ``n_bootstrap``, ``random_state`` and class-only ones such as ``NeuralMI.bound``)."""
        skip = {*CALL_PARAMS, *self.class_params}
        return {k: v for k, v in self.get_params().items() if k not in skip}

    # ---- estimation ---------------------------------------------------------------------
    def _spec(self) -> MethodSpec:
        return get_method(self._method_name())

    def estimate(self, x: Any, y: Any, z: Any = None) -> MIResult:
        """Validate parameters and data, estimate I(X; Y) (or I(X; Y | Z)); no state is set."""
        spec = self._spec()
        params = self.method_params()
        spec.check_params(params)
        seed = resolve_seed(self.random_state)
        n_bootstrap = check_int(self.n_bootstrap, "n_bootstrap", minimum=0)
        discrete_y = check_bool(self.discrete_y, "discrete_y")
        if z is not None and not spec.supports_conditional:
            raise InvalidParameterError(
                f"method {spec.name!r} does not estimate conditional MI I(X; Y | Z); drop z or "
                "use GMMMI (method='gmm'), which takes z."
            )
        x_arr = as_float_matrix(x, "x")
        if discrete_y:
            if not spec.supports_discrete_y:
                raise InvalidParameterError(
                    f"method {spec.name!r} does not support a discrete y; pass "
                    "discrete_y=False for a continuous y, or use method='gmm' or 'ksg'."
                )
            y_arr = as_labels(y, "y")[0]
        else:
            y_arr = as_float_matrix(y, "y")
        arrays = {"x": x_arr, "y": y_arr}
        if z is not None:
            arrays["z"] = as_float_matrix(z, "z")
            params["z"] = arrays["z"]
        check_same_length(**arrays)
        return spec.estimate(x_arr, y_arr, discrete_y=discrete_y, n_bootstrap=n_bootstrap,
                             random_state=seed, **params)

    def fit(self, x: Any, y: Any, z: Any = None) -> Self:
        """Estimate and store ``result_``, ``mi_``, ``mi_std_``, ``ci_``, ``status_``; returns self."""
        result = self.estimate(x, y) if z is None else self.estimate(x, y, z)
        self._set_result(result)
        return self

    def _set_result(self, result: MIResult) -> None:
        self.result_ = result
        self.mi_ = result.value
        self.mi_std_ = result.std
        self.ci_ = result.ci
        self.status_ = result.status
        self._set_fitted(result)

    def _set_fitted(self, result: MIResult) -> None:
        """Hook for method-specific fitted attributes (``n_components_``, ``null_``, ...)."""

    # ---- display ------------------------------------------------------------------------
    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        shown = []
        for name, value in self.get_params().items():
            if name in defaults and _same(defaults[name], value):
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # e.g. arrays
        return False


class MethodEstimator(MIEstimator):
    """Any registered method as a scikit-learn-style estimator (plug-ins included).

    Example:
        >>> est = MethodEstimator("ksg", k=5, n_bootstrap=20).fit(x, y)   # doctest: +SKIP
        >>> est.mi_, est.ci_                                             # doctest: +SKIP
    """

    extra_params_attr = "params"
    class_params = ("method_name",)

    def __init__(self, method_name: str = "gmm", *, discrete_y: bool = False,
                 n_bootstrap: int = 100, random_state: int | None = 0, **params: Any) -> None:
        self.method_name = method_name
        self.discrete_y = discrete_y
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.params = params

    def _method_name(self) -> str:
        return self.method_name

    @classmethod
    def for_method(cls, name: str, **params: Any) -> Self:
        return cls(name, **params)

    def set_params(self, **params: Any) -> Self:
        """Any name besides the constructor's goes to the method (checked at fit)."""
        own = {k: params.pop(k) for k in list(params) if k in self._init_param_names()}
        super().set_params(**own)
        self.params.update(params)
        return self
