"""Imports the Odoo addon's pure modules (``odoo/ipai_enterprise_bridge/utils``) without
Odoo: the addon package is registered path-only, so its ``__init__`` (which loads the
models and needs a real Odoo) does not run. Shared by the scripts beside this file."""

import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDON_DIR = os.path.join(ROOT, "odoo", "ipai_enterprise_bridge")

if "ipai_enterprise_bridge" not in sys.modules:
    pkg = types.ModuleType("ipai_enterprise_bridge")
    pkg.__path__ = [ADDON_DIR]
    sys.modules["ipai_enterprise_bridge"] = pkg

from ipai_enterprise_bridge.utils import events, idempotency, ipai_webhook, outbox, payloads, sender  # noqa: E402,F401
