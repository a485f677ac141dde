//! Accounts: teams (the tenants), users and their role in each team, API keys and their
//! scopes, and the credentials behind them.
//!
//! - [`secrets`]: password hashing (argon2id) and API key generation and hashing;
//! - [`store`]: [`AccountStore`], what every SQL engine stores;
//! - here: the account types and the operations the CLI, sign-in and the API call.

pub mod secrets;
pub mod store;
pub mod throttle;

use std::time::Duration;

pub use secrets::{
    API_KEY_PREFIX, NewApiKey, Role, SESSION_ABSOLUTE_LIFETIME_MS, SESSION_SIGNED_IN_KEY,
    SESSION_TEAM_KEY, SESSION_USER_KEY, Scope, hash_api_key, hash_password, session_user_id,
    verify_password,
};
pub use store::AccountStore;

use flowtrail_types::admin::{AddedMember, CreatedApiKey, Member};

use crate::millis::now_ms;
use crate::{Error, Result, Services};

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum SignIn {
    Accepted(Box<User>),
    /// Wrong address or password (which one is not said).
    Refused,
    /// Too many attempts for this address or from this client: retry after this long.
    Throttled(Duration),
}

/// A hash of a password no one has, checked when the address is unknown.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

/// A team (the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub slug: String,
}

/// A user with the teams they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub memberships: Vec<Membership>,
}

impl User {
    /// The membership a request of this user acts in: the team chosen in the session
    /// (`team_id`, see [`SESSION_TEAM_KEY`]) while they still belong to it, else their first
    /// team. `None` when they belong to no team (every request is then refused).
    pub fn membership(&self, team_id: Option<i64>) -> Option<&Membership> {
        team_id
            .and_then(|id| self.memberships.iter().find(|m| m.team.id == id))
            .or_else(|| self.memberships.first())
    }
}

/// A user's role in one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub team: Team,
    pub role: Role,
}

/// A live (not revoked) API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub team: Team,
    pub name: String,
    pub scope: Scope,
}

/// How long a looked-up API key is trusted without asking the database again, and so the
/// longest a revocation takes to reach every server (issue #15: within 1 s). Each server
/// asks at most once a second per key, whatever its request rate.
pub const API_KEY_CACHE_TTL: Duration = Duration::from_millis(900);

/// How long a key looked up earlier still admits requests while the database does not
/// answer, so that ingest rides out a short database stall.
pub const API_KEY_STALE_TTL: Duration = Duration::from_secs(60);

/// How often a key's `last_used_at` is written at most.
pub const API_KEY_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Looked-up API keys by hash: `fresh` ones are trusted as they are; `stale` ones only while
/// the database fails; `touched` says when each key's last use was last written.
#[derive(Clone)]
pub(crate) struct ApiKeyCache {
    fresh: moka::sync::Cache<String, ApiKey>,
    stale: moka::sync::Cache<String, ApiKey>,
    touched: moka::sync::Cache<i64, ()>,
}

pub(crate) fn api_key_cache() -> ApiKeyCache {
    ApiKeyCache {
        fresh: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(API_KEY_CACHE_TTL)
            .build(),
        stale: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(API_KEY_STALE_TTL)
            .build(),
        touched: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(API_KEY_TOUCH_INTERVAL)
            .build(),
    }
}

/// A password for an account an admin creates: 20 random characters from a 64-letter
/// alphabet (120 bits), shown once.
fn initial_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.~+=";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// E-mail addresses are compared without case (stored lower-cased, on every engine).
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a (normalised) e-mail address: at most 254 characters (RFC 5321 §4.5.3.1.3), one
/// `@` between a non-empty local part and a domain with a dot inside, no space, control
/// character, quote, backslash or angle bracket. Errors: 422 naming `email`.
fn check_email(address: &str) -> Result<()> {
    let valid = address.len() <= 254
        && address.split('@').count() == 2
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "email",
            "an e-mail address like name@example.org is needed (at most 254 characters)",
        ))
    }
}

