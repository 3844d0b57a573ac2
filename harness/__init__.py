"""Shared by the tests and the benchmarks: callscreen processes on a private store, a real Asterisk
running the sample dialplan, and an AMI client that originates and follows calls.

Importable from the repository root (``tests/tests_support.py`` and the ``bench/`` scripts put it on
``sys.path``); not part of the installed package.
"""
