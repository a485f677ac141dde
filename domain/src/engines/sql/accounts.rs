//! [`AccountStore`] in SQL, the same statements on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::corrupt;
use super::{SqlMetadata, on_pool};
use crate::accounts::{AccountStore, ApiKey, Membership, Role, Scope, Team, User};
use crate::millis::now_ms;
use crate::{Error, Result};

/// How a user is looked up.
enum UserKey<'a> {
    Email(&'a str),
    Id(i64),
}

impl SqlMetadata {
    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>> {
        on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(
                "SELECT t.id, t.slug, m.role FROM memberships m JOIN teams t ON t.id = m.team_id \
                 WHERE m.user_id = $1 ORDER BY t.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let role: String = row.try_get("role")?;
                    Ok(Membership {
                        team: Team {
                            id: row.try_get("id")?,
                            slug: row.try_get("slug")?,
                        },
                        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
                    })
                })
                .collect()
        })
    }

    async fn user_where(&self, key: UserKey<'_>) -> Result<Option<User>> {
        let (column, email, id) = match key {
            UserKey::Email(email) => ("email", Some(email.to_string()), None),
            UserKey::Id(id) => ("id", None, Some(id)),
        };
        let sql = format!("SELECT id, email, password_hash FROM users WHERE {column} = $1");
        let found = on_pool!(&self.db, read, |pool| {
            let query = match (&email, id) {
                (Some(email), _) => sqlx::query(&sql).bind(email.clone()),
                (None, id) => sqlx::query(&sql).bind(id),
            };
            match query.fetch_optional(pool).await? {
                None => None,
                Some(row) => Some((
                    row.try_get::<i64, _>("id")?,
                    row.try_get::<String, _>("email")?,
                    row.try_get::<String, _>("password_hash")?,
                )),
            }
        });
        let Some((id, email, password_hash)) = found else {
            return Ok(None);
        };
        Ok(Some(User {
            id,
            email,
            password_hash,
            memberships: self.memberships(id).await?,
        }))
    }
}

#[async_trait]
impl AccountStore for SqlMetadata {
    async fn ensure_team(&self, slug: &str) -> Result<Team> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO teams (slug, created_at) VALUES ($1, $2) \
                 ON CONFLICT (slug) DO NOTHING",
            )
            .bind(slug)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        self.team_by_slug(slug)
            .await?
            .ok_or_else(|| Error::Internal("team vanished after insert".into()))
    }

    async fn team_by_slug(&self, slug: &str) -> Result<Option<Team>> {
        on_pool!(&self.db, read, |pool| {
            let row = sqlx::query("SELECT id, slug FROM teams WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await?;
            row.map(|row| {
                Ok(Team {
                    id: row.try_get("id")?,
                    slug: row.try_get("slug")?,
                })
            })
            .transpose()
        })
    }

    async fn user_count(&self) -> Result<u64> {
        let count: i64 = on_pool!(&self.db, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(count as u64)
    }

    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        team_id: i64,
        role: Role,
    ) -> Result<i64> {
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (email) DO NOTHING RETURNING id",
            )
            .bind(email)
            .bind(password_hash)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(user_id) = inserted else {
                return Err(Error::Conflict(format!(
                    "a user with e-mail {email} already exists"
                )));
            };
            sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)")
                .bind(team_id)
                .bind(user_id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(user_id)
        })
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_where(UserKey::Email(email)).await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.user_where(UserKey::Id(id)).await
    }

    async fn create_api_key(
        &self,
        team_id: i64,
        name: &str,
        scope: Scope,
        display_prefix: &str,
        hash: &str,
    ) -> Result<i64> {
        on_pool!(&self.db, write, |pool| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_keys (team_id, name, scope, key_prefix, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(team_id)
            .bind(name)
            .bind(scope.as_str())
            .bind(display_prefix)
            .bind(hash)
            .bind(now_ms())
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        on_pool!(&self.db, read, |pool| {
            let row = sqlx::query(
                "SELECT k.id, k.name, k.scope, t.id AS team_id, t.slug FROM api_keys k \
                 JOIN teams t ON t.id = k.team_id \
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                let scope: String = row.try_get("scope")?;
                Ok(ApiKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    scope: Scope::parse(&scope).ok_or_else(|| corrupt("key scope"))?,
                    team: Team {
                        id: row.try_get("team_id")?,
                        slug: row.try_get("slug")?,
                    },
                })
            })
            .transpose()
        })
    }
}
