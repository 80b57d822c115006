"""User-facing estimators and the ``method=`` registry."""

from distmi.estimators.registry import MethodSpec, available_methods, get_method, register_method

__all__ = ["MethodSpec", "available_methods", "get_method", "register_method"]
