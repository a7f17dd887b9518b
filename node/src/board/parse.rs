//! TOML to typed values, with an error that names the field's path and line.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::BoardError;

/// Deserializes `text`; an error names the field by its path (`reserved.memory`).
pub(super) fn toml<T: for<'de> Deserialize<'de>>(
    text: &str,
    origin: &str,
) -> Result<T, BoardError> {
    let invalid = |field: String, problem: String| BoardError::Invalid {
        origin: origin.to_string(),
        field,
        problem,
    };
    let document = toml::Deserializer::parse(text)
        .map_err(|e| invalid("(syntax)".into(), located(text, e.message(), e.span())))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // An unknown or missing key is reported on the table that holds it.
        let field = match path.as_str() {
            "." | "" => "(top level)".to_string(),
            p => p.to_string(),
        };
        invalid(field, located(text, inner.message(), inner.span()))
    })
}

/// `message (line N)`, when toml knows where.
fn located(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message.trim_end();
    match span.and_then(|s| text.get(..s.start)) {
        Some(before) => format!("{message} (line {})", before.lines().count().max(1)),
        None => message.to_string(),
    }
}

/// A size: `256MiB`, `64m`, or a number of bytes.
/// A size that may be absent (with `#[serde(default)]`).
pub(super) fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a size: a number of bytes, or one with a unit (512KiB, 64MiB, 1GiB)")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("invalid size {n}: below zero")))
        }
        fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<u64, E> {
            crate::units::parse_bytes(t).map(|n| n as u64).map_err(|_| {
                E::custom(format!(
                    "invalid size {t:?}: expected a number of bytes or one with a unit (512KiB, 64MiB, 1GiB)"
                ))
            })
        }
    }
    d.deserialize_any(Size)
}

/// A duration: `30s`, `5m`, `1m30s`.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}): expected e.g. 30s, 5m"
        ))
    })
}
