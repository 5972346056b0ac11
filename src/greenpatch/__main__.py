"""``python -m greenpatch`` is the ``greenpatch`` command."""

import sys

from greenpatch.cli import main

sys.exit(main())
