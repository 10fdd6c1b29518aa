//! The subset of Spin's application manifest (`spin.toml`, manifest version 2) this host
//! runs: variables, HTTP and cron triggers, and components with their variables and
//! allowed outbound hosts. Unknown keys are ignored, as Spin ignores other triggers' keys.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    #[serde(default)]
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
    /// Folder of the manifest: component sources are relative to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub description: Option<String>,
}

/// `[application]`: what `/.well-known/spin/info` reports.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Application {
    #[serde(default)]
    pub name: String,
    pub version: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct HttpTrigger {
    pub route: RouteSpec,
    pub component: String,
}

/// `route = "/path"`, `route = "/prefix/..."` or `route = { private = true }`.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum RouteSpec {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize, Clone)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables the component's WASI environment holds, as in Spin.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let mut m: Manifest = toml::from_str(&text)
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        if m.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version must be 2, got {}",
                m.spin_manifest_version
            );
        }
        m.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                bail!(
                    "trigger for route {:?} names unknown component {:?}",
                    t.route,
                    t.component
                );
            }
        }
        for t in &m.trigger.cron {
            if !m.component.contains_key(&t.component) {
                bail!("cron trigger names unknown component {:?}", t.component);
            }
        }
        Ok(m)
    }

    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        self.base_dir.join(&component.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_private_routes_and_variables() {
        let m: Manifest = toml::from_str(
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
            [variables]
            db_url = { required = true, secret = true }
            token = { default = "t" }
            [[trigger.http]]
            route = "/a/..."
            component = "a"
            [[trigger.http]]
            route = { private = true }
            component = "a"
            [[trigger.cron]]
            component = "a"
            cron_expression = "*/5 * * * * *"
            [component.a]
            source = "a.wasm"
            allowed_outbound_hosts = ["postgres://{{ db_host }}"]
            [component.a.variables]
            db_url = "{{ db_url }}"
            [component.a.build]
            command = "cargo build"
            "#,
        )
        .unwrap();
        assert_eq!(
            m.trigger.http[1].route,
            RouteSpec::Private { private: true }
        );
        assert!(m.variables["db_url"].required);
        assert_eq!(m.trigger.cron[0].cron_expression, "*/5 * * * * *");
    }
}
