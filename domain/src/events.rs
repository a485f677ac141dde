//! Live-update events: flows as they land, for `GET /api/v1/events`.
//!
//! Embedded profile: an in-process broadcast channel from the workers to the connected
//! dashboards. Scale-out profile: workers publish on a Redis channel and every server
//! re-broadcasts what it hears to its own subscribers, so a dashboard connected to any server
//! sees flows stored by any worker. Events are a convenience, not a record: a subscriber that
//! lags or reconnects catches up from `GET /api/v1/flows`.

use std::sync::Arc;

use flowtrail_types::FlowSummary;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::engines::redis::{EVENTS_CHANNEL, Redis};

/// A flow became queryable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowLanded {
    pub team_id: i64,
    pub flow: FlowSummary,
}

/// Publishes and delivers [`FlowLanded`] events.
#[derive(Clone)]
pub struct Events {
    local: broadcast::Sender<Arc<FlowLanded>>,
    redis: Option<Redis>,
}

/// Events a slow subscriber may fall behind by before it is told it lagged.
const BUFFER: usize = 4096;

impl Events {
    /// Events within this process only.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        Events { local, redis: None }
    }

    /// Events shared by every process on this Redis.
    pub fn shared(redis: Redis) -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        let mut heard = redis.events.subscribe();
        let forward = local.clone();
        tokio::spawn(async move {
            loop {
                match heard.recv().await {
                    Ok(message) => match serde_json::from_str::<Vec<FlowLanded>>(&message) {
                        Ok(batch) => {
                            for landed in batch {
                                let _ = forward.send(Arc::new(landed));
                            }
                        }
                        Err(error) => tracing::warn!(%error, "ignoring a malformed event"),
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "live-update events dropped (slow fan-out)");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Events {
            local,
            redis: Some(redis),
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FlowLanded>> {
        self.local.subscribe()
    }

    /// Announces flows that were just stored. Never fails: a lost event is caught up by the
    /// next list query, and the write it announces is already durable.
    pub async fn publish(&self, batch: Vec<FlowLanded>) {
        if batch.is_empty() {
            return;
        }
        match &self.redis {
            None => {
                for landed in batch {
                    let _ = self.local.send(Arc::new(landed));
                }
            }
            Some(redis) => {
                let message = match serde_json::to_string(&batch) {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(%error, "cannot encode events");
                        return;
                    }
                };
                if let Err(error) = redis.publish(EVENTS_CHANNEL, &message).await {
                    tracing::warn!(%error, "cannot publish live-update events");
                }
            }
        }
    }
}
