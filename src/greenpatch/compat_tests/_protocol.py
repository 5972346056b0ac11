"""What the harness and its pytest plugin agree on (the plugin runs in another
process, in the suite's environment, so both import these names from here)."""

from __future__ import annotations

#: Environment variable naming the JSON config file of one pytest process.
CONFIG_ENV = "GREENPATCH_COMPAT_CONFIG"
#: Written after a complete SIGUSR2 stack dump, so the watchdog knows it may kill.
STACKS_DONE_MARKER = "=== greenpatch: stacks complete ==="
#: The plugin, as given to ``pytest -p``.
PLUGIN = "greenpatch.compat_tests.pytest_plugin"
