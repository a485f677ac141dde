//! [`AccountStore`]: teams, users, memberships and API keys as every SQL engine stores them.

use async_trait::async_trait;

use super::{ApiKey, Role, Scope, Team, User};
use crate::Result;

/// Teams, users and API keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The team with this slug, created if missing.
    async fn ensure_team(&self, slug: &str) -> Result<Team>;
    async fn team_by_slug(&self, slug: &str) -> Result<Option<Team>>;
    /// How many users exist (the first start creates the first admin).
    async fn user_count(&self) -> Result<u64>;
    /// Creates a user and their membership; [`crate::Error::Conflict`] if the e-mail is taken.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        team_id: i64,
        role: Role,
    ) -> Result<i64>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    /// Stores an API key's hash.
    async fn create_api_key(
        &self,
        team_id: i64,
        name: &str,
        scope: Scope,
        display_prefix: &str,
        hash: &str,
    ) -> Result<i64>;
    /// The live key with this hash.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
}
