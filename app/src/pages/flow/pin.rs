//! The flow's pin: retention never deletes a pinned flow. A toggle button (`aria-pressed`)
//! for members and admins that works with or without JavaScript; viewers see it disabled,
//! with the reason beside it.

use leptos::prelude::*;

use crate::api::SetPin;
use crate::pages::error_text;

#[component]
pub fn PinButton(flow_id: String, pinned: bool, can_pin: bool) -> impl IntoView {
    let pin = ServerAction::<SetPin>::new();
    let state = RwSignal::new(pinned);
    Effect::new(move |_| {
        if let Some(Ok(now)) = pin.value().get() {
            state.set(now);
        }
    });
    let explained = move || {
        if state.get() {
            "Pinned: retention never deletes this flow."
        } else {
            "Not pinned: retention deletes it once it is older than its pipeline's days."
        }
    };
    if !can_pin {
        return view! {
            <span class="pin">
                <button type="button" class="secondary pin-button" disabled aria-pressed=pinned.to_string() aria-describedby="pin-help">
                    <span class="pin-mark" aria-hidden="true">{if pinned { "● " } else { "○ " }}</span>
                    "Pin"
                </button>
                <span id="pin-help" class="hint">
                    {explained}" Viewers cannot pin or unpin flows; members and admins can."
                </span>
            </span>
        }
        .into_any();
    }
    let error = move || {
        pin.value()
            .get()
            .and_then(Result::err)
            .map(|e| view! { <span class="error" role="alert">{error_text(&e)}</span> })
    };
    view! {
        <ActionForm action=pin attr:class="pin inline-form">
            <input type="hidden" name="id" value=flow_id/>
            <input type="hidden" name="pinned" value=move || (!state.get()).to_string()/>
            <button type="submit" class="secondary pin-button" aria-pressed=move || state.get().to_string() aria-describedby="pin-help">
                // The state is aria-pressed; the mark only shows it.
                <span class="pin-mark" aria-hidden="true">{move || if state.get() { "● " } else { "○ " }}</span>
                "Pin"
            </button>
            <span id="pin-help" class="hint">{explained}</span>
            {error}
        </ActionForm>
    }
    .into_any()
}
