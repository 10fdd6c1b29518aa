//! One file per route of `crate::handle` (alerts' evaluate route is `crate::alerts`), so
//! a change to one page reads and reviews on its own; the router, the request and
//! response types and the guards every route shares stay in the crate root.

pub(crate) mod dashboard;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod replay;
mod replay_page;
pub(crate) mod requeue;
pub(crate) mod retention;
