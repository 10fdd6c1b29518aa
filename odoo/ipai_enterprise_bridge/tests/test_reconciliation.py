"""Reconciliation, the addon's side (SPEC §11), in a real Odoo:

* the hourly digest (cron ``ir_cron_ipai_send_digest``) and the administrators' "Send digest
  now" queue a ``bus.digest`` row per window whose rows are all final, with the payload the
  bus checks (its SHA-256 computed here independently), sent by the normal sender; an
  unchanged window is not queued again, a changed one is; the button adds the current hour;
* the bus's healing call ``ipai_resend_keys`` over the real JSON-RPC endpoint: the bus's
  integration user requeues rows, every other user (administrators included) is refused.

    odoo-bin -d <db> --test-enable --test-tags /ipai_enterprise_bridge
"""

import datetime as dt
import hashlib
import json
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..utils.ipai_webhook import IpaiResponse
from . import rpc_case

SEND = "odoo.addons.ipai_enterprise_bridge.models.ipai_event_queue.send_ipai_event"
SENDER_CRON = "ipai_enterprise_bridge.ir_cron_ipai_send_events"
DIGEST_CRON = "ipai_enterprise_bridge.ir_cron_ipai_send_digest"
BUS_GROUP = "ipai_enterprise_bridge.group_ipai_bus"
VALIDATION_ERROR = "odoo.exceptions.ValidationError"
QUIET = {"mail_create_nolog": True, "mail_create_nosubscribe": True, "tracking_disable": True}

# A fixed "now" long past, so rows the test did not place (created at the real time) are
# outside every window it looks at.
NOW = dt.datetime(2020, 3, 2, 10, 20, 30)
H8, H9, H10 = (dt.datetime(2020, 3, 2, h) for h in (8, 9, 10))


def expected_sha(keys):
    """SPEC §11, independently of utils/digest.py: sorted UTF-8 bytes joined by \\n."""
    return hashlib.sha256(b"\n".join(sorted(k.encode("utf-8") for k in keys))).hexdigest()


def accepted(*_args, **_kw):
    return IpaiResponse(202, {"id": "bus-id", "status": "queued"})


class QueueRows:
    """Places queue rows at chosen creation times and states."""

    def place(self, key, state, created, event_type="expense.paid", attempts=0):
        row = self.env["ipai.event.queue"].sudo().with_context(QUIET).create({
            "event_type": event_type,
            "aggregate_type": "digest" if event_type == "bus.digest" else "expense",
            "aggregate_id": key,
            "idempotency_key": key,
            "body": json.dumps({"event_type": event_type, "key": key}),
            "state": state,
            "attempts": attempts,
        })
        self.env.flush_all()
        self.env.cr.execute("UPDATE ipai_event_queue SET create_date = %s WHERE id = %s", [created, row.id])
        row.invalidate_recordset(["create_date"])
        return row

    def digests(self):
        return self.env["ipai.event.queue"].sudo().search([("event_type", "=", "bus.digest")], order="id")

    def new_digests(self, before):
        return self.digests() - before

    def triggers(self):
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", self.env.ref(SENDER_CRON).id)])


