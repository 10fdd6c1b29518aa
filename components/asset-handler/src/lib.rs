//! asset-handler: receives the dispatcher's asset events (private route, reached by service
//! chaining, or `/handlers/asset` with the dispatch token where chaining is unavailable).
//!
//! Until the domain logic lands (the handlers issue) it acknowledges every valid
//! envelope, so the pipeline runs end to end; bad tokens and envelopes are rejected.

use ipai_spin::handler::{answer, receive, Handled};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    match receive(req, "asset-handler").await {
        Ok(event) => {
            let effects = vec![format!(
                "received {} for {} {}",
                event.event_type, event.aggregate_type, event.aggregate_id
            )];
            answer(out, Some(&event.id), Ok(Handled::Done(effects))).await
        }
        Err(e) => answer(out, None, Err(e)).await,
    }
}
