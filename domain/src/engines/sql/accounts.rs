//! [`AccountStore`] in SQL, the same statements on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::corrupt;
use super::{SqlMetadata, on_pool};
use crate::accounts::{AccountStore, ApiKey, Membership, Role, Scope, Team, User};
use crate::millis::{from_ms, now_ms};
use crate::{Error, Result};
use flowtrail_types::admin::{ApiKeyInfo, Member};

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
        let begin = self.db.begin_write();
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin_with(begin).await?;
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

    async fn api_keys(&self, team_id: i64) -> Result<Vec<ApiKeyInfo>> {
        on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(
                "SELECT id, name, scope, key_prefix, created_at, last_used_at, revoked_at \
                 FROM api_keys WHERE team_id = $1 ORDER BY created_at DESC, id DESC",
            )
            .bind(team_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ApiKeyInfo {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        scope: row.try_get("scope")?,
                        prefix: row.try_get("key_prefix")?,
                        created_at: from_ms(row.try_get("created_at")?),
                        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(from_ms),
                        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
                    })
                })
                .collect()
        })
    }

    async fn revoke_api_key(&self, team_id: i64, id: i64) -> Result<Option<String>> {
        on_pool!(&self.db, write, |pool| {
            Ok(sqlx::query_scalar(
                "UPDATE api_keys SET revoked_at = $3 \
                 WHERE team_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING key_hash",
            )
            .bind(team_id)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?)
        })
    }

    async fn touch_api_key(&self, id: i64, at_ms: i64) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(id)
            .bind(at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn members(&self, team_id: i64) -> Result<Vec<Member>> {
        on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(
                "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.team_id = $1 ORDER BY u.email",
            )
            .bind(team_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(Member {
                        user_id: row.try_get("id")?,
                        email: row.try_get("email")?,
                        role: row.try_get("role")?,
                    })
                })
                .collect()
        })
    }

    async fn add_member(&self, team_id: i64, user_id: i64, role: Role) -> Result<()> {
        let added = on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (team_id, user_id) DO NOTHING",
            )
            .bind(team_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if added == 0 {
            return Err(Error::Conflict(
                "this user is already a member of the team".into(),
            ));
        }
        Ok(())
    }

    async fn set_member_role(&self, team_id: i64, user_id: i64, role: Role) -> Result<bool> {
        // One statement: the last admin cannot be demoted, even by two admins at once.
        let changed = on_pool!(&self.db, write, |pool| {
            sqlx::query(&format!(
                "UPDATE memberships SET role = $3 WHERE team_id = $1 AND user_id = $2 \
                 AND ($3 = 'admin' OR role <> 'admin' OR {OTHER_ADMIN})"
            ))
            .bind(team_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.member_change(team_id, user_id, changed).await
    }

    async fn remove_member(&self, team_id: i64, user_id: i64) -> Result<bool> {
        let removed = on_pool!(&self.db, write, |pool| {
            sqlx::query(&format!(
                "DELETE FROM memberships WHERE team_id = $1 AND user_id = $2 \
                 AND (role <> 'admin' OR {OTHER_ADMIN})"
            ))
            .bind(team_id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.member_change(team_id, user_id, removed).await
    }
}

/// The condition under which an admin may stop being one: another admin remains.
const OTHER_ADMIN: &str = "EXISTS (SELECT 1 FROM memberships o \
     WHERE o.team_id = $1 AND o.user_id <> $2 AND o.role = 'admin')";

impl SqlMetadata {
    /// What an update of `rows` memberships means: done, not a member, or refused because
    /// the member is the team's last admin.
    async fn member_change(&self, team_id: i64, user_id: i64, rows: u64) -> Result<bool> {
        if rows > 0 {
            return Ok(true);
        }
        let member = self
            .members(team_id)
            .await?
            .into_iter()
            .any(|m| m.user_id == user_id);
        if member {
            return Err(Error::Conflict(
                "this is the team's last admin: make another member admin first".into(),
            ));
        }
        Ok(false)
    }
}
