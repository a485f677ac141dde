//! What the page asks of the browser: the observations worker, the live flow stream, the
//! network state, the service worker and its page cache. On the server (no `hydrate`) every
//! call is a no-op, so components use them unconditionally.

use flowtrail_types::FlowSummary;

use flowtrail_observations::protocol::{FromWorker, ToWorker};

/// State of the live stream of new flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    Connecting,
    Live,
    Reconnecting,
}

/// The Cache Storage name of visited pages (read by `public/sw.js`).
pub const PAGE_CACHE: &str = "flowtrail-pages-v1";

/// The worker's IndexedDB database.
pub const OBSERVATIONS_DB: &str = flowtrail_observations::protocol::DB_NAME;

/// An open live stream of flows (see `live_flows` and `close_live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFlows(pub u64);

pub use imp::*;

#[cfg(feature = "hydrate")]
mod imp {
    use std::cell::RefCell;
    use std::rc::Rc;

    use wasm_bindgen::prelude::*;
    use web_sys::{EventSource, MessageEvent, Worker, WorkerOptions, WorkerType};

    use super::*;

    type Listener = Rc<dyn Fn(&FromWorker)>;

    struct Channel {
        worker: Option<Worker>,
        ready: bool,
        queue: Vec<String>,
        listeners: Vec<(u64, Listener)>,
        next_id: u64,
    }

    thread_local! {
        static CHANNEL: RefCell<Channel> = const { RefCell::new(Channel {
            worker: None,
            ready: false,
            queue: Vec::new(),
            listeners: Vec::new(),
            next_id: 1,
        }) };
    }