@tagged("post_install", "-at_install")
class TestDigest(TransactionCase, QueueRows):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        icp = cls.env["ir.config_parameter"].sudo()
        icp.set_param("ipai.webhook.url", "http://127.0.0.1:9/odoo-webhook")
        icp.set_param("ipai.webhook.secret", "test-secret")
        cls.Queue = cls.env["ipai.event.queue"].sudo()
        cls.db = cls.env.cr.dbname
        cls.admin = new_test_user(cls.env, login="digest_admin", groups="base.group_user,base.group_system")
        cls.internal = new_test_user(cls.env, login="digest_internal", groups="base.group_user")

    def setUp(self):
        super().setUp()
        # Hour 08: three sent rows (keys whose byte order differs from a naive guess), a
        # failed and a cancelled one (final, not listed), and a digest row (ignored).
        self.sent8 = ["expense:10:expense.paid:20200302T080500", "Zulu:asset", "expense:9:expense.paid:20200302T080400"]
        for i, key in enumerate(self.sent8):
            self.place(key, "sent", H8 + dt.timedelta(minutes=5 + i))
        self.failed8 = self.place("expense:3:expense.paid:failed", "failed", H8 + dt.timedelta(minutes=30))
        self.place("expense:4:expense.paid:cancelled", "cancelled", H8 + dt.timedelta(minutes=31))
        self.place("digest/other/2020-03-02T07:00:00Z", "sent", H8 + dt.timedelta(minutes=1), event_type="bus.digest")
        # Hour 09: one row still on its way: not digested yet.
        self.place("h9:sent", "sent", H9 + dt.timedelta(minutes=1))
        self.pending9 = self.place("h9:pending", "pending", H9 + dt.timedelta(minutes=2), attempts=3)
        # The current hour (10:00-10:20:30): digested only on demand.
        self.place("h10:sent", "sent", H10 + dt.timedelta(minutes=5))
        # Beyond the 7-day horizon.
        self.place("old:sent", "sent", H8 - dt.timedelta(days=8))

    def payload(self, row):
        body = json.loads(row.body)
        self.assertEqual((body["event_type"], body["aggregate_type"], body["source"]), ("bus.digest", "digest", "odoo"))
        return body["aggregate_id"], body["payload"]

    def expected(self, start, end, keys):
        ws, we = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
        sha = expected_sha(keys)
        payload = {"window_start": ws, "window_end": we, "count": len(keys),
                   "keys": sorted(keys, key=lambda k: k.encode("utf-8")), "keys_sha256": sha}
        return "%s:%s" % (self.db, ws), payload, "digest/%s/%s/%s/%s" % (self.db, ws, we, sha)

    def test_the_cron_is_hourly_and_calls_the_digest(self):
        cron = self.env.ref(DIGEST_CRON)
        self.assertEqual((cron.name, cron.interval_number, cron.interval_type, cron.code.strip(), cron.active),
                         ("IPAI: send the reconciliation digest", 1, "hours", "model._cron_send_digest()", True))
        before = self.digests()
        with freeze_time(NOW):
            self.Queue._cron_send_digest()
        self.assertEqual(len(self.new_digests(before)), 1)

    def test_a_closed_hour_of_final_rows_is_digested_exactly_once(self):
        before, woken = self.digests(), self.triggers()
        queued = self.Queue._ipai_send_digests(now=NOW)
        new = self.new_digests(before)
        self.assertEqual(new, queued)
        self.assertEqual(len(new), 1, "hour 08 only: 09 has a pending row, 10 is open, the old row is too old")
        aggregate_id, payload = self.payload(new)
        agg, want, key = self.expected(H8, H9, self.sent8)
        self.assertEqual(aggregate_id, agg)
        self.assertEqual(payload, want)
        self.assertEqual(payload["keys"], ["Zulu:asset", "expense:10:expense.paid:20200302T080500",
                                           "expense:9:expense.paid:20200302T080400"])
        self.assertEqual((new.idempotency_key, new.aggregate_id, new.state), (key, agg, "pending"))
        self.assertEqual(self.triggers(), woken + 1, "the sender is woken like for any event")
        tracked = self.env["ipai.bus.digest"].search([("queue_id", "=", new.id)])
        self.assertEqual((tracked.aggregate_id, tracked.window_start, tracked.window_end, tracked.key_count,
                          tracked.keys_sha256), (agg, H8, H9, 3, payload["keys_sha256"]))
        # Nothing changed: nothing queued again.
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW))
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW + dt.timedelta(minutes=30)))
        self.assertEqual(self.new_digests(before), new)
        # An hour later hour 10 is closed: its digest alone; 08 unchanged, 09 still waits.
        later = self.Queue._ipai_send_digests(now=NOW + dt.timedelta(hours=1))
        self.assertEqual(later.mapped("aggregate_id"), ["%s:2020-03-02T10:00:00Z" % self.db])
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW + dt.timedelta(hours=1)))

    def test_a_window_is_digested_again_when_a_row_of_it_changes_state(self):
        first = self.Queue._ipai_send_digests(now=NOW)
        # The failed row is requeued: its window is not final any more.
        self.failed8.action_requeue()
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW))
        # The sender sends it (and the rest): the window now lists it, under a new key.
        with patch(SEND, side_effect=accepted) as send:
            self.Queue._ipai_send_due()
        self.assertEqual(self.failed8.state, "sent")
        self.assertEqual(self.pending9.state, "sent")
        sent_bodies = {c.args[3]: c.args[2] for c in send.call_args_list}
        self.assertEqual(sent_bodies[first.idempotency_key], first.body, "the digest went out like any event")
        self.assertEqual(first.state, "sent")
        before = self.digests()
        again = self.Queue._ipai_send_digests(now=NOW)
        self.assertEqual(len(again), 2, "hour 08 again, and hour 09 now that its rows are final")
        by_agg = {row.aggregate_id: row for row in again}
        agg8, want8, key8 = self.expected(H8, H9, self.sent8 + [self.failed8.idempotency_key])
        self.assertEqual(self.payload(by_agg[agg8]), (agg8, want8))
        self.assertEqual(by_agg[agg8].idempotency_key, key8)
        self.assertNotEqual(key8, first.idempotency_key)
        self.assertEqual(first.aggregate_id, agg8, "the same window: the bus replaces it")
        agg9, want9, _key9 = self.expected(H9, H10, ["h9:sent", "h9:pending"])
        self.assertEqual(self.payload(by_agg[agg9]), (agg9, want9))
        self.assertEqual(self.new_digests(before), again)
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW))

    def test_send_digest_now_adds_the_current_hour_and_the_hourly_digest_replaces_it(self):
        before = self.digests()
        with freeze_time(NOW):
            action = self.Queue.with_user(self.admin).browse().action_send_digest_now()
        self.assertEqual(action["tag"], "display_notification")
        new = self.new_digests(before)
        self.assertEqual(len(new), 2, "hour 08 and the open hour 10; 09 still waits")
        opened = new.filtered(lambda r: r.aggregate_id == "%s:2020-03-02T10:00:00Z" % self.db)
        agg, want, key = self.expected(H10, NOW, ["h10:sent"])
        self.assertEqual(self.payload(opened), (agg, want))
        self.assertEqual(want["window_end"], "2020-03-02T10:20:30Z")
        self.assertEqual(opened.idempotency_key, key)
        # Pressed again at once: the same content, nothing new.
        with freeze_time(NOW):
            self.Queue.with_user(self.admin).action_send_digest_now()
        self.assertEqual(self.new_digests(before), new)
        # The hourly run after 11:00: the same window_start, its end now the hour's end.
        with freeze_time(NOW + dt.timedelta(hours=1)):
            self.Queue._cron_send_digest()
        hourly = self.new_digests(before) - new
        agg, want, key = self.expected(H10, H10 + dt.timedelta(hours=1), ["h10:sent"])
        self.assertEqual(len(hourly), 1)
        self.assertEqual(self.payload(hourly), (agg, want))
        self.assertEqual(hourly.idempotency_key, key)

    def test_the_open_hour_waits_for_its_rows_too(self):
        self.place("h10:pending", "pending", H10 + dt.timedelta(minutes=6))
        before = self.digests()
        with freeze_time(NOW):
            self.Queue.with_user(self.admin).action_send_digest_now()
        self.assertEqual(self.new_digests(before).mapped("aggregate_id"), ["%s:2020-03-02T08:00:00Z" % self.db])

    def test_only_administrators_send_the_digest_and_only_when_configured(self):
        with self.assertRaises(AccessError):
            self.Queue.with_user(self.internal).action_send_digest_now()
        self.env["ir.config_parameter"].sudo().set_param("ipai.webhook.url", "")
        before = self.digests()
        with self.assertRaises(UserError):
            self.Queue.with_user(self.admin).action_send_digest_now()
        self.assertFalse(self.Queue._ipai_send_digests(now=NOW))
        self.assertFalse(self.new_digests(before))


