//! Spin variables with errors an operator can act on.

use spin_sdk::variables;

/// A variable that must be set and non-empty; the error names it.
pub fn required(name: &str) -> Result<String, String> {
    match variables::get(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(format!(
            "variable {name} is empty: set SPIN_VARIABLE_{}",
            name.to_ascii_uppercase()
        )),
        Err(e) => Err(format!("variable {name} is not available: {e}")),
    }
}

/// A variable that may be unset or empty.
pub fn optional(name: &str) -> Option<String> {
    variables::get(name).ok().filter(|v| !v.trim().is_empty())
}

/// The token a caller sends from a token variable (one token, or a comma list during a
/// rotation: the first listed); the error names the variable.
pub fn sending_token(name: &str) -> Result<String, String> {
    let list = required(name)?;
    ipai_core::auth::sending_token(&list)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "variable {name} lists no token: set SPIN_VARIABLE_{}",
                name.to_ascii_uppercase()
            )
        })
}
