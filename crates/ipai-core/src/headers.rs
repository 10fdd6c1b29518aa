//! Header lists as the components see them (`(name, value)` pairs, as Spin hands them
//! over): one case-insensitive lookup for every crate, since HTTP header names are.

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn names_match_in_any_case_and_the_first_value_wins() {
        let h = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("x-a".to_string(), "1".to_string()),
            ("X-A".to_string(), "2".to_string()),
        ];
        assert_eq!(header(&h, "content-type"), Some("application/json"));
        assert_eq!(header(&h, "X-a"), Some("1"));
        assert_eq!(header(&h, "missing"), None);
    }
}
