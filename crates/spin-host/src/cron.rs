//! The cron trigger, as the spin-trigger-cron plugin runs it: 6-field expressions with
//! seconds first (parsed by croner with the plugin's options, so a 7-field expression is a
//! `ParseSchedule` error that stops start-up), one fresh instance per tick calling
//! `handle-cron-event` with the Unix time in seconds; no retries, no catch-up, no overlap
//! protection.

use crate::app::{App, TriggerKind};
use anyhow::{anyhow, Result};
use chrono::Utc;
use croner::Cron;
use std::sync::Arc;
use wasmtime::Store;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/spin-cron@2.0.0",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}

/// Parses a schedule exactly as the plugin does.
pub fn parse_schedule(expression: &str) -> Result<Cron> {
    Cron::new(expression)
        .with_seconds_required()
        .with_dom_and_dow()
        .parse()
        .map_err(|_| anyhow!("ParseSchedule"))
}

/// Validates every cron trigger's schedule; call before serving anything.
pub fn validate(app: &App) -> Result<Vec<(String, Cron)>> {
    app.manifest
        .trigger
        .cron
        .iter()
        .map(|t| Ok((t.component.clone(), parse_schedule(&t.cron_expression)?)))
        .collect()
}

/// Runs the schedules until the process ends.
pub fn spawn(app: Arc<App>, schedules: Vec<(String, Cron)>) {
    for (component, schedule) in schedules {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                let now = Utc::now();
                let Ok(next) = schedule.find_next_occurrence(&now, false) else {
                    eprintln!("cron: {component}: schedule has no next occurrence");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let (app, component) = (app.clone(), component.clone());
                // Ticks do not wait for each other: overlapping runs are possible, as in the plugin.
                tokio::spawn(async move {
                    if let Err(e) = tick(&app, &component).await {
                        eprintln!("cron: {component}: {e:#}");
                    }
                });
            }
        });
    }
}

async fn tick(app: &Arc<App>, component: &str) -> Result<()> {
    let loaded = app
        .components
        .get(component)
        .ok_or_else(|| anyhow!("unknown component {component}"))?
        .clone();
    let mut store = Store::new(&app.engine, app.instance_state(&loaded, TriggerKind::Cron));
    let instance = loaded.pre.instantiate_async(&mut store).await?;
    let cron = bindings::SpinCron::new(&mut store, &instance)?;
    let timestamp = Utc::now().timestamp().max(0) as u64;
    let metadata = bindings::fermyon::spin_cron::cron_types::Metadata { timestamp };
    match cron.call_handle_cron_event(&mut store, metadata).await? {
        Ok(()) => Ok(()),
        Err(bindings::fermyon::spin_cron::cron_types::Error::Other(msg)) => Err(anyhow!("{msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_schedule;

    #[test]
    fn six_fields_with_seconds_are_accepted_and_seven_are_refused() {
        assert!(parse_schedule("*/5 * * * * *").is_ok());
        assert!(parse_schedule("1/2 * * * * *").is_ok());
        assert_eq!(
            parse_schedule("*/2 * * * * * *").unwrap_err().to_string(),
            "ParseSchedule"
        );
        assert!(parse_schedule("0/2 * * * * * *").is_err());
        assert!(parse_schedule("* * * * *").is_err());
    }
}
