"""The test suite, a package so its helpers import as `tests.support.<module>` from the tests
and from the benchmarks (`python -m benchmarks.<name>` from the repository's root), without
any change to sys.path."""
