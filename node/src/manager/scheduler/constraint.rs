//! Placement constraints (`node.labels.zone == east`), with the syntax and matching of
//! swarmkit's `constraint` package: keys and label prefixes are case-insensitive, label
//! names are not, values compare case-insensitively. `engine.labels.*` are the daemon's
//! labels (`covey daemon --label`, and `covey.board`, the node's board). Unlike swarmkit, a key covey cannot
//! evaluate is refused when parsed, so a typo fails `service create` rather than leaving
//! tasks pending forever.

use super::node::NodeInfo;
use super::platform::normalize_arch;
use crate::manager::ca::Role;

const NODE_LABELS: &str = "node.labels.";
const ENGINE_LABELS: &str = "engine.labels.";

/// A constraint that cannot be parsed, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid constraint {constraint:?}: {problem}")]
pub struct ConstraintError {
    pub constraint: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("expected == or !=")]
    NoOperator,
    #[error(
        "key {0:?} is invalid: expected a letter or '_', then letters, digits, '-', '_' or '.'"
    )]
    BadKey(String),
    #[error("unknown key {0:?}: expected node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>")]
    UnknownKey(String),
    #[error("value {0:?} is invalid: expected letters, digits, spaces or :-_.*()?+[]\\^$|/")]
    BadValue(String),
    #[error("node.role is manager or worker, not {0:?}")]
    BadRole(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Id,
    Hostname,
    Role,
    Os,
    Arch,
    /// A node label's name, case kept: labels are case-sensitive.
    Label(String),
    /// An engine label's name (the daemon's own), case kept.
    EngineLabel(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Constraint {
    key: Key,
    equal: bool,
    /// Normalised for `node.platform.arch`, so that `amd64` matches a node's `x86_64`.
    value: String,
}

impl Constraint {
    pub(super) fn parse(text: &str) -> Result<Constraint, ConstraintError> {
        let fail = |problem| ConstraintError {
            constraint: text.to_string(),
            problem,
        };
        // The first operator wins; what follows must then be a plain value, so
        // `a==b!=c` fails on its value rather than being read two ways.
        let (at, equal) = match (text.find("=="), text.find("!=")) {
            (Some(e), Some(n)) if n < e => (n, false),
            (Some(e), _) => (e, true),
            (None, Some(n)) => (n, false),
            (None, None) => return Err(fail(Problem::NoOperator)),
        };
        let raw_key = text[..at].trim();
        let value = text[at + 2..].trim();
        if !valid_key(raw_key) {
            return Err(fail(Problem::BadKey(raw_key.to_string())));
        }
        if !valid_value(value) {
            return Err(fail(Problem::BadValue(value.to_string())));
        }
        let key = parse_key(raw_key).map_err(fail)?;
        let value = match key {
            Key::Arch => normalize_arch(value),
            Key::Role => {
                let v = value.to_ascii_lowercase();
                if v != "manager" && v != "worker" {
                    return Err(fail(Problem::BadRole(value.to_string())));
                }
                v
            }
            _ => value.to_string(),
        };
        Ok(Constraint { key, equal, value })
    }

    pub(super) fn matches(&self, node: &NodeInfo) -> bool {
        let found = match &self.key {
            Key::Id => self.value.eq_ignore_ascii_case(&node.id),
            Key::Hostname => self.value.eq_ignore_ascii_case(&node.hostname),
            Key::Role => {
                let role = match node.role {
                    Role::Manager => "manager",
                    Role::Worker => "worker",
                };
                self.value == role
            }
            Key::Os => self.value.eq_ignore_ascii_case(&node.os),
            Key::Arch => self.value == node.arch,
            // A missing label reads as "": `==` fails and `!=` holds, as in swarmkit.
            Key::Label(name) => node
                .labels
                .get(name)
                .is_some_and(|v| self.value.eq_ignore_ascii_case(v)),
            Key::EngineLabel(name) => node
                .engine_labels
                .get(name)
                .is_some_and(|v| self.value.eq_ignore_ascii_case(v)),
        };
        found == self.equal
    }
}

/// Parses every constraint, stopping at the first bad one.
pub(super) fn parse_all(constraints: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
    constraints.iter().map(|c| Constraint::parse(c)).collect()
}

fn parse_key(key: &str) -> Result<Key, Problem> {
    let lower = key.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "node.id" => Key::Id,
        "node.hostname" => Key::Hostname,
        "node.role" => Key::Role,
        "node.platform.os" => Key::Os,
        "node.platform.arch" => Key::Arch,
        _ if lower.starts_with(NODE_LABELS) && key.len() > NODE_LABELS.len() => {
            Key::Label(key[NODE_LABELS.len()..].to_string())
        }
        _ if lower.starts_with(ENGINE_LABELS) && key.len() > ENGINE_LABELS.len() => {
            Key::EngineLabel(key[ENGINE_LABELS.len()..].to_string())
        }
        _ => return Err(Problem::UnknownKey(key.to_string())),
    })
}

/// Swarmkit's key syntax: a letter or `_`, then at least one of letters, digits, `-_.`.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Swarmkit's value syntax: no characters that are, or may become, operators (`<`, `~`,
/// `=`, `!`), so what Docker accepts covey accepts and nothing more.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Constraint::parse(text) {
            Ok(c) => panic!("{text:?} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_keys_case_insensitively_and_keeps_label_names() {
        let c = Constraint::parse("  Node.Labels.Zone  ==  East ").expect("valid");
        assert_eq!(c.key, Key::Label("Zone".into()));
        assert!(c.equal);
        assert_eq!(c.value, "East");
        let c = Constraint::parse("NODE.ROLE!=Manager").expect("valid");
        assert_eq!(
            (c.key, c.equal, c.value.as_str()),
            (Key::Role, false, "manager")
        );
        let c = Constraint::parse("node.platform.arch==x86_64").expect("valid");
        assert_eq!(c.value, "amd64");
        let c = Constraint::parse("Engine.Labels.covey.board==pi4").expect("valid");
        assert_eq!(c.key, Key::EngineLabel("covey.board".into()));
    }

    #[test]
    fn errors_name_the_constraint_and_the_problem() {
        assert_eq!(
            err("node.labels.zone=east"),
            r#"invalid constraint "node.labels.zone=east": expected == or !="#
        );
        assert!(err("node.labels.zone==").contains(r#"value "" is invalid"#));
        assert!(err("node.labels.zone==a<b").contains(r#"value "a<b" is invalid"#));
        assert!(err("node.labels.zone==a!=b").contains("is invalid"));
        assert!(err("1node.id==x").contains(r#"key "1node.id" is invalid"#));
        assert!(err("node.labels.==x").contains(r#"unknown key "node.labels.""#));
        assert!(err("node.name==x").contains(r#"unknown key "node.name""#));
        assert!(err("engine.labels.==x").contains(r#"unknown key "engine.labels.""#));
        assert!(err("node.role==boss").contains(r#"not "boss""#));
    }
}
