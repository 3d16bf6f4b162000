//! The RPC credential: Bitcoin Core's cookie scheme. The node writes `DATADIR/.cookie`
//! holding `__cookie__:HEX` (mode 0600, a new secret at every start); clients send it as
//! HTTP Basic auth, user `__cookie__`, password `HEX`.

use base64::Engine as _;
use std::fmt;
use std::path::{Path, PathBuf};

/// User name of cookie authentication (as in Bitcoin Core).
pub const COOKIE_USER: &str = "__cookie__";

/// `DATADIR/.cookie`.
pub fn cookie_path(datadir: &Path) -> PathBuf {
    datadir.join(".cookie")
}

/// Why a cookie could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    /// The file could not be read.
    #[error("cannot read cookie file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold `USER:PASSWORD`.
    #[error("cookie file {path} does not hold `{COOKIE_USER}:HEX`")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// A Basic-auth credential: user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie {
    /// User name; `__cookie__` for a node's cookie.
    pub user: String,
    /// Password; the hex secret for a node's cookie.
    pub password: String,
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie({}:<redacted>)", self.user)
    }
}

impl Cookie {
    /// Parses a cookie file's content, `USER:PASSWORD` (trailing newline allowed).
    pub fn parse(content: &str) -> Option<Cookie> {
        let (user, password) = content.trim_end_matches(['\r', '\n']).split_once(':')?;
        if user.is_empty() || password.is_empty() {
            return None;
        }
        Some(Cookie {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Reads and parses a cookie file.
    pub fn read(path: &Path) -> Result<Cookie, CookieError> {
        let content = std::fs::read_to_string(path).map_err(|source| CookieError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Cookie::parse(&content).ok_or_else(|| CookieError::Malformed {
            path: path.to_path_buf(),
        })
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_file_content_parses() {
        let c = Cookie::parse("__cookie__:abcd\n").unwrap();
        assert_eq!(c.user, COOKIE_USER);
        assert_eq!(c.password, "abcd");
        assert_eq!(c.header(), "Basic X19jb29raWVfXzphYmNk");
        assert!(Cookie::parse("nocolon").is_none());
        assert!(Cookie::parse("__cookie__:").is_none());
        assert!(!format!("{c:?}").contains("abcd"));
    }

    #[test]
    fn unreadable_and_malformed_cookie_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Cookie::read(&cookie_path(dir.path())).unwrap_err();
        assert!(matches!(missing, CookieError::Read { .. }), "{missing}");
        std::fs::write(cookie_path(dir.path()), "garbage").unwrap();
        let bad = Cookie::read(&cookie_path(dir.path())).unwrap_err();
        assert!(
            bad.to_string().contains("does not hold `__cookie__:HEX`"),
            "{bad}"
        );
    }
}
