//! Spin application variables: declared in `[variables]`, resolved from
//! `SPIN_VARIABLE_<NAME>` or the default, and exposed to a component only through the
//! templates in its `[component.<id>.variables]` table — with Spin's error texts.

use crate::manifest::Manifest;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};

/// Resolved application variables (the provider side).
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared variable from `lookup` (the environment in production).
    /// Like `spin up`, refuses to start when a required variable has no value.
    pub fn resolve(manifest: &Manifest, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            if !is_valid_name(name) {
                bail!("invalid variable name {name:?}: use lowercase letters, digits and '_'");
            }
            let env = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match lookup(&env).or_else(|| decl.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if decl.required => missing.push(format!("Key(\"{name}\")")),
                None => {}
            }
        }
        if !missing.is_empty() {
            bail!(
                "no provider resolved required variable(s): [{}]",
                missing.join(", ")
            );
        }
        Ok(Self { values })
    }

    /// Expands `{{ name }}` templates (Spin's template syntax) against these variables.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated template in {template:?}");
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(v) => out.push_str(v),
                None => bail!("no variable for {name:?} (used in {template:?})"),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Spin's rule for variable names.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// The variables one component may read: its template table, expanded lazily like Spin.
#[derive(Debug, Clone)]
pub struct ComponentVariables {
    component: String,
    templates: BTreeMap<String, String>,
}

/// The `fermyon:spin/variables` error variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    InvalidName(String),
    Undefined(String),
    Provider(String),
}

impl ComponentVariables {
    pub fn new(component: &str, templates: BTreeMap<String, String>) -> Self {
        Self {
            component: component.to_string(),
            templates,
        }
    }

    pub fn get(&self, app: &AppVariables, name: &str) -> Result<String, VariableError> {
        if !is_valid_name(name) {
            return Err(VariableError::InvalidName(format!(
                "invalid variable name {name:?}"
            )));
        }
        let Some(template) = self.templates.get(name) else {
            return Err(VariableError::Undefined(format!(
                "no variable for \"{}\".\"{}\"",
                self.component, name
            )));
        };
        app.expand(template)
            .map_err(|e| VariableError::Provider(e.to_string()))
    }
}

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ipai:host/variables-host",
    });
}

use bindings::fermyon::spin::variables as wit;

/// Per-request state behind `fermyon:spin/variables@2.0.0`.
pub struct VariablesState {
    pub app: std::sync::Arc<AppVariables>,
    pub component: std::sync::Arc<ComponentVariables>,
}

impl wit::Host for VariablesState {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        self.component.get(&self.app, &name).map_err(|e| match e {
            VariableError::InvalidName(m) => wit::Error::InvalidName(m),
            VariableError::Undefined(m) => wit::Error::Undefined(m),
            VariableError::Provider(m) => wit::Error::Provider(m),
        })
    }
}

struct VariablesData;
impl wasmtime::component::HasData for VariablesData {
    type Data<'a> = &'a mut VariablesState;
}

/// Adds `fermyon:spin/variables@2.0.0` to the linker.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut VariablesState,
) -> Result<()> {
    wit::add_to_linker::<T, VariablesData>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(vars: &str) -> Manifest {
        toml::from_str(&format!("spin_manifest_version = 2\n[variables]\n{vars}")).unwrap()
    }

    #[test]
    fn environment_overrides_default_and_required_missing_refuses_to_start() {
        let m = manifest("a = { default = \"x\" }\nb = { required = true }");
        let err = AppVariables::resolve(&m, |_| None).unwrap_err().to_string();
        assert_eq!(
            err,
            "no provider resolved required variable(s): [Key(\"b\")]"
        );
        let vars =
            AppVariables::resolve(&m, |k| (k == "SPIN_VARIABLE_B").then(|| "y".into())).unwrap();
        assert_eq!(vars.expand("{{ a }}-{{b}}").unwrap(), "x-y");
    }

    #[test]
    fn a_component_reads_only_its_declared_variables() {
        let m = manifest("a = { default = \"x\" }");
        let app = AppVariables::resolve(&m, |_| None).unwrap();
        let mut t = BTreeMap::new();
        t.insert("mine".to_string(), "{{ a }}".to_string());
        let cv = ComponentVariables::new("ingest", t);
        assert_eq!(cv.get(&app, "mine").unwrap(), "x");
        assert_eq!(
            cv.get(&app, "other"),
            Err(VariableError::Undefined(
                "no variable for \"ingest\".\"other\"".into()
            ))
        );
        assert!(matches!(
            cv.get(&app, "Bad-Name"),
            Err(VariableError::InvalidName(_))
        ));
    }
}
