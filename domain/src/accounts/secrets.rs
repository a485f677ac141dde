//! Credentials: password hashes (argon2id), API keys (random, stored as SHA-256), roles and
//! key scopes. API keys are 192 random bits, so a fast hash is enough to store them; passwords
//! are low-entropy, so they get a slow, salted one.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What a team member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including members, keys and retention.
    Admin,
    /// Read flows and use the dashboard.
    Member,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send flows only (what a pipeline needs).
    Ingest,
    /// Query only (what a script or notebook needs).
    Read,
    /// Both.
    All,
    /// The admin API (`/api/v1/admin/…`) only: members, keys, retention, usage, dead letters.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::All => "all",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "all" => Some(Scope::All),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn allows_ingest(self) -> bool {
        matches!(self, Scope::Ingest | Scope::All)
    }

    pub fn allows_read(self) -> bool {
        matches!(self, Scope::Read | Scope::All)
    }
}

/// An argon2id hash (PHC string) of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the stored PHC `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Where a signed-in user's id is kept in the session (server and dashboard share it).
pub const SESSION_USER_KEY: &str = "flowtrail.user_id";

/// When the session's user signed in (Unix ms), for the absolute lifetime.
pub const SESSION_SIGNED_IN_KEY: &str = "flowtrail.signed_in_at";

/// The longest a session lasts from its sign-in, however active it stays (besides the 7 days
/// of inactivity that end it earlier): OWASP ASVS 5.0, V7.3 "Session Timeout" asks for an
/// absolute maximum lifetime.
pub const SESSION_ABSOLUTE_LIFETIME_MS: i64 = 30 * 24 * 3_600_000;

/// The user a session stands for: its user id while the sign-in it records is younger than
/// [`SESSION_ABSOLUTE_LIFETIME_MS`] (a session without a sign-in time stands for no one).
pub fn session_user_id(
    user_id: Option<i64>,
    signed_in_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    let signed_in = signed_in_at_ms?;
    (now_ms.saturating_sub(signed_in) < SESSION_ABSOLUTE_LIFETIME_MS).then_some(user_id?)
}

/// Where the team a signed-in user is working in is kept in the session (the header's team
/// switcher sets it); absent or no longer a membership: their first team.
pub const SESSION_TEAM_KEY: &str = "flowtrail.team_id";

/// The prefix every Flow Trail API key starts with, so leaked keys are easy to grep for.
pub const API_KEY_PREFIX: &str = "ftk_";

/// A freshly generated API key: the secret to show once, and what is stored of it.
pub struct NewApiKey {
    /// The whole key; never stored.
    pub secret: String,
    /// The first characters, stored so people can tell their keys apart.
    pub display_prefix: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
}

impl NewApiKey {
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        let secret = format!("{API_KEY_PREFIX}{}", hex::encode(bytes));
        Ok(NewApiKey {
            display_prefix: secret[..API_KEY_PREFIX.len() + 8].to_string(),
            hash: hash_api_key(&secret),
            secret,
        })
    }
}

/// How an API key is looked up: SHA-256, hex.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn api_keys_are_random_and_stored_as_hashes() {
        let a = NewApiKey::generate().unwrap();
        let b = NewApiKey::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(API_KEY_PREFIX));
        assert_eq!(a.secret.len(), API_KEY_PREFIX.len() + 48);
        assert!(a.secret.starts_with(&a.display_prefix));
        assert_eq!(a.hash, hash_api_key(&a.secret));
        assert!(!a.hash.contains(&a.secret));
    }

    #[test]
    fn scopes_gate_ingest_and_read() {
        assert!(Scope::Ingest.allows_ingest() && !Scope::Ingest.allows_read());
        assert!(Scope::Read.allows_read() && !Scope::Read.allows_ingest());
        assert!(Scope::All.allows_read() && Scope::All.allows_ingest());
        assert_eq!(Scope::parse("all"), Some(Scope::All));
        assert_eq!(Scope::parse("admin"), Some(Scope::Admin));
        let day = 24 * 3_600_000;
        assert_eq!(session_user_id(Some(7), Some(0), 29 * day), Some(7));
        assert_eq!(
            session_user_id(Some(7), Some(0), 30 * day),
            None,
            "absolute lifetime"
        );
        assert_eq!(session_user_id(Some(7), None, 0), None, "no sign-in time");
        assert_eq!(session_user_id(None, Some(0), 0), None);
        assert!(!Scope::Admin.allows_read() && !Scope::Admin.allows_ingest());
        assert_eq!(Role::parse("owner"), None);
    }
}
