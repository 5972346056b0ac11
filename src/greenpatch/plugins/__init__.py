"""The plugins greenpatch ships: cooperative C drivers and ZeroMQ.

Each module here registers one ``on_import`` row of the patch registry through
the ``greenpatch.patches`` entry point, exactly as a third-party plugin would
(``docs/plugins.md``).  ``patch_all()`` arms them; a library that is never
imported (or not installed) is never touched, and ``patch_all(zmq=False)``
(``psycopg2=False``, ``psycopg=False``) leaves one out.
"""
