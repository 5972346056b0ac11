"""The cooperative twins of standard-library modules.

Each module here declares ``__target__`` (the stdlib module it replaces names in)
and ``__implements__`` (the names it provides).  It is the only place that knows
the original module; the registry swaps the names and keeps the originals.
"""
