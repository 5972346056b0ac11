"""The urllib3 suite's cooperation probe: one GET through a ``PoolManager``.

``PoolManager(...).request("GET", url)`` reads the same in urllib3 1.26 and 2.x.
A ``PoolManager`` never looks at proxy variables of the environment (only
``ProxyManager`` or a caller such as requests does), so the loopback probe goes
straight to the slow server.  One manager is shared by every call, as an
application shares one; its pool for the server is sized for the probe's
concurrency so that no call waits for another's connection (``block=False``
would open extra connections anyway, but then log a warning per call).
"""

from __future__ import annotations

import importlib
from typing import Any

from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError

__all__ = ["probe"]

# More than any probe's concurrency: a smaller pool would serialise the calls on
# its connections and measure the pool, not urllib3's I/O.
_POOL_SIZE = 64
_managers: dict[str, Any] = {}


def _manager() -> Any:
    manager = _managers.get("default")
    if manager is None:
        # Imported here, after patch_all(); through importlib so no stubs are needed.
        urllib3: Any = importlib.import_module("urllib3")
        manager = _managers["default"] = urllib3.PoolManager(maxsize=_POOL_SIZE)
    return manager


def probe(context: ProbeContext) -> None:
    """One ``GET`` with urllib3 to the slow HTTP server (it answers after ``delay``)."""
    if not context.http_url:
        raise ProbeSetupError("the urllib3 probe needs the slow HTTP server: run it with --http")
    response = _manager().request(
        "GET", context.http_url, timeout=context.delay + 30, retries=False
    )
    if response.status != 200:
        raise RuntimeError(f"the slow server answered {response.status}")
