//! A candidate's journey: its path through every step of the flow, with where and why it was
//! eliminated. The page opens it as a panel under the observations table ([`Journey`]); the
//! server renders its body to HTML ([`render`], served by `api::journey_html`), so the page's
//! bundle carries no code for it.

use leptos::prelude::*;

use crate::api::journey_html;
use crate::pages::{LoadError, error_text};

/// One candidate's path through every step of the flow.
#[component]
pub(super) fn Journey(
    flow_id: String,
    candidate: String,
    close: impl Fn() + 'static,
) -> impl IntoView {
    // Only ever opened in the browser (see `Observations`), so fetched there.
    let journey = LocalResource::new(move || journey_html(flow_id.clone(), candidate.clone()));
    view! {
        <section class="journey card" aria-label="Candidate journey">
            <div class="journey-head">
                <h3>"Journey"</h3>
                <button type="button" class="secondary" on:click=move |_| close()>"Close"</button>
            </div>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the journey…"</p> }>
                {move || Suspend::new(async move {
                    match journey.await {
                        Ok(html) => view! { <div inner_html=html></div> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Server side: fragments rendered to HTML.
#[cfg(feature = "ssr")]
pub mod render {
    use flowtrail_types::{CandidateJourney, EliminationCut, Presence};
    use leptos::prelude::*;

    use crate::format;

    /// A candidate's journey, rendered.
    pub fn journey(journey: CandidateJourney) -> String {
        journey_view(journey).to_html()
    }

    /// "Why not this candidate?": how far it was from the cut, and the nearest kept
    /// candidate side by side with it.
    fn cut_view(cut: EliminationCut, candidate: String, reasons: String) -> impl IntoView {
        let mut facts = Vec::new();
        if let (Some(score), Some(low)) = (cut.score, cut.lowest_kept_score) {
            // A candidate may be cut with a score at or above the lowest kept (another
            // reason, a rule, a tie): then it was not short of the cut.
            let gap = cut.score_gap.unwrap_or(low - score);
            let how_far = if gap > 0.0 {
                format!("{} short", format::score(Some(gap)))
            } else if gap == 0.0 {
                "level with it: not cut by its score".to_string()
            } else {
                format!(
                    "{} above it: not cut by its score",
                    format::score(Some(-gap))
                )
            };
            facts.push(format!(
                "score {} against {} for the lowest kept ({how_far})",
                format::score(Some(score)),
                format::score(Some(low)),
            ));
        }
        if let Some(position) = cut.position {
            let kept = cut
                .kept
                .map(|k| format!(", {} kept", format::count(k)))
                .unwrap_or_default();
            facts.push(format!(
                "place {} of {} scored{kept}",
                format::count(position),
                format::count(cut.ranked)
            ));
        }
        if !cut.exact {
            facts.push("among the stored sample".into());
        }
        let facts = (!facts.is_empty()).then(
            || view! { <p class="cut">{format!("Distance to the cut: {}.", facts.join("; "))}</p> },
        );
        let side = cut.nearest_kept.map(|kept| {
            view! {
                <table class="data cut-side">
                    <caption>"Why not this candidate? The nearest kept candidate beside it"</caption>
                    <thead>
                        <tr><th scope="col">""</th><th scope="col">"This candidate"</th><th scope="col">"Nearest kept"</th></tr>
                    </thead>
                    <tbody>
                        <tr><th scope="row">"Candidate"</th><td class="mono">{candidate}</td><td class="mono">{kept.candidate_id.clone()}</td></tr>
                        <tr><th scope="row">"Score"</th><td class="num">{format::score(cut.score)}</td><td class="num">{format::score(kept.score)}</td></tr>
                        <tr><th scope="row">"Verdict"</th><td>"rejected"</td><td>{kept.verdict.as_str()}</td></tr>
                        <tr><th scope="row">"Reasons"</th><td>{reasons}</td><td>{format::reasons(&kept.reasons)}</td></tr>
                    </tbody>
                </table>
            }
        });
        view! { {facts}{side} }
    }

    fn journey_view(j: CandidateJourney) -> impl IntoView {
        let verdict = j
            .final_verdict
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| "never observed".into());
        let eliminated = j.eliminated_at.as_ref().map(|e| {
            let why = e
                .reasons
                .iter()
                .map(|r| match &r.text {
                    Some(t) => format!("{} ({t})", r.code),
                    None => r.code.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let cut = e
                .cut
                .clone()
                .map(|cut| cut_view(cut, j.candidate_id.clone(), format::reasons(&e.reasons)));
            view! {
                <p class="eliminated">"Eliminated at #"{e.seq}" "<strong>{e.step.clone()}</strong>": "{why}</p>
                {cut}
            }
        });
        let steps = j
            .steps
            .into_iter()
            .map(|s| {
                let presence = match s.presence {
                    Presence::Observed => s.verdict.map(|v| v.as_str()).unwrap_or("observed").to_string(),
                    Presence::Absent => "absent".to_string(),
                    Presence::Unknown => "unknown (sampled)".to_string(),
                };
                let reasons = format::reasons(&s.reasons);
                view! {
                    <li class=format!("journey-step presence-{}", match s.presence { Presence::Observed => "observed", Presence::Absent => "absent", Presence::Unknown => "unknown" })>
                        <span class=format!("kind kind-{}", s.kind)>{s.kind.as_str()}</span>
                        <span class="step-name">"#"{s.seq}" "{s.name.clone()}</span>
                        <span class="journey-verdict">{presence}</span>
                        <span class="num">{format::score(s.score)}</span>
                        <span class="reason-text">{reasons}</span>
                    </li>
                }
            })
            .collect_view();
        view! {
            <p class="journey-summary">
                <span class="mono">{j.candidate_id.clone()}</span>": "{verdict}
            </p>
            {eliminated}
            <ol class="journey-steps">{steps}</ol>
        }
    }
}
