//! `ipai-spin-host`: run a Spin application's components locally, like `spin up`.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

fn usage() -> ! {
    eprintln!("usage: ipai-spin-host up [--from spin.toml] [--listen 127.0.0.1:3000]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut manifest = PathBuf::from("spin.toml");
    let mut listen = "127.0.0.1:3000".to_string();
    match args.next().as_deref() {
        Some("up") => {}
        _ => usage(),
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--from" | "-f" => manifest = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let app = match ipai_spin_host::app::App::load(&manifest, |k| std::env::var(k).ok(), None) {
        Ok(app) => Arc::new(app),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(1);
        }
    };
    let schedules = match ipai_spin_host::cron::validate(&app) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            eprintln!("A trigger exited unexpectedly: cron");
            std::process::exit(1);
        }
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("Serving http://{}", listener.local_addr()?);
    println!("Available Routes:");
    for t in &app.manifest.trigger.http {
        if let ipai_spin_host::manifest::RouteSpec::Path(p) = &t.route {
            println!("  {}: http://{}{}", t.component, listener.local_addr()?, p);
        }
    }
    ipai_spin_host::cron::spawn(app.clone(), schedules);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = ipai_spin_host::http_trigger::serve(app, listener) => r,
        // Exit at once on a signal, like `spin up`: in-flight instances are abandoned
        // (their events stay claimed until the lock timeout, then are redelivered).
        _ = tokio::signal::ctrl_c() => std::process::exit(0),
        _ = term.recv() => std::process::exit(0),
    }
}
