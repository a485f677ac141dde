//! Browser entry point of the dashboard: hydrates the server-rendered page. Nothing else
//! belongs here; components live in `flowtrail-app`, the Web Worker in `flowtrail-browser-worker`.

#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(flowtrail_app::App);
}
