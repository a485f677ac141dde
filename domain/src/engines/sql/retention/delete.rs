//! Deleting a batch of expired flows with everything that hangs off them (steps, tags, search
//! entries, reason and flow counts, finished ingest jobs), queueing their payloads for deletion, in one
//! write transaction.

use super::{json_list, unsigned};
use crate::Result;
use crate::engines::sql::writes::{
    flow_count_sql, hour_bucket_sql, reason_count_add, reason_count_parts,
};
use crate::engines::sql::{SqlDatabase, on_pool};
use crate::millis::now_ms;
use crate::retention::store::{Deleted, DeletedBatch};

/// [`RetentionStore::delete_flows`](crate::retention::store::RetentionStore::delete_flows) on
/// `db`.
pub(super) async fn delete_flows(
    db: &SqlDatabase,
    team_id: i64,
    flow_ids: &[String],
) -> Result<DeletedBatch> {
    if flow_ids.is_empty() {
        return Ok(DeletedBatch::default());
    }
    let requested = json_list(flow_ids)?;
    let list = db.json_text_values("$2");
    let (entries, value) = db.json_object_entries("s.reasons");
    let qualify = match db {
        SqlDatabase::Sqlite(_) => "",
        SqlDatabase::Postgres(_) => "reason_counts.",
    };
    let subtract = format!(
        "INSERT INTO reason_counts \
             (team_id, pipeline_id, step, bucket, code, count_hi, count_lo) \
         SELECT f.team_id, f.pipeline_id, s.name, {bucket}, j.key, {parts} \
         FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, {entries} \
         WHERE s.team_id = $1 AND s.flow_id IN ({list}) \
         GROUP BY 1, 2, 3, 4, 5 \
         ON CONFLICT (team_id, bucket, pipeline_id, step, code) DO UPDATE SET {add}",
        bucket = hour_bucket_sql("f.started_at"),
        parts = reason_count_parts("-1", value),
        add = reason_count_add(qualify),
    );
    let empty_buckets = format!(
        "DELETE FROM reason_counts WHERE team_id = $1 AND count_hi = 0 AND count_lo = 0 \
         AND bucket IN (SELECT {bucket} FROM flows WHERE team_id = $1 AND id IN ({list}))",
        bucket = hour_bucket_sql("started_at"),
    );
    let [flows_subtract, flows_empty] = flow_count_sql(
        "-1",
        &format!("FROM flows f WHERE f.team_id = $1 AND f.id IN ({list})"),
        match db {
            SqlDatabase::Sqlite(_) => "",
            SqlDatabase::Postgres(_) => "flow_counts.",
        },
    );
    let search: Vec<String> = match db {
        SqlDatabase::Sqlite(_) => vec![
            format!(
                "DELETE FROM flow_search WHERE rowid IN (SELECT id FROM flow_search_ids \
                 WHERE team_id = $1 AND flow_id IN ({list}))"
            ),
            format!("DELETE FROM flow_search_ids WHERE team_id = $1 AND flow_id IN ({list})"),
        ],
        SqlDatabase::Postgres(_) => vec![format!(
            "DELETE FROM flow_candidates WHERE team_id = $1 AND flow_id IN ({list})"
        )],
    };
    let rows: Vec<String> = [
        format!("DELETE FROM steps WHERE team_id = $1 AND flow_id IN ({list})"),
        format!("DELETE FROM flow_tags WHERE team_id = $1 AND flow_id IN ({list})"),
        format!(
            "DELETE FROM ingest_jobs WHERE team_id = $1 AND flow_id IN ({list}) \
             AND state = 'done'"
        ),
    ]
    .into_iter()
    .collect();
    let lock = db.skip_locked();
    let begin = db.begin_write();
    on_pool!(db, write, |pool| {
        let mut tx = pool.begin_with(begin).await?;
        let locked = std::time::Instant::now();
        // Only flows still there and unpinned now (pinning races the sweep); PostgreSQL
        // locks them and skips those an ingest write holds (the next sweep takes them).
        let victims: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM flows WHERE team_id = $1 AND id IN ({list}) \
             AND pinned_at IS NULL{lock}"
        ))
        .bind(team_id)
        .bind(&requested)
        .fetch_all(&mut *tx)
        .await?;
        if victims.is_empty() {
            return Ok(DeletedBatch::default());
        }
        let ids = json_list(&victims)?;
        sqlx::query(&format!(
            "INSERT INTO payload_deletions (key, queued_at) \
             SELECT s.payload_key, $3 FROM steps s WHERE s.team_id = $1 \
             AND s.flow_id IN ({list}) \
             AND s.payload_key IS NOT NULL AND s.payload_inline IS NULL \
             ON CONFLICT (key) DO NOTHING"
        ))
        .bind(team_id)
        .bind(&ids)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let bytes: i64 = sqlx::query_scalar(&format!(
            "SELECT CAST(coalesce(SUM(payload_bytes), 0) AS BIGINT) FROM steps \
             WHERE team_id = $1 AND flow_id IN ({list})"
        ))
        .bind(team_id)
        .bind(&ids)
        .fetch_one(&mut *tx)
        .await?;
        for sql in [&subtract, &empty_buckets, &flows_subtract, &flows_empty]
            .into_iter()
            .chain(search.iter())
            .chain(rows.iter())
        {
            sqlx::query(sql)
                .bind(team_id)
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
        let flows = sqlx::query(&format!(
            "DELETE FROM flows WHERE team_id = $1 AND id IN ({list})"
        ))
        .bind(team_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(DeletedBatch {
            deleted: Deleted {
                flows,
                bytes: unsigned(bytes),
            },
            held: locked.elapsed(),
        })
    })
}
