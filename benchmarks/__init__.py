"""Scripts that measure and print what a student waits on. Each runs from the repository's root
as a module, for example `.venv/bin/python -m benchmarks.roundtrip`, so it imports the tests'
helpers as `tests.support.<module>`."""
