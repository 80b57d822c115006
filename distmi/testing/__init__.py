"""Test data with known answers, shared by the test suite and the benchmarks.

Only numpy and scipy are imported here; nothing in the library proper depends on this package.
"""
