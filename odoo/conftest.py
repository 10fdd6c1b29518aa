"""pytest for the Odoo addons in this folder, without an Odoo server.

The addon's pure modules (``ipai_enterprise_bridge/utils``) import nothing from Odoo, but
they live inside an Odoo addon, imported by Odoo as ``odoo.addons.ipai_enterprise_bridge``,
whose ``__init__`` loads the models (which need the real ``odoo``). When no real Odoo is
importable, this file registers path-only stand-ins for ``odoo``, ``odoo.addons`` and the
addon package (their ``__init__`` files are not executed), so the tests import the pure
modules by the same dotted path Odoo uses. Tests that need a running Odoo (the
``TransactionCase`` ones listed in ``SERVER_TESTS``) run inside a real Odoo 18.0 under
Odoo's own runner: ``scripts/test-odoo.sh``, part of ``make test``.
"""

import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ADDON = "ipai_enterprise_bridge"
ADDON_DIR = os.path.join(HERE, ADDON)

# Server-only test modules (TransactionCase), run by scripts/test-odoo.sh as
#   odoo-bin -d <db> --test-enable --test-tags /ipai_enterprise_bridge --stop-after-init
SERVER_TESTS = [
    os.path.join(ADDON, "tests", "test_bridge_models.py"),
    os.path.join(ADDON, "tests", "test_odoo18_contract.py"),
    os.path.join(ADDON, "tests", "test_access_over_rpc.py"),
    os.path.join(ADDON, "tests", "test_reconciliation.py"),
]


def _real_odoo_available():
    try:
        import odoo.release  # noqa: F401
        import odoo.models  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "odoo" or m.startswith("odoo.")]:
            del sys.modules[name]
        return False
    return True


def _package(name, path, parent=None):
    mod = types.ModuleType(name)
    mod.__path__ = [path] if path else []
    mod.__package__ = name
    init = os.path.join(path, "__init__.py") if path else None
    if init and os.path.exists(init):
        mod.__file__ = init
    sys.modules[name] = mod
    if parent is not None:
        setattr(parent, name.rsplit(".", 1)[1], mod)
    return mod


REAL_ODOO = _real_odoo_available()

if not REAL_ODOO:
    odoo = _package("odoo", None)
    addons = _package("odoo.addons", HERE, odoo)
    bridge = _package("odoo.addons." + ADDON, ADDON_DIR, addons)
    bridge_tests = _package("odoo.addons.%s.tests" % ADDON, os.path.join(ADDON_DIR, "tests"), bridge)
    # pytest names the test modules after their folder (``ipai_enterprise_bridge.tests.test_x``):
    # the same stand-ins serve that name, so the addon's __init__ never runs here.
    sys.modules[ADDON] = bridge
    sys.modules[ADDON + ".tests"] = bridge_tests
    collect_ignore = SERVER_TESTS

# The repository root (for tests/vectors/signatures.json and the Rust taxonomy).
REPO_ROOT = os.path.dirname(HERE)


def _load_vectors():
    import json

    with open(os.path.join(REPO_ROOT, "tests", "vectors", "signatures.json"), encoding="utf-8") as f:
        return json.load(f)["cases"]


try:
    import pytest
except ImportError:  # imported by Odoo's runner, not pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def signature_vectors():
        """The shared cross-language vectors (also checked by the Rust core and the CLI)."""
        return _load_vectors()

    @pytest.fixture(scope="session")
    def repo_root():
        return REPO_ROOT

    @pytest.fixture
    def fake_bus():
        """A loopback HTTP server that checks requests the way ingest does."""
        from odoo.addons.ipai_enterprise_bridge.tests.fakebus import FakeBus

        bus = FakeBus(secret="bus-secret")
        bus.start()
        try:
            yield bus
        finally:
            bus.stop()

    @pytest.fixture
    def scripted_server():
        """A loopback server that misbehaves on request (reset, cut-off answer, redirect, ...)."""
        from odoo.addons.ipai_enterprise_bridge.tests.scripted_server import ScriptedServer

        server = ScriptedServer().start()
        try:
            yield server
        finally:
            server.stop()
