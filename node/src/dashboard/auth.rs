//! Who may see the dashboard. A browser logs in once with the swarm's dashboard token
//! (`covey swarm dashboard-token`) and then holds a session cookie (HttpOnly,
//! SameSite=Strict) that names its expiry and carries an HMAC of it keyed by the token;
//! a script may send the token itself as a bearer token. Nothing is kept per session:
//! any manager checks a cookie against the token in its store, and rotating the token
//! ends every session.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::HeaderMap;
use ring::hmac;

use crate::manager::ca::secrets_match;

pub const SESSION_COOKIE: &str = "covey_session";
/// How long a login lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);

/// Whether `headers` carry `token` (as a bearer token) or a live session made with it.
/// An empty token (a swarm made before the dashboard) lets no one in.
pub fn allowed(token: &str, headers: &HeaderMap, now_secs: u64) -> bool {
    if token.is_empty() {
        return false;
    }
    if let Some(given) = bearer(headers) {
        return secrets_match(given.as_bytes(), token.as_bytes());
    }
    cookie(headers, SESSION_COOKIE).is_some_and(|value| session_valid(token, value, now_secs))
}

/// The `Set-Cookie` value that logs a browser in until `SESSION` from now.
pub fn session_cookie(token: &str, now_secs: u64) -> String {
    let expiry = now_secs + SESSION.as_secs();
    format!(
        "{SESSION_COOKIE}={expiry}.{}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
        hex::encode(mac(token, expiry).as_ref()),
        SESSION.as_secs()
    )
}

/// The `Set-Cookie` value that logs a browser out.
pub fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

fn mac(token: &str, expiry: u64) -> hmac::Tag {
    hmac::sign(&key(token), signed(expiry).as_bytes())
}

fn key(token: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes())
}

/// What a session's HMAC covers: its expiry, under a name no other use of the token has.
fn signed(expiry: u64) -> String {
    format!("covey-dashboard-session:{expiry}")
}

/// `<expiry>.<hex HMAC>`: unexpired, and signed with `token` (checked in constant time).
fn session_valid(token: &str, value: &str, now_secs: u64) -> bool {
    let Some((expiry, tag)) = value.split_once('.') else {
        return false;
    };
    let (Ok(expiry), Ok(tag)) = (expiry.parse::<u64>(), hex::decode(tag)) else {
        return false;
    };
    expiry > now_secs && hmac::verify(&key(token), signed(expiry).as_bytes(), &tag).is_ok()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of cookie `name`, from any of the request's Cookie headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const NOW: u64 = 1_700_000_000;

    fn with(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    /// The cookie's `name=value` part, as a browser sends it back.
    fn sent_back(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_string()
    }

    #[test]
    fn a_session_lets_in_until_it_expires_or_the_token_changes() {
        let set = session_cookie("tok-a", NOW);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let h = with(COOKIE, &format!("theme=dark; {}", sent_back(&set)));
        assert!(allowed("tok-a", &h, NOW + 60));
        assert!(!allowed("tok-a", &h, NOW + SESSION.as_secs()), "expired");
        assert!(!allowed("tok-b", &h, NOW + 60), "rotated");
        assert!(!allowed("", &h, NOW + 60), "no token, no entry");
    }

    #[test]
    fn forged_or_missing_credentials_are_refused() {
        assert!(!allowed("tok", &HeaderMap::new(), NOW));
        let later = NOW + 10 * SESSION.as_secs();
        let real = sent_back(&session_cookie("tok", NOW));
        let tag = real.split_once('.').unwrap().1;
        // A later expiry with the old tag: the HMAC covers the expiry.
        let forged = format!("{SESSION_COOKIE}={later}.{tag}");
        assert!(!allowed("tok", &with(COOKIE, &forged), NOW));
        for junk in ["", "x", "1.zz", "notanumber.00"] {
            let h = with(COOKIE, &format!("{SESSION_COOKIE}={junk}"));
            assert!(!allowed("tok", &h, NOW), "{junk:?}");
        }
    }

    #[test]
    fn bearer_tokens() {
        assert!(allowed("tok", &with(AUTHORIZATION, "Bearer tok"), NOW));
        assert!(!allowed("tok", &with(AUTHORIZATION, "Bearer tok2"), NOW));
        assert!(!allowed("tok", &with(AUTHORIZATION, "Basic tok"), NOW));
    }
}
