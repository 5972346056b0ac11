"""The cooperation probes of the built-in suites, one module per library.

Each module holds the probe callable(s) a built-in manifest names in its
``[probe] callable`` (``greenpatch.compat_tests.library_probes.<suite>:probe``).
A probe makes ONE blocking call through the library, against a local server
that answers after ``context.delay`` (see ``probes.py`` for the measurement).

Like ``probes.py``, these modules are imported in the probe subprocess after
``patch_all()``; they import their client library inside the function.
"""