@tagged("post_install", "-at_install")
class TestHealingOverRpc(rpc_case.RpcCase, QueueRows):
    """``ipai_resend_keys`` and "Send digest now" through ``/jsonrpc`` as each user (see
    test_access_over_rpc.py for why this is not an HttpCase)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        icp = cls.env["ir.config_parameter"].sudo()
        icp.set_param("ipai.webhook.url", "http://127.0.0.1:9/odoo-webhook")
        icp.set_param("ipai.webhook.secret", "test-secret")
        cls.bus = new_test_user(cls.env, login="heal_bus", groups="base.group_user,%s" % BUS_GROUP)
        cls.admin = new_test_user(cls.env, login="heal_admin", groups="base.group_user,base.group_system")
        cls.internal = new_test_user(cls.env, login="heal_internal", groups="base.group_user")
        cls.portal = new_test_user(cls.env, login="heal_portal", groups="base.group_portal")

    def test_only_the_bus_user_may_have_rows_sent_again(self):
        now = fields.Datetime.now()
        sent = self.place("heal:sent", "sent", now - dt.timedelta(hours=2))
        failed = self.place("heal:failed", "failed", now - dt.timedelta(hours=2), attempts=4)
        cancelled = self.place("heal:cancelled", "cancelled", now - dt.timedelta(hours=2))
        body, key = sent.body, sent.idempotency_key
        # Everyone else is refused, the administrators included, and nothing moves.
        for who, user in (("administrator", self.admin), ("internal user", self.internal), ("portal", self.portal)):
            with self.subTest(user=who):
                self.assertRefused(self.rpc(user, "ipai.event.queue", "ipai_resend_keys", ["heal:sent", "heal:failed"]))
        self.assertEqual((sent.state, failed.state, failed.attempts), ("sent", "failed", 4))
        public = self.env.ref("base.public_user")
        with self.assertRaises(AccessError):
            self.env["ipai.event.queue"].with_user(public).ipai_resend_keys(["heal:sent"])
        # The bus: its rows go back to pending, due now, under their own key and body.
        woken = self.triggers()
        answer = self.rpc(self.bus, "ipai.event.queue", "ipai_resend_keys",
                          ["heal:sent", "heal:nope", "heal:failed", "heal:cancelled", "heal:sent"])
        self.assertEqual(answer, {"result": {"requeued": ["heal:sent", "heal:failed"], "unknown": ["heal:nope"],
                                             "cancelled": ["heal:cancelled"]}})
        self.env.invalidate_all()
        for row in (sent, failed):
            self.assertEqual((row.state, row.attempts), ("pending", 0))
            self.assertLessEqual(row.next_attempt_at, fields.Datetime.now())
        self.assertEqual((sent.body, sent.idempotency_key), (body, key))
        self.assertEqual(cancelled.state, "cancelled", "an administrator's cancellation stands")
        self.assertEqual(self.triggers(), woken + 1)
        # And the sender sends them again with their original key.
        with patch(SEND, side_effect=accepted) as send:
            self.env["ipai.event.queue"].sudo()._ipai_send_due()
        self.assertIn((body, key), [c.args[2:4] for c in send.call_args_list])
        self.assertEqual(sent.state, "sent")

    def test_the_bus_gets_a_clear_error_for_a_bad_request(self):
        for bad in ("heal:sent", [1, 2], [["nested"]], ["k%d" % i for i in range(10001)]):
            with self.subTest(bad=str(bad)[:40]):
                self.assertRefused(self.rpc(self.bus, "ipai.event.queue", "ipai_resend_keys", bad), VALIDATION_ERROR)
        self.assertEqual(self.rpc(self.bus, "ipai.event.queue", "ipai_resend_keys", []),
                         {"result": {"requeued": [], "unknown": [], "cancelled": []}})

    def test_send_digest_now_over_rpc_is_for_administrators(self):
        self.place("rpc:sent", "sent", fields.Datetime.now() - dt.timedelta(hours=1))
        before = self.digests()
        for who, user in (("internal user", self.internal), ("portal", self.portal), ("bus", self.bus)):
            with self.subTest(user=who):
                self.assertRefused(self.rpc(user, "ipai.event.queue", "action_send_digest_now", []))
        self.assertFalse(self.new_digests(before))
        self.assertIn("result", self.rpc(self.admin, "ipai.event.queue", "action_send_digest_now", []))
        new = self.new_digests(before)
        self.assertEqual(len(new), 1)
        self.assertEqual(json.loads(new.body)["payload"]["keys"], ["rpc:sent"])
