//! A small local Spin host for development and tests.
//!
//! It reads `spin.toml` and runs the built components the way Spin 4 does — one instance
//! per request, Spin's HTTP routing and request headers, application variables,
//! `allowed_outbound_hosts`, and `spin:postgres/postgres@4.0.0` — so the product runs where
//! no Spin CLI is installed. It knows only the manifest and the WIT, never a component.

pub mod app;
pub mod cron;
pub mod http_client;
pub mod http_trigger;
pub mod manifest;
pub mod outbound;
pub mod postgres;
pub mod router;
pub mod variables;
