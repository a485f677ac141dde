//! The dashboard's Web Worker: keeps a step's observations, in IndexedDB (for offline use and
//! instant reopening) and in memory, and answers the page's filter and sort requests with
//! windows of rows. Its own WASM bundle (`pkg/flowtrail_browser_worker*`), started by
//! `public/browser-worker.js`, so the page's bundle carries none of this.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use flowtrail_observations::filter::ObservationIndex;
use flowtrail_observations::protocol::{CACHE_DAYS, DB_NAME, FromWorker, Source, ToWorker};
use flowtrail_types::ObservationList;
use js_sys::{Object, Reflect};
use rexie::{Index, KeyRange, ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, RequestCache, RequestInit, Response};

const STORE: &str = "observations";
const STORED_AT: &str = "stored_at";
/// Steps kept in memory; older ones are dropped (IndexedDB still has them).
const IN_MEMORY: usize = 4;
const DAY_MS: f64 = 86_400_000.0;

thread_local! {
    static STEPS: RefCell<VecDeque<(String, ObservationIndex)>> = const { RefCell::new(VecDeque::new()) };
    /// The one IndexedDB connection of this worker, opened when it starts.
    static DB: RefCell<Option<Rc<Rexie>>> = const { RefCell::new(None) };
    /// Whether expired entries have been evicted yet (once, after the first step is served).
    static EVICTED: Cell<bool> = const { Cell::new(false) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_ms() -> f64 {
    scope().performance().map(|p| p.now()).unwrap_or_default()
}

fn post(message: &FromWorker) {
    if let Ok(json) = serde_json::to_string(message) {
        let _ = scope().post_message(&JsValue::from_str(&json));
    }
}

/// Entry point inside the worker: listens for the page's messages.
#[wasm_bindgen]
pub fn worker_main() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(|event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(ToWorker::Open { key, url, cache }) => spawn_local(open(key, url, cache)),
            Ok(ToWorker::Query {
                id,
                key,
                filter,
                sort,
                offset,
                limit,
            }) => {
                let answer = STEPS.with_borrow_mut(|steps| {
                    let (_, index) = steps.iter_mut().find(|(k, _)| *k == key)?;
                    let start = now_ms();
                    let positions = index.query(&filter, sort);
                    let filter_ms = now_ms() - start;
                    let matching = positions.len();
                    let window: Vec<u32> =
                        positions.iter().skip(offset).take(limit).copied().collect();
                    let rows = window
                        .into_iter()
                        .filter_map(|i| index.get(i).map(|o| (i, o.clone())))
                        .collect();
                    Some(FromWorker::Rows {
                        id,
                        key: key.clone(),
                        matching,
                        offset,
                        rows,
                        filter_ms,
                    })
                });
                post(&answer.unwrap_or(FromWorker::Failed {
                    key,
                    message: "This step is not loaded.".into(),
                    offline: false,
                }));
            }
            Ok(ToWorker::Forget { flow_id }) => spawn_local(async move {
                if let Err(error) = forget(&flow_id).await {
                    web_sys::console::warn_1(&format!("worker: forget failed: {error:?}").into());
                }
            }),
            Err(error) => web_sys::console::warn_1(&format!("worker: bad message: {error}").into()),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // Opening IndexedDB takes tens of milliseconds: done now, while the page hydrates, and
    // kept open for every step after.
    spawn_local(async {
        if let Err(error) = database().await {
            web_sys::console::warn_1(&format!("worker: IndexedDB open failed: {error:?}").into());
        }
    });
    post(&FromWorker::Ready);
}

/// This worker's IndexedDB connection, opened on first use.
async fn database() -> Result<Rc<Rexie>, rexie::Error> {
    if let Some(db) = DB.with_borrow(Clone::clone) {
        return Ok(db);
    }
    let db = Rc::new(
        Rexie::builder(DB_NAME)
            .version(1)
            .add_object_store(
                ObjectStore::new(STORE)
                    .key_path("key")
                    .add_index(Index::new(STORED_AT, STORED_AT)),
            )
            .build()
            .await?,
    );
    DB.set(Some(db.clone()));
    Ok(db)
}

/// Deletes entries older than [`CACHE_DAYS`].
async fn evict() -> Result<(), rexie::Error> {
    let db = database().await?;
    let cutoff = js_sys::Date::now() - CACHE_DAYS * DAY_MS;
    let tx = db.transaction(&[STORE], TransactionMode::ReadWrite)?;
    let store = tx.store(STORE)?;
    let range = KeyRange::upper_bound(&JsValue::from_f64(cutoff), Some(true))?;
    let expired = store
        .index(STORED_AT)?
        .get_all_keys(Some(range), None)
        .await?;
    for key in expired {
        store.delete(key).await?;
    }
    tx.done().await?;
    Ok(())
}

/// Drops every step of a flow (keys `{flow_id}@v…/…`, [`flowtrail_observations::protocol`])
/// from memory and IndexedDB.
async fn forget(flow_id: &str) -> Result<(), rexie::Error> {
    let prefix = format!("{flow_id}@");
    STEPS.with_borrow_mut(|steps| steps.retain(|(key, _)| !key.starts_with(&prefix)));
    let db = database().await?;
    let tx = db.transaction(&[STORE], TransactionMode::ReadWrite)?;
    let store = tx.store(STORE)?;
    // Every key that starts with the prefix: from the prefix up to the prefix followed by the
    // highest code unit.
    let range = KeyRange::bound(
        &JsValue::from_str(&prefix),
        &JsValue::from_str(&format!("{prefix}\u{ffff}")),
        None,
        None,
    )?;
    for key in store.get_all_keys(Some(range), None).await? {
        store.delete(key).await?;
    }
    tx.done().await?;
    Ok(())
}

/// The cached JSON of a step, if fresh.
async fn read_cached(key: &str) -> Result<Option<String>, rexie::Error> {
    let db = database().await?;
    let tx = db.transaction(&[STORE], TransactionMode::ReadOnly)?;
    let entry = tx.store(STORE)?.get(JsValue::from_str(key)).await?;
    tx.done().await?;
    let Some(entry) = entry else { return Ok(None) };
    let stored_at = Reflect::get(&entry, &STORED_AT.into())
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    if js_sys::Date::now() - stored_at > CACHE_DAYS * DAY_MS {
        return Ok(None);
    }
    Ok(Reflect::get(&entry, &"json".into())
        .ok()
        .and_then(|v| v.as_string()))
}

async fn write_cached(key: &str, json: &str) -> Result<(), rexie::Error> {
    let entry = Object::new();
    let _ = Reflect::set(&entry, &"key".into(), &key.into());
    let _ = Reflect::set(&entry, &STORED_AT.into(), &js_sys::Date::now().into());
    let _ = Reflect::set(&entry, &"json".into(), &json.into());
    let db = database().await?;
    let tx = db.transaction(&[STORE], TransactionMode::ReadWrite)?;
    tx.store(STORE)?.put(&entry, None).await?;
    tx.done().await?;
    Ok(())
}

/// GETs `url`. `fresh`: revalidate with the server even when the browser's HTTP cache holds
/// an "immutable" copy (a running flow's step may still be replaced).
async fn fetch_text(url: &str, fresh: bool) -> Result<String, String> {
    let init = RequestInit::new();
    if fresh {
        init.set_cache(RequestCache::NoCache);
    }
    let response = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| "The server could not be reached.".to_string())?;
    let response: Response = response.unchecked_into();
    let text = JsFuture::from(
        response
            .text()
            .map_err(|_| "unreadable answer".to_string())?,
    )
    .await
    .ok()
    .and_then(|t| t.as_string())
    .unwrap_or_default();
    if !response.ok() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("The server answered {}.", response.status()));
        return Err(message);
    }
    Ok(text)
}

