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
    API_KEY_PREFIX, NewApiKey, Role, SESSION_USER_KEY, Scope, hash_api_key, hash_password,
    verify_password,
};
pub use store::AccountStore;

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

/// How long a looked-up API key is trusted without asking the database again (and so the
/// longest a revocation may take to reach every server).
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Recently used API keys by hash, so that ingest does not read the database per request and
/// keeps working through a short database stall.
pub(crate) fn api_key_cache() -> moka::sync::Cache<String, ApiKey> {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(API_KEY_CACHE_TTL)
        .build()
}

/// E-mail addresses are compared without case (stored lower-cased, on every engine).
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
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
        if !email.contains('@') || email.len() > 254 {
            return Err(Error::invalid("email", "an e-mail address is needed"));
        }
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
    pub async fn create_api_key(&self, team: &str, name: &str, scope: Scope) -> Result<String> {
        let team = self
            .metadata
            .team_by_slug(team)
            .await?
            .ok_or(Error::NotFound("team"))?;
        let key = NewApiKey::generate()?;
        self.metadata
            .create_api_key(team.id, name, scope, &key.display_prefix, &key.hash)
            .await?;
        Ok(key.secret)
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

    /// The live API key with this secret (cached for [`API_KEY_CACHE_TTL`]; unknown keys
    /// are always looked up).
    pub async fn api_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = hash_api_key(secret);
        if let Some(key) = self.api_keys.get(&hash) {
            return Ok(Some(key));
        }
        let key = self.metadata.api_key_by_hash(&hash).await?;
        if let Some(key) = &key {
            self.api_keys.insert(hash, key.clone());
        }
        Ok(key)
    }
}
