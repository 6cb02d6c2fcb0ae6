"""The benchmark suite behind ``make bench`` (issue 8): figures measured on this machine, written
to docs/benchmarks.md and docs/benchmarks.json. Not a test suite: nothing here asserts timing.

Run ``python -m bench --help`` for the options; ``bench/registry.py`` lists the benchmarks and is
where a new one is added."""
