//! The Engine API's `filters` query parameter: JSON, either `{"key": ["v", ...]}` or, as
//! newer docker CLIs send it, `{"key": {"v": true, ...}}`.

use std::collections::BTreeMap;

use super::error::ApiError;

/// A list endpoint's query when filters are all it takes.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct FiltersQuery {
    pub filters: Option<String>,
}

#[derive(Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the parameter, refusing keys not in `allowed` by name, as dockerd does.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Filters, ApiError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request(format!(
                "invalid filters {raw:?}: expected a JSON object"
            )));
        };
        let mut filters = BTreeMap::new();
        for (key, values) in map {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let list = match values {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(items) => items
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k)
                    .collect(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter '{key}': expected a list of values"
                    )))
                }
            };
            filters.insert(key, list);
        }
        Ok(Filters(filters))
    }

    /// Whether `key`'s filter passes: no filter on it, or `test` holds for one of its values.
    pub fn any(&self, key: &str, test: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|values| values.iter().any(|v| test(v)))
    }

    /// Whether `key` is given as true (`all=true`, `dangling=1`).
    pub fn is_true(&self, key: &str) -> bool {
        self.0
            .get(key)
            .is_some_and(|values| values.iter().any(|v| v == "true" || v == "1"))
    }

    /// Label filters: `key` or `key=value`, all of which must match.
    pub fn labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.get("label").is_none_or(|values| {
            values.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(f),
            })
        })
    }
}

/// `?force=1`: Docker's flag on removals and `swarm leave`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ForceQuery {
    force: Option<String>,
}

impl ForceQuery {
    pub fn force(&self) -> bool {
        matches!(self.force.as_deref(), Some("1" | "true" | "True"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_unknown_keys_are_named() {
        let a = Filters::parse(Some(r#"{"name":["web"]}"#), &["name"]).unwrap();
        let b = Filters::parse(Some(r#"{"name":{"web":true}}"#), &["name"]).unwrap();
        assert!(a.any("name", |v| v == "web") && b.any("name", |v| v == "web"));
        assert!(!a.any("name", |v| v == "db"));
        assert!(a.any("id", |_| false), "no filter on a key passes");
        let err = Filters::parse(Some(r#"{"colour":["red"]}"#), &["name"]).unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
        assert!(Filters::parse(Some("{nope"), &["name"]).is_err());
    }
}
