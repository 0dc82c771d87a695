"""Benchmarks: every figure is a ratio against a ceiling measured in the same run.

Run ``python -m bench`` (or ``bench/run.sh``); ``python -m bench --help`` lists the options.
"""
