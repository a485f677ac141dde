"""Product categorisation, simulated: put a new product in the right leaf of a ~200-category
taxonomy — LLM attribute extraction → taxonomy retrieval → required-attribute rules → LLM
classifier → choose.

It goes wrong on every third seed (``seed % 3 == 1``) or with ``--drift``: attribute
extraction misses the product's ``material``, the rules then eliminate "Laptop Stands" (which
requires it) for ``missing_attribute``, and the classifier picks the best of what is left —
"Phone Stands". Flow Trail shows the right category rejected in the rules step, and why.

    FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \\
      python sdk-python/examples/product_categorisation.py --seed 4 --runs 3
"""

from __future__ import annotations

import argparse
import random

import flowtrail
from _select import select_best

PRODUCT = "Lumina adjustable aluminium laptop stand, fits 10-17 inch notebooks"
NAMED = {
    "Laptop Stands": (["material", "max_screen_inch"], 0.95),
    "Phone Stands": ([], 0.7),
    "Monitor Arms": (["mount_type", "max_screen_inch"], 0.5),
    "Tablet Stands": (["compatible_devices"], 0.65),
    "Desk Organisers": ([], 0.3),
}


def taxonomy(rng: random.Random):
    categories = [(f"cat-{i:03d}", name, required) for i, (name, (required, _)) in enumerate(NAMED.items())]
    for i in range(len(categories), 200):
        categories.append((f"cat-{i:03d}", f"Home & Office {i}", rng.sample(
            ["material", "colour", "size", "voltage", "mount_type"], rng.randint(0, 2))))
    return categories


def run(ft: flowtrail.Client, rng: random.Random, drift: bool, categories) -> str:
    with ft.flow("product_categorisation", input={"title": PRODUCT},
                 tags={"env": "example", "drift": str(drift).lower()}) as flow:
        with flow.step("extract_attributes", kind="generate", input={"title": PRODUCT}) as step:
            attributes = step.boundary("llm.attributes", {"title": PRODUCT}, lambda: {
                **({} if drift else {"material": "aluminium"}),
                "max_screen_inch": 17, "adjustable": True,
            })
            step.output = attributes
            step.reasoning = "attributes read from the title" + (" (material missed)" if drift else "")
        with flow.step("taxonomy_search", kind="retrieve", input={"title": PRODUCT}) as step:
            found = [c for c in categories
                     if c[1] in NAMED or rng.random() < 0.15]
            step.candidates_in = len(categories)
            step.candidates_out = len(found)
        with flow.step("attribute_rules", kind="filter") as step:
            passed = []
            for cid, name, required in found:
                missing = [a for a in required if a not in attributes]
                step.observe(cid, "rejected" if missing else "kept",
                             reasons=[("missing_attribute", f"{name} requires {a}") for a in missing],
                             attributes={"category": name, "requires": required})
                if not missing:
                    passed.append((cid, name))
            step.reasoning = "a category's required attributes must all be known"
        with flow.step("llm_classifier", kind="judge") as step:
            scored = []
            for cid, name in passed:
                base = NAMED.get(name, (None, 0.1))[1]
                score = round(max(0.0, min(1.0, base + rng.uniform(-0.05, 0.05))), 3)
                keep = score >= 0.25
                step.observe(cid, "kept" if keep else "rejected", score=score,
                             reasons=None if keep else [("low_confidence", f"{score} < 0.25")],
                             attributes={"category": name})
                if keep:
                    scored.append((score, cid, name))
        with flow.step("choose_category", kind="rank") as step:
            ranked = select_best(step, scored)
        flow.output = {"category": ranked[0][2] if ranked else None}
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
        print(f"flow {run(ft, rng, args.drift or seed % 3 == 1, taxonomy(random.Random(0)))} (seed {seed})")
    ft.shutdown(10.0)
    print(ft.stats())


if __name__ == "__main__":
    main()
