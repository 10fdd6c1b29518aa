//! expense-handler: the expense domain's side effects (SPEC §7). Reached by service chaining from
//! the dispatcher (a private route), or on `/handlers/expense` where chaining is unavailable;
//! either way only with `handler_token`. The logic is `ipai_effects::plan` (what each
//! event does), executed by `ipai_handlers` (Odoo look-ups, dashboards, at-most-once side
//! effects).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    ipai_handlers::serve(req, out, "expense-handler").await
}
