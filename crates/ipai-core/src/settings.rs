//! Settings read from Spin variables, parsed one way everywhere: a number within its
//! bounds, the default when the variable is unset or empty, and otherwise an error that
//! names the variable, its bounds and the value found.

use std::fmt::Display;
use std::str::FromStr;

/// `raw` (a variable's value, `None` when unset) as a number from `min` to `max`.
pub fn number<T>(name: &str, raw: Option<&str>, default: T, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Copy + Display,
{
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!(
                "variable {name} must be a number from {min} to {max}, got {v:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn unset_or_empty_is_the_default_and_a_bad_value_names_variable_bounds_and_value() {
        assert_eq!(number("n", None, 7, 1, 10), Ok(7));
        assert_eq!(number("n", Some("  "), 7, 1, 10), Ok(7));
        assert_eq!(number("n", Some(" 3 "), 7, 1, 10), Ok(3));
        assert_eq!(number("n", Some("10"), 7, 1, 10), Ok(10));
        for bad in ["0", "11", "x", "1.5", "-1"] {
            let err = number("dispatch_batch_size", Some(bad), 7, 1, 10).unwrap_err();
            assert_eq!(
                err,
                format!("variable dispatch_batch_size must be a number from 1 to 10, got {bad:?}")
            );
        }
        assert_eq!(number("f", Some("2.5"), 1.0, 1.0, 1e9), Ok(2.5));
    }
}
