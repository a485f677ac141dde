//! Who is signed in, as the dashboard shows it, and where sign-in may send the browser next.

use serde::{Deserialize, Serialize};

/// Who is signed in, as the dashboard shows it: the team the session works in and every team
/// the user could switch to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub email: String,
    /// The current team's slug.
    pub team: String,
    pub team_id: i64,
    /// The role in the current team: `admin`, `member` or `viewer`.
    pub role: String,
    /// Every team of the user, the current one included, in membership order.
    pub teams: Vec<TeamChoice>,
}

impl SessionUser {
    /// Whether this user administers the current team.
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// Whether this user may pin flows of the current team (members and admins).
    pub fn can_pin(&self) -> bool {
        self.role == "admin" || self.role == "member"
    }
}

/// A team the signed-in user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamChoice {
    pub id: i64,
    pub slug: String,
    pub role: String,
}

/// Whether `next` is a path on this site that sign-in may send the browser to: it starts with
/// one `/`, holds no `\` and no control character or space, and is at most 2,048 bytes. Browsers read `//host` and
/// `/\host` as another site (WHATWG URL Standard, "special authority slashes"; OWASP
/// "Unvalidated Redirects and Forwards"), so anything else goes to `/`.
pub fn is_local_path(next: &str) -> bool {
    next.len() <= 2048
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn sign_in_sends_only_to_local_paths() {
        for ok in ["/", "/flows/1?step=2", "/?q=a%2Fb"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "//example.org/x",
            "/\\example.org/x",
            "/\\/example.org",
            "https://example.org",
            "example.org",
            "/\t/example.org",
            "/ x",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
