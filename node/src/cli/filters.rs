//! `--filter key=value` flags, as the Engine API's `filters` parameter takes them.

use serde_json::{json, Value};

/// `key=value` filters, in order.
pub fn parse_filters(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.trim().to_lowercase(), v.to_string())),
            _ => anyhow::bail!("bad format of filter (expected name=value)"),
        })
        .collect()
}

/// Filters as the Engine API's `filters` parameter: `{"key": ["value", ...]}`.
pub fn filters_json(filters: &[(String, String)]) -> Value {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (k, v) in filters {
        by_key.entry(k).or_default().push(v);
    }
    json!(by_key)
}

/// The `filters` query parameter for `flags`, if any, escaped for a path.
pub fn query(flags: &[String]) -> anyhow::Result<Option<String>> {
    let filters = parse_filters(flags)?;
    Ok((!filters.is_empty()).then(|| super::client::escape(&filters_json(&filters).to_string())))
}

/// `key=value` flags (labels, driver options) as a map; a bare `key` has an empty value.
pub fn pairs(kvs: &[String]) -> std::collections::BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_as_the_engine_api_takes_them() {
        let f =
            parse_filters(&["name=web".into(), "name=db".into(), "mode=global".into()]).unwrap();
        assert_eq!(
            filters_json(&f),
            json!({"name": ["web", "db"], "mode": ["global"]})
        );
        assert_eq!(
            parse_filters(&["web".into()]).unwrap_err().to_string(),
            "bad format of filter (expected name=value)"
        );
    }
}
