//! reconcile-handler: the addon's `bus.digest` events (SPEC §11). Reached like the domain
//! handlers (a private route by service chaining from the dispatcher, or `/handlers/reconcile`
//! where chaining is unavailable), only with `handler_token`. The logic is
//! `ipai_handlers::reconcile` over `ipai_reconcile` (record the window, ask Odoo to resend
//! what is missing).

use ipai_spin::handler_http::{answer, receive};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const COMPONENT: &str = "reconcile-handler";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    match receive(req, COMPONENT).await {
        Ok(event) => {
            let result = ipai_handlers::reconcile::process(&event).await;
            answer(out, COMPONENT, Some(&event.id), result).await
        }
        Err(e) => answer(out, COMPONENT, None, Err(e)).await,
    }
}