async fn open(key: String, url: String, cache: bool) {
    // A running flow's step is read again every time it is opened.
    let in_memory = STEPS.with_borrow(|steps| {
        steps
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, index)| index.len())
    });
    if let Some(total) = in_memory.filter(|_| cache) {
        post(&FromWorker::Opened {
            key,
            total,
            source: Source::Cache,
            load_ms: 0.0,
        });
        return;
    }
    let start = now_ms();
    let cached = if cache {
        read_cached(&key).await.unwrap_or_else(|error| {
            web_sys::console::warn_1(&format!("worker: IndexedDB read failed: {error:?}").into());
            None
        })
    } else {
        None
    };
    let (json, source) = match cached {
        Some(json) => (json, Source::Cache),
        None => match fetch_text(&url, !cache).await {
            Ok(json) => (json, Source::Network),
            Err(message) => {
                let offline = !scope().navigator().on_line();
                post(&FromWorker::Failed {
                    key,
                    message: if offline {
                        "You are offline and this step was not opened before.".into()
                    } else {
                        message
                    },
                    offline,
                });
                return;
            }
        },
    };
    let list: ObservationList = match serde_json::from_str(&json) {
        Ok(list) => list,
        Err(error) => {
            post(&FromWorker::Failed {
                key,
                message: format!("The observations could not be read: {error}"),
                offline: false,
            });
            return;
        }
    };
    let index = ObservationIndex::new(list.observations);
    let total = index.len();
    let load_ms = now_ms() - start;
    STEPS.with_borrow_mut(|steps| {
        steps.retain(|(k, _)| *k != key);
        steps.push_front((key.clone(), index));
        steps.truncate(IN_MEMORY);
    });
    post(&FromWorker::Opened {
        key: key.clone(),
        total,
        source,
        load_ms,
    });
    // Eviction writes to the store; after the first answer, so it never delays one.
    if !EVICTED.replace(true)
        && let Err(error) = evict().await
    {
        web_sys::console::warn_1(&format!("worker: eviction failed: {error:?}").into());
    }
    if cache
        && source == Source::Network
        && let Err(error) = write_cached(&key, &json).await
    {
        web_sys::console::warn_1(&format!("worker: IndexedDB write failed: {error:?}").into());
    }
}