    fn start_worker() -> Option<Worker> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("/browser-worker.js", &options)
            .inspect_err(|e| web_sys::console::error_2(&"the worker did not start".into(), e))
            .ok()?;
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(|event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            let Ok(message) = serde_json::from_str::<FromWorker>(&text) else {
                return;
            };
            if message == FromWorker::Ready {
                let (worker, queue) = CHANNEL.with_borrow_mut(|c| {
                    c.ready = true;
                    (c.worker.clone(), std::mem::take(&mut c.queue))
                });
                if let Some(worker) = worker {
                    for text in queue {
                        let _ = worker.post_message(&JsValue::from_str(&text));
                    }
                }
                return;
            }
            // Listeners run outside the borrow: they may send again.
            let listeners: Vec<Listener> =
                CHANNEL.with_borrow(|c| c.listeners.iter().map(|(_, l)| l.clone()).collect());
            for listener in listeners {
                listener(&message);
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        Some(worker)
    }

    /// Sends a message to the observations worker, starting it on first use.
    pub fn worker_send(message: &ToWorker) {
        let Ok(text) = serde_json::to_string(message) else {
            return;
        };
        let ready_worker = CHANNEL.with_borrow_mut(|c| {
            if c.worker.is_none() {
                c.worker = start_worker();
            }
            if c.ready {
                c.worker.clone()
            } else {
                c.queue.push(text.clone());
                None
            }
        });
        if let Some(worker) = ready_worker {
            let _ = worker.post_message(&JsValue::from_str(&text));
        }
    }

    /// Calls `f` with every message of the worker until [`worker_unlisten`].
    pub fn worker_listen(f: impl Fn(&FromWorker) + 'static) -> u64 {
        CHANNEL.with_borrow_mut(|c| {
            let id = c.next_id;
            c.next_id += 1;
            c.listeners.push((id, Rc::new(f)));
            id
        })
    }

    pub fn worker_unlisten(id: u64) {
        CHANNEL.with_borrow_mut(|c| c.listeners.retain(|(i, _)| *i != id));
    }

    /// Whether the browser says it has a network.
    pub fn is_online() -> bool {
        web_sys::window()
            .map(|w| w.navigator().on_line())
            .unwrap_or(true)
    }

    /// Calls `f` with the new state whenever the browser goes on- or offline.
    pub fn on_network_change(f: impl Fn(bool) + 'static) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let f = Rc::new(f);
        for (event, online) in [("online", true), ("offline", false)] {
            let f = f.clone();
            let closure = Closure::<dyn Fn()>::new(move || f(online));
            let _ =
                window.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
            closure.forget();
        }
    }

    /// Registers `public/sw.js`, which serves the app shell and visited pages offline.
    pub fn register_service_worker() {
        if let Some(window) = web_sys::window() {
            let container = window.navigator().service_worker();
            let _ = container.register("/sw.js");
        }
    }

    /// Keeps the current page in the page cache, so a reload works offline even when it was
    /// reached by a client-side navigation (which the service worker never sees).
    pub fn remember_page(path: &str) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(caches) = window.caches() else {
            return;
        };
        let path = path.to_string();
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(cache) = wasm_bindgen_futures::JsFuture::from(caches.open(PAGE_CACHE)).await
            else {
                return;
            };
            let cache: web_sys::Cache = cache.unchecked_into();
            let _ = wasm_bindgen_futures::JsFuture::from(cache.add_with_str(&path)).await;
        });
    }

    /// Deletes what this browser kept of flow `id` (its steps' observations in the worker's
    /// IndexedDB, its page in the page cache): the server says it no longer exists (deleted by
    /// retention), so no offline copy outlives it.
    pub fn forget_flow(id: &str) {
        worker_send(&ToWorker::Forget {
            flow_id: id.to_string(),
        });
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(caches) = window.caches() else {
            return;
        };
        let path = format!("/flows/{id}");
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(cache) = wasm_bindgen_futures::JsFuture::from(caches.open(PAGE_CACHE)).await
            else {
                return;
            };
            let cache: web_sys::Cache = cache.unchecked_into();
            let options = web_sys::CacheQueryOptions::new();
            options.set_ignore_search(true);
            let _ = wasm_bindgen_futures::JsFuture::from(
                cache.delete_with_str_and_options(&path, &options),
            )
            .await;
        });
    }

    /// Deletes what this browser kept for offline use (visited pages, observations), so the
    /// next person at this browser cannot read it after sign-out.
    pub fn forget_local_data() {
        let Some(window) = web_sys::window() else {
            return;
        };
        if let Ok(caches) = window.caches() {
            let _ = caches.delete(PAGE_CACHE);
        }
        if let Ok(Some(factory)) = window.indexed_db() {
            let _ = factory.delete_database(OBSERVATIONS_DB);
        }
    }

    /// Sets (`Some`) or removes (`None`) one parameter of the address bar's query, without a
    /// navigation: the page's state becomes a link to share, and nothing reloads.
    pub fn set_query_param(name: &str, value: Option<&str>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Some(url) = window
            .location()
            .href()
            .ok()
            .and_then(|href| web_sys::Url::new(&href).ok())
        else {
            return;
        };
        match value {
            Some(value) => url.search_params().set(name, value),
            None => url.search_params().delete(name),
        }
        if let Ok(history) = window.history() {
            let state = history.state().unwrap_or(JsValue::NULL);
            let _ = history.replace_state_with_url(&state, "", Some(&url.href()));
        }
    }

    /// Reloads the page from the server (after a change that every part of it depends on,
    /// such as the team the session works in).
    pub fn reload() {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    }

    /// Moves the keyboard focus to the element with this id, if it is there.
    pub fn focus(id: &str) {
        if let Some(element) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = element.focus();
        }
    }

    /// Arrow keys move between the candidates of the observations table.
    pub fn row_keys(event: leptos::ev::KeyboardEvent) {
        let down = match event.key().as_str() {
            "ArrowDown" => true,
            "ArrowUp" => false,
            _ => return,
        };
        let Some(row) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.closest("tr.row").ok().flatten())
        else {
            return;
        };
        let sibling = if down {
            row.next_element_sibling()
        } else {
            row.previous_element_sibling()
        };
        if let Some(button) = sibling
            .and_then(|r| r.query_selector("button.candidate").ok().flatten())
            .and_then(|b| b.dyn_into::<web_sys::HtmlElement>().ok())
        {
            event.prevent_default();
            let _ = button.focus();
            button.scroll_into_view_with_bool(false);
        }
    }

    /// An open live stream and the callbacks it holds.
    struct LiveStream {
        source: EventSource,
        _closures: Vec<Closure<dyn Fn(MessageEvent)>>,
    }

    thread_local! {
        static STREAMS: RefCell<Vec<(u64, LiveStream)>> = const { RefCell::new(Vec::new()) };
    }

    /// Closes a stream opened by [`live_flows`].
    pub fn close_live(id: LiveFlows) {
        STREAMS.with_borrow_mut(|streams| {
            streams.retain(|(i, stream)| {
                if *i == id.0 {
                    stream.source.close();
                }
                *i != id.0
            })
        });
    }

    /// Subscribes to `GET /api/v1/events` (only `pipeline`'s flows when given).
    pub fn live_flows(
        pipeline: Option<&str>,
        on_flow: impl Fn(FlowSummary) + 'static,
        on_state: impl Fn(LiveState) + 'static,
    ) -> Option<LiveFlows> {
        let url = match pipeline {
            Some(p) => format!("/api/v1/events?pipeline={}", crate::format::encode(p)),
            None => "/api/v1/events".to_string(),
        };
        let source = EventSource::new(&url).ok()?;
        let on_state = Rc::new(on_state);
        let ready = {
            let on_state = on_state.clone();
            Closure::<dyn Fn(MessageEvent)>::new(move |_| on_state(LiveState::Live))
        };
        let flow = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(summary) = event
                .data()
                .as_string()
                .and_then(|t| serde_json::from_str::<FlowSummary>(&t).ok())
            {
                on_flow(summary);
            }
        });
        let error =
            Closure::<dyn Fn(MessageEvent)>::new(move |_| on_state(LiveState::Reconnecting));
        let _ = source.add_event_listener_with_callback("ready", ready.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("flow", flow.as_ref().unchecked_ref());
        source.set_onerror(Some(error.as_ref().unchecked_ref()));
        let id = CHANNEL.with_borrow_mut(|c| {
            c.next_id += 1;
            c.next_id
        });
        STREAMS.with_borrow_mut(|streams| {
            streams.push((
                id,
                LiveStream {
                    source,
                    _closures: vec![ready, flow, error],
                },
            ))
        });
        Some(LiveFlows(id))
    }
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    //! Server side: nothing to do.

    use super::*;

    pub fn worker_send(_message: &ToWorker) {}

    pub fn worker_listen(_f: impl Fn(&FromWorker) + 'static) -> u64 {
        0
    }

    pub fn worker_unlisten(_id: u64) {}

    pub fn is_online() -> bool {
        true
    }

    pub fn on_network_change(_f: impl Fn(bool) + 'static) {}

    pub fn register_service_worker() {}

    pub fn remember_page(_path: &str) {}

    pub fn set_query_param(_name: &str, _value: Option<&str>) {}

    pub fn row_keys(_event: leptos::ev::KeyboardEvent) {}

    pub fn reload() {}

    pub fn focus(_id: &str) {}

    pub fn forget_local_data() {}

    pub fn forget_flow(_id: &str) {}

    pub fn close_live(_id: LiveFlows) {}

    pub fn live_flows(
        _pipeline: Option<&str>,
        _on_flow: impl Fn(FlowSummary) + 'static,
        _on_state: impl Fn(LiveState) + 'static,
    ) -> Option<LiveFlows> {
        None
    }
}
