//! [`AccountStore`]: teams, users, memberships and API keys as every SQL engine stores them.

use async_trait::async_trait;

use flowtrail_types::admin::{ApiKeyInfo, Member};

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
    /// Every key of the team, revoked ones too, newest first.
    async fn api_keys(&self, team_id: i64) -> Result<Vec<ApiKeyInfo>>;
    /// Revokes the team's key `id`; its hash, or `None` when the team has no live key `id`.
    async fn revoke_api_key(&self, team_id: i64, id: i64) -> Result<Option<String>>;
    /// Records that key `id` was used at `at_ms`.
    async fn touch_api_key(&self, id: i64, at_ms: i64) -> Result<()>;
    /// The team's members, by e-mail.
    async fn members(&self, team_id: i64) -> Result<Vec<Member>>;
    /// Adds an existing user to the team; [`crate::Error::Conflict`] if already a member.
    async fn add_member(&self, team_id: i64, user_id: i64, role: Role) -> Result<()>;
    /// Changes a member's role. `Ok(false)` when the user is not a member;
    /// [`crate::Error::Conflict`] when it would leave the team without an admin.
    async fn set_member_role(&self, team_id: i64, user_id: i64, role: Role) -> Result<bool>;
    /// Removes a member. `Ok(false)` when the user is not a member;
    /// [`crate::Error::Conflict`] when it would leave the team without an admin.
    async fn remove_member(&self, team_id: i64, user_id: i64) -> Result<bool>;
}
