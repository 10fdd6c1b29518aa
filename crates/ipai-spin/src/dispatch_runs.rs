//! The one way a component starts delivery: `POST /dispatch` (an ingest kick, a cron
//! tick), and again at once while a run stops on its time budget, at most
//! [`MAX_RUNS_BACK_TO_BACK`] runs. Each caller only says how it logs a run's answer.

use ipai_core::dispatch::{run_stopped_on_budget, MAX_RUNS_BACK_TO_BACK};
use std::time::Duration;

/// How long one run may take before its caller gives up waiting (the run goes on).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Posts to the dispatcher at `url` until a run ends other than on its budget. `on_run`
/// sees each 200 answer's body; a non-200 answer or a transport failure ends the loop
/// with an error that names the url.
pub async fn run_back_to_back(
    url: &str,
    headers: &[(&str, String)],
    mut on_run: impl FnMut(&str),
) -> Result<(), String> {
    for _ in 0..MAX_RUNS_BACK_TO_BACK {
        let body = match crate::http::post(url, headers, Vec::new(), RUN_DEADLINE).await {
            Ok((200, body)) => body,
            Ok((status, body)) => {
                return Err(format!(
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ))
            }
            Err(e) => return Err(format!("{url}: {e}")),
        };
        on_run(&String::from_utf8_lossy(&body));
        if !run_stopped_on_budget(&body) {
            break;
        }
    }
    Ok(())
}
