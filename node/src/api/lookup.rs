//! Finding a cluster object as the docker CLI lets users name it: by full id, by name, or
//! by a unique id prefix; and this node's manager, which holds them.

use axum::http::StatusCode;

use super::error::ApiError;
use crate::daemon::Node as Daemon;
use crate::manager::store::Object;
use crate::manager::Manager;

/// This node's manager, or the error the docker CLI expects from a node that is none.
pub async fn manager(daemon: &Daemon) -> Result<std::sync::Arc<Manager>, ApiError> {
    daemon.swarm.manager().await.map_err(ApiError::swarm)
}

/// The one `T` that `key` names; `what` names the kind in errors ("service", "network").
pub fn find<T: Object>(
    manager: &Manager,
    what: &str,
    key: &str,
    named: impl Fn(&T, &str) -> bool,
) -> Result<T, ApiError> {
    let all = manager.store.list::<T>()?;
    if let Some(one) = all.iter().find(|o| o.id() == key) {
        return Ok(one.clone());
    }
    let by_name: Vec<&T> = all.iter().filter(|o| named(o, key)).collect();
    let matches = if by_name.is_empty() {
        all.iter().filter(|o| o.id().starts_with(key)).collect()
    } else {
        by_name
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{what} {key} not found"),
        )),
        _ => Err(ApiError::bad_request(format!(
            "{what} {key} is ambiguous ({} matches)",
            matches.len()
        ))),
    }
}

/// A name as Swarm allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most `max` characters;
/// `what` names the kind in the error ("service", "network").
pub fn check_name(what: &str, name: &str, max: usize) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && "_.-".contains(c)));
    if ok {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "invalid {what} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at most {max} characters"
    )))
}
