//! The event taxonomy and the routing table (SPEC §4): data in one place, so a new domain
//! is one `Route` entry plus one handler component.

/// A business domain: one aggregate type, one handler component, a set of event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    /// Name used in metrics and summaries (`expense`, `asset`, `finance`).
    pub name: &'static str,
    /// The `aggregate_type` every event of this domain must carry.
    pub aggregate_type: &'static str,
    /// The Spin component that handles the domain (reached as `<handler>.spin.internal`).
    pub handler: &'static str,
    /// The event types of the domain, fully qualified.
    pub event_types: &'static [&'static str],
}

/// The routing table: domain → aggregate type → handler.
pub const ROUTES: &[Domain] = &[
    Domain {
        name: "expense",
        aggregate_type: "expense",
        handler: "expense-handler",
        event_types: &[
            "expense.submitted",
            "expense.approved",
            "expense.rejected",
            "expense.paid",
        ],
    },
    Domain {
        name: "asset",
        aggregate_type: "asset_booking",
        handler: "asset-handler",
        event_types: &[
            "asset.reserved",
            "asset.checked_out",
            "asset.checked_in",
            "asset.overdue",
        ],
    },
    Domain {
        name: "finance",
        aggregate_type: "finance_task",
        handler: "finance-handler",
        event_types: &[
            "finance_task.created",
            "finance_task.in_progress",
            "finance_task.submitted",
            "finance_task.approved",
            "finance_task.filed",
            "finance_task.overdue",
        ],
    },
];

/// The bus's own events: sent by the addon like any event (signed, queued, dispatched), about
/// the bus rather than the business, so they are kept out of [`ROUTES`] (no dashboards, no
/// samples, no plans). `bus.digest` is the reconciliation's digest (SPEC §11).
pub const BUS_ROUTES: &[Domain] = &[Domain {
    name: "reconcile",
    aggregate_type: "digest",
    handler: "reconcile-handler",
    event_types: &["bus.digest"],
}];

/// The domain an event type belongs to (a business domain or the bus's own), or `None` for
/// an unknown event type.
pub fn domain_of(event_type: &str) -> Option<&'static Domain> {
    ROUTES
        .iter()
        .chain(BUS_ROUTES)
        .find(|d| d.event_types.contains(&event_type))
}

/// Every business event type, in taxonomy order (the bus's own are in [`BUS_ROUTES`]).
pub fn all_event_types() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().flat_map(|d| d.event_types.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_of_the_spec_routes_to_its_handler() {
        assert_eq!(all_event_types().count(), 14);
        assert_eq!(
            domain_of("expense.paid").map(|d| d.handler),
            Some("expense-handler")
        );
        assert_eq!(
            domain_of("asset.overdue").map(|d| d.aggregate_type),
            Some("asset_booking")
        );
        assert_eq!(
            domain_of("finance_task.filed").map(|d| d.handler),
            Some("finance-handler")
        );
    }

    #[test]
    fn the_digest_routes_to_the_reconcile_handler_but_is_no_business_event() {
        let d = domain_of("bus.digest").expect("bus.digest routes");
        assert_eq!(
            (d.name, d.aggregate_type, d.handler),
            ("reconcile", "digest", "reconcile-handler")
        );
        assert!(!all_event_types().any(|t| t == "bus.digest"));
    }

    #[test]
    fn unknown_and_prefix_only_event_types_have_no_domain() {
        assert!(domain_of("invoice.created").is_none());
        assert!(domain_of("expense").is_none());
        assert!(domain_of("expense.").is_none());
    }

    #[test]
    fn event_types_are_unique_and_prefixed_by_their_domain_family() {
        let all: Vec<_> = all_event_types().collect();
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
        for d in ROUTES {
            let prefix = d.event_types[0].split('.').next().unwrap_or_default();
            assert!(d
                .event_types
                .iter()
                .all(|t| t.starts_with(&format!("{prefix}."))));
        }
    }
}
