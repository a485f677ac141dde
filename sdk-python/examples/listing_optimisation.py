"""Listing optimisation, simulated: rewrite a seller's product title to rank better — LLM
keyword research → LLM title drafts → marketplace policy filter → LLM quality judge → pick the
best draft.

It goes wrong on every third seed (``seed % 3 == 1``) or with ``--drift``: keyword research
pulls in a competitor's brand ("Apple MacBook"), the policy filter has no trademark rule, and
the judge rewards the extra keyword coverage — the chosen title names a brand the seller does
not own. Flow Trail shows the keyword step's output, and the filter keeping those drafts.

    FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \\
      python sdk-python/examples/listing_optimisation.py --seed 4 --runs 3
"""

from __future__ import annotations

import argparse
import random

import flowtrail
from _select import select_best

BRAND = "Lumina"
ORIGINAL = "Lumina laptop stand aluminium"
BANNED = ["best", "cheapest", "#1", "guaranteed"]
KEYWORDS = ["adjustable", "ergonomic", "foldable", "portable", "ventilated", "desk", "riser"]


def run(ft: flowtrail.Client, rng: random.Random, drift: bool) -> str:
    with ft.flow("listing_optimisation", input={"title": ORIGINAL, "brand": BRAND},
                 tags={"env": "example", "drift": str(drift).lower()}) as flow:
        with flow.step("keyword_research", kind="generate", input={"title": ORIGINAL}) as step:
            keywords = step.boundary(
                "llm.keywords", {"title": ORIGINAL},
                lambda: rng.sample(KEYWORDS, 4) + (["Apple MacBook"] if drift else []),
            )
            step.output = {"keywords": keywords}
            step.reasoning = "keywords shoppers search with" + (
                " (a competitor's brand came along)" if drift else "")
        with flow.step("title_drafts", kind="generate", input={"keywords": keywords}) as step:
            drafts = []
            for i in range(12):
                words = rng.sample(keywords, min(3, len(keywords)))
                lead = BRAND if rng.random() > 0.15 else words[0].title()
                claim = f" {rng.choice(BANNED)}" if rng.random() < 0.2 else ""
                drafts.append(f"{lead} laptop stand {' '.join(words)}{claim}")
            step.output = {"drafts": len(drafts)}
        with flow.step("policy_filter", kind="filter",
                       input={"max_length": 80, "banned": BANNED}) as step:
            allowed = []
            for i, draft in enumerate(drafts):
                reasons = []
                if len(draft) > 80:
                    reasons.append(("too_long", f"{len(draft)} > 80 characters"))
                for word in BANNED:
                    if word in draft.split():
                        reasons.append(("banned_claim", f'contains "{word}"'))
                if not draft.startswith(BRAND):
                    reasons.append(("brand_not_first", "the title must start with the brand"))
                step.observe(f"draft-{i}", "rejected" if reasons else "kept", reasons=reasons,
                             attributes={"title": draft, "length": len(draft)})
                if not reasons:
                    allowed.append((i, draft))
            step.reasoning = "length, banned claims, brand first (no trademark rule)"
        with flow.step("quality_judge", kind="judge") as step:
            scored = []
            for i, draft in allowed:
                coverage = sum(1 for k in keywords if k.lower() in draft.lower()) / len(keywords)
                score = round(0.5 + 0.5 * coverage + rng.uniform(-0.05, 0.05), 3)
                step.observe(f"draft-{i}", "kept", score=score, attributes={"title": draft})
                scored.append((score, f"draft-{i}", draft))
        with flow.step("select_title", kind="rank") as step:
            ranked = select_best(step, scored)
        flow.output = {"title": ranked[0][2] if ranked else ORIGINAL}
    return flow.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drift", action="store_true")
    args = parser.parse_args()
    ft = flowtrail.Client()
    for n in range(args.runs):
        seed = args.seed + n
        rng = random.Random(seed)
        print(f"flow {run(ft, rng, args.drift or seed % 3 == 1)} (seed {seed})")
    ft.shutdown(10.0)
    print(ft.stats())


if __name__ == "__main__":
    main()
