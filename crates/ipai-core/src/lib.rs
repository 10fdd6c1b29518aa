//! Spin-free logic of the IPAI integration bus.
//!
//! Everything a component needs to decide — which events exist and where they go, how a
//! request is authenticated, what a valid envelope is, and which HTTP status each failure
//! maps to — lives here, so it is unit-tested natively and the components stay thin
//! adapters over Spin's APIs.

pub mod auth;
pub mod db;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod handler_request;
pub mod headers;
pub mod html;
pub mod ingest;
pub mod log;
pub mod outbox;
pub mod settings;
pub mod signature;
pub mod taxonomy;

pub use envelope::Envelope;
pub use error::{ApiError, IngestError};
pub use ingest::{check_request, IngestConfig, IngestRequest, ValidEvent};
pub use taxonomy::{Domain, ROUTES};