impl Services {
    /// Creates a user in `team` (created if missing) with an argon2id password hash.
    /// Errors: 422 for an address without `@` or a password under 8 characters; a conflict
    /// when the e-mail is taken.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        team: &str,
        role: Role,
    ) -> Result<i64> {
        let email = normalize_email(email);
        check_email(&email)?;
        if password.chars().count() < 8 {
            return Err(Error::invalid(
                "password",
                "passwords have at least 8 characters",
            ));
        }
        let team = self.metadata.ensure_team(team).await?;
        let hash = hash_password(password)?;
        self.metadata
            .create_user(&email, &hash, team.id, role)
            .await
    }

    /// Creates an API key for `team` and returns its secret, which is never stored.
    /// Errors: not found for an unknown team; 422 for a name as
    /// [`Services::create_team_api_key`] refuses it.
    pub async fn create_api_key(&self, team: &str, name: &str, scope: Scope) -> Result<String> {
        let team = self
            .metadata
            .team_by_slug(team)
            .await?
            .ok_or(Error::NotFound("team"))?;
        Ok(self.create_team_api_key(team.id, name, scope).await?.key)
    }

    /// The user whose e-mail and password match.
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<Option<User>> {
        let user = self.metadata.user_by_email(&normalize_email(email)).await?;
        match user {
            Some(user) => Ok(verify_password(password, &user.password_hash).then_some(user)),
            None => {
                // As slow as a known address: the time taken tells no one which exist.
                let _ = verify_password(password, unknown_user_hash());
                Ok(None)
            }
        }
    }

    /// Sign-in as the dashboard does it: refused at once while the address or the client
    /// waits ([`throttle::SignInThrottle`]), else [`Services::authenticate`], a failure
    /// counted against both. Unknown and known addresses are throttled and answered alike.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<SignIn> {
        let address = normalize_email(email);
        if let Some(wait) = self.sign_in_throttle.waiting(&address, client) {
            return Ok(SignIn::Throttled(wait));
        }
        Ok(match self.authenticate(email, password).await? {
            Some(user) => SignIn::Accepted(Box::new(user)),
            None => match self.sign_in_throttle.failed(&address, client) {
                Some(wait) => SignIn::Throttled(wait),
                None => SignIn::Refused,
            },
        })
    }

    /// The live API key with this secret: trusted for [`API_KEY_CACHE_TTL`] once looked
    /// up (unknown keys are always looked up); while the database fails, a key seen in the
    /// last [`API_KEY_STALE_TTL`] still counts. Its `last_used_at` is written at most once
    /// per [`API_KEY_TOUCH_INTERVAL`], in the background.
    pub async fn api_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = hash_api_key(secret);
        let cache = &self.api_keys;
        let key = match cache.fresh.get(&hash) {
            Some(key) => Some(key),
            None => match self.metadata.api_key_by_hash(&hash).await {
                Ok(Some(key)) => {
                    cache.fresh.insert(hash.clone(), key.clone());
                    cache.stale.insert(hash, key.clone());
                    Some(key)
                }
                Ok(None) => {
                    cache.stale.invalidate(&hash);
                    None
                }
                Err(error) => match cache.stale.get(&hash) {
                    Some(key) => {
                        tracing::warn!(%error, "API key lookup failed; using the key seen last");
                        Some(key)
                    }
                    None => return Err(error),
                },
            },
        };
        if let Some(key) = &key
            && !cache.touched.contains_key(&key.id)
        {
            cache.touched.insert(key.id, ());
            let (metadata, id) = (self.metadata.clone(), key.id);
            tokio::spawn(async move {
                if let Err(error) = metadata.touch_api_key(id, now_ms()).await {
                    tracing::debug!(%error, "could not record an API key's last use");
                }
            });
        }
        Ok(key)
    }

    /// Creates an API key for team `team_id`: its listing and its secret (shown once).
    /// Errors: 422 for an empty name or one over 100 characters.
    pub async fn create_team_api_key(
        &self,
        team_id: i64,
        name: &str,
        scope: Scope,
    ) -> Result<CreatedApiKey> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "a key needs a name of 1 to 100 characters, without control characters",
            ));
        }
        let key = NewApiKey::generate()?;
        let id = self
            .metadata
            .create_api_key(team_id, name, scope, &key.display_prefix, &key.hash)
            .await?;
        let info = self
            .metadata
            .api_keys(team_id)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::Internal("a new API key vanished".into()))?;
        Ok(CreatedApiKey {
            info,
            key: key.secret,
        })
    }

    /// Revokes the team's key `id`: this server refuses it at once, every other server
    /// within [`API_KEY_CACHE_TTL`]. Errors: not found when the team has no live key `id`.
    pub async fn revoke_api_key(&self, team_id: i64, id: i64) -> Result<()> {
        let hash = self
            .metadata
            .revoke_api_key(team_id, id)
            .await?
            .ok_or(Error::NotFound("API key"))?;
        self.api_keys.fresh.invalidate(&hash);
        self.api_keys.stale.invalidate(&hash);
        Ok(())
    }

    /// Adds the account with `email` to the team with `role`, creating the account (with a
    /// random password, returned once) when there is none. Errors: 422 for an address
    /// without `@`; a conflict when already a member.
    pub async fn add_member(&self, team_id: i64, email: &str, role: Role) -> Result<AddedMember> {
        let address = normalize_email(email);
        check_email(&address)?;
        let (user_id, initial_password) = match self.metadata.user_by_email(&address).await? {
            Some(user) => {
                self.metadata.add_member(team_id, user.id, role).await?;
                (user.id, None)
            }
            None => {
                let password = initial_password()?;
                let hash = hash_password(&password)?;
                let id = self
                    .metadata
                    .create_user(&address, &hash, team_id, role)
                    .await?;
                (id, Some(password))
            }
        };
        Ok(AddedMember {
            member: Member {
                user_id,
                email: address,
                role: role.as_str().into(),
            },
            initial_password,
        })
    }

    /// Changes a member's role; it applies from their next request. Errors: not found for
    /// a user who is not a member; a conflict for the team's last admin.
    pub async fn set_member_role(&self, team_id: i64, user_id: i64, role: Role) -> Result<Member> {
        if !self
            .metadata
            .set_member_role(team_id, user_id, role)
            .await?
        {
            return Err(Error::NotFound("member"));
        }
        self.metadata
            .members(team_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .ok_or(Error::NotFound("member"))
    }

    /// Removes a member; their sessions lose the team on their next request. Errors: not
    /// found for a user who is not a member; a conflict for the team's last admin.
    pub async fn remove_member(&self, team_id: i64, user_id: i64) -> Result<()> {
        if !self.metadata.remove_member(team_id, user_id).await? {
            return Err(Error::NotFound("member"));
        }
        Ok(())
    }
}
