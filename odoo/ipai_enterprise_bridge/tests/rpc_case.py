"""A test case that calls Odoo over its real ``/jsonrpc`` as a given user, on the test's own
transaction (rolled back with it): what an outside caller — the bus, a portal user, a script
holding an employee's password — can and cannot do. Not an HttpCase: the requests run in this
test's transaction through Odoo's test mode, so the records a test creates are visible to them.
"""

import json

import odoo
from odoo.tests import TransactionCase
from odoo.tests.common import Opener

ACCESS_ERROR = "odoo.exceptions.AccessError"


class RpcCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Requests to the server run on this test's transaction (and are rolled back with it).
        cls.registry.enter_test_mode(cls.cr)
        cls.addClassCleanup(cls.registry.leave_test_mode)
        cls.opener = Opener(cls.cr)
        cls.jsonrpc_url = "http://127.0.0.1:%d/jsonrpc" % odoo.service.server.server.httpd.server_port

    def rpc(self, user, model, method, *args, **kwargs):
        """``execute_kw`` as ``user`` (password = login, as new_test_user sets it): the result,
        or the error's ``data`` (``name`` is the exception's class)."""
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {
                "service": "object",
                "method": "execute_kw",
                "args": [self.env.cr.dbname, user.id, user.login, model, method, list(args), kwargs],
            },
        }
        response = self.opener.post(self.jsonrpc_url, data=json.dumps(body),
                                    headers={"Content-Type": "application/json"}, timeout=30)
        self.assertEqual(response.status_code, 200)
        answer = response.json()
        if "error" in answer:
            return {"refused": answer["error"]["data"]}
        return {"result": answer["result"]}

    def assertRefused(self, outcome, error=ACCESS_ERROR):
        self.assertIn("refused", outcome, "expected a refusal, got %r" % (outcome,))
        self.assertEqual(outcome["refused"]["name"], error, outcome["refused"].get("message"))
