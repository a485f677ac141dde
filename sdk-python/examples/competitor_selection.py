"""Competitor selection, simulated: given a seller's product, find the best competitor in a
catalog — LLM keywords → catalog search → price/rating filter → LLM relevance → rank/select.

Some seeds make the keyword step drift ("stand" → phone stands and cases), and the judge is
then fooled by the shared keyword: the run picks a phone case as the competitor of a laptop
stand. Flow Trail shows which step went wrong.

    FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=ftk_… \\
      python sdk-python/examples/competitor_selection.py --seed 7 --runs 3
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import flowtrail
from _select import select_best

SELLER_PRICE = 45.0
KINDS = [
    ("Laptop Stands", ["Adjustable Aluminium Laptop Stand", "Ergonomic Laptop Riser",
                       "Foldable Laptop Stand for Desk", "Ventilated Notebook Stand"], 42.0),
    ("Cell Phone Cases", ["Phone Case with Kickstand", "Rugged Phone Stand Case",
                          "Slim Phone Case Stand Grip"], 12.0),
    ("Phone Stands", ["Adjustable Phone Stand", "Desk Phone Holder Stand"], 18.0),
    ("Monitor Arms", ["Single Monitor Arm Stand", "Gas Spring Monitor Mount"], 75.0),
]


@dataclass
class Product:
    id: str
    title: str
    category: str
    price: float
    rating: float


def catalog(rng: random.Random) -> list[Product]:
    products = []
    for category, titles, price in KINDS:
        for n in range(60):
            title = titles[n % len(titles)]
            products.append(Product(
                id=f"B0{category[:3].upper()}{n:04d}", title=title, category=category,
                price=round(price * rng.uniform(0.5, 1.6), 2), rating=round(rng.uniform(2.5, 5.0), 1),
            ))
    return products


def run(ft: flowtrail.Client, rng: random.Random, products: list[Product]) -> str:
    title = "Adjustable Aluminium Laptop Stand"
    with ft.flow("competitor_selection", input={"title": title, "price": SELLER_PRICE},
                 tags={"seller": f"s-{rng.randrange(100)}", "env": "example"}) as flow:
        with flow.step("keywords", kind="generate", input={"title": title}) as step:
            drift = rng.random() < 0.4
            keywords = step.boundary(
                "llm.keywords", {"title": title},
                lambda: ["stand", "phone"] if drift else ["laptop stand", "laptop riser"],
            )
            step.output = {"keywords": keywords}
            step.reasoning = "keywords from the title" + (" (drifted to 'stand')" if drift else "")
        with flow.step("search", kind="retrieve", input={"keywords": keywords}) as step:
            found = [p for p in products
                     if any(k.split()[0].lower() in p.title.lower() for k in keywords)]
            step.candidates_in = len(products)
            step.candidates_out = len(found)
            step.output = {"found": len(found)}
        low, high = SELLER_PRICE * 0.5, SELLER_PRICE * 2
        with flow.step("price_rating_filter", kind="filter",
                       input={"min_price": low, "max_price": high, "min_rating": 3.5}) as step:
            kept = []
            for p in found:
                reasons = []
                if not low <= p.price <= high:
                    reasons.append(("price_out_of_range", f"{p.price:.2f} not in {low:.2f}–{high:.2f}"))
                if p.rating < 3.5:
                    reasons.append(("rating_too_low", f"{p.rating} < 3.5"))
                step.observe(p.id, "rejected" if reasons else "kept", reasons=reasons,
                             attributes={"price": p.price, "rating": p.rating, "title": p.title})
                if not reasons:
                    kept.append(p)
            step.reasoning = "kept 0.5x–2x of the seller's price, rating ≥ 3.5"
        with flow.step("relevance", kind="judge") as step:
            judged = []
            for p in kept:
                # The judge over-weights the shared keyword "stand".
                score = 0.9 if "Laptop" in p.title else (0.8 if "Stand" in p.title else 0.2)
                score += rng.uniform(-0.15, 0.15)
                relevant = score >= 0.5
                step.observe(p.id, "kept" if relevant else "rejected", score=round(score, 3),
                             reasons=None if relevant else [("not_relevant", f"score {score:.2f} < 0.5")],
                             attributes={"category": p.category})
                if relevant:
                    judged.append((score, p))
        with flow.step("rank", kind="select") as step:
            ranked = select_best(step, [(round(s, 3), p.id, p) for s, p in judged], "lower_rank")
        best = ranked[0][2] if ranked else None
        flow.output = {"selected": best.id if best else None,
                       "category": best.category if best else None}
    return flow.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    products = catalog(rng)
    ft = flowtrail.Client()
    for _ in range(args.runs):
        print(f"flow {run(ft, rng, products)}")
    ft.shutdown(10.0)
    print(ft.stats())


if __name__ == "__main__":
    main()
