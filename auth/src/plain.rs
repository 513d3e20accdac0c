//! RFC 4616 PLAIN: `[authzid] NUL authcid NUL passwd`.

/// The credentials of one PLAIN message.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The identity to act as; empty or equal to `username`.
    pub authzid: String,
    /// The user authenticating.
    pub username: String,
    /// The password (or a service-account token).
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why a PLAIN message is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// Not three NUL-separated fields.
    #[error("expected authzid NUL username NUL password")]
    Fields,
    /// A field is not UTF-8.
    #[error("not UTF-8")]
    Utf8,
    /// The user name or the password is empty.
    #[error("empty user name or password")]
    Empty,
    /// The client asked to act as another identity.
    #[error("authorization id differs from the user name")]
    Authzid,
}

/// Parses a PLAIN message.
pub fn parse_plain(message: &[u8]) -> Result<PlainCredentials, PlainError> {
    let parts: Vec<&[u8]> = message.split(|b| *b == 0).collect();
    let [authzid, username, password] = parts.as_slice() else {
        return Err(PlainError::Fields);
    };
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| PlainError::Utf8);
    let (authzid, username, password) = (text(authzid)?, text(username)?, text(password)?);
    if username.is_empty() || password.is_empty() {
        return Err(PlainError::Empty);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::Authzid);
    }
    Ok(PlainCredentials { authzid, username, password })
}

/// The PLAIN message a client sends: `NUL username NUL password`.
pub fn encode_plain(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + password.len());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused() {
        let parsed = parse_plain(&encode_plain("alice", "pw")).expect("valid");
        assert_eq!((parsed.username.as_str(), parsed.password.as_str()), ("alice", "pw"));
        assert!(parse_plain(b"alice\0alice\0pw").is_ok(), "authzid equal to the user");
        assert_eq!(parse_plain(b"bob\0alice\0pw"), Err(PlainError::Authzid));
        assert_eq!(parse_plain(b"\0alice"), Err(PlainError::Fields));
        assert_eq!(parse_plain(b"\0alice\0pw\0x"), Err(PlainError::Fields));
        assert_eq!(parse_plain(b"\0\0pw"), Err(PlainError::Empty));
        assert_eq!(parse_plain(b"\0alice\0"), Err(PlainError::Empty));
        assert_eq!(parse_plain(b"\0al\xffice\0pw"), Err(PlainError::Utf8));
        assert!(!format!("{parsed:?}").contains("pw\""), "Debug hides the password");
    }
}
