"""The compatibility harness: run a client library's own test suite plain and
patched, and judge whether it works under greenpatch and really yields to the loop.

Entry points: ``greenpatch compat run|list`` (``cli.py``) and ``harness.run_suite``.
Nothing is imported here: the pytest plugin imports this package inside every
suite process, plain and patched, and must stay light.
"""
