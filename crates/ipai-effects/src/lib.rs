//! Spin-free logic of the IPAI domain handlers and the approvals callback (SPEC §7).
//!
//! `plan` routes each event type to its effects: dashboard statements, Mattermost posts,
//! emails and calendar events, each keyed `(channel, target)` for the `deliveries` ledger.
//! The other modules build the exact requests of each outside service — Mattermost
//! webhooks and interactive buttons (HMAC-signed context), Resend emails, Google's
//! service-account token and Calendar `events.insert`, Odoo JSON-RPC — and read their
//! answers. Components execute plans and stay thin; everything here is unit-tested natively.

pub mod approval;
pub mod config;
pub mod dashboard;
pub mod deliveries;
pub mod email;
pub mod fields;
pub mod google;
pub mod mattermost;
pub mod odoo;
pub mod plan;

pub use plan::{lookup_for, plan, Effect, Found, Lookup, Plan, PlanError, Settings};
