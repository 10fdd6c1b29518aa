# Odoo's test runner imports this package and runs the modules imported here (they need
# a database and the addon installed). The pure tests (test_pure_*.py) need no Odoo and
# run with `python3 -m pytest odoo` (see ../../conftest.py).
from . import test_bridge_models
from . import test_odoo18_contract
from . import test_access_over_rpc
from . import test_reconciliation
