//! approvals: `POST /mattermost/actions`, Mattermost's interactive-button callback.
//! Verifies the signed context, approves or refuses the expense report in Odoo once, and
//! answers Mattermost with an `update` replacing the buttons by the outcome
//! (`ipai_handlers::approvals`).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    ipai_handlers::approvals::serve(req, out).await
}
