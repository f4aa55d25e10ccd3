"""attribute-extraction: a product description -> a compact JSON object of its attributes.

Descriptions come from the same composer as product-descriptions, sometimes with a price, and mix
attributes with features that are not attributes (battery life, weight, uses), so the model has to
pick out only the listed keys. The target holds the attributes the description states, always in
the order of ATTRIBUTE_KEYS, with values copied as written.
"""

from __future__ import annotations

import json
import random

from tuning_bench import TaskKind, hookimpl
from tuning_bench.api.task import Splits, Task

from .catalog import ATTRIBUTE_KEYS, SPLIT_SIZES, Product, sample_product
from .wording import fix_articles
from .product_descriptions import describe

SEED = 20240613
PRICE_P = 0.6
MIN_CHARS, MAX_CHARS = 70, 160  # descriptions of about 20-40 tokens
MAX_JSON_CHARS = 120  # keeps the JSON within about 40 tokens

PRICE_SENTENCES = (
    "Yours for {}.",
    "Now just {}.",
    "Priced at {}.",
    "It sells for {}.",
    "All for {}.",
    "Available now for {}.",
    "Only {}.",
)
PRICE_LEADS = ("Now {}! ", "Just {}: ", "On sale at {}. ")


def with_price(description: str, product: Product, rng: random.Random) -> str:
    """The description with the product's price said before or after it."""
    if rng.random() < 0.25:
        return fix_articles(rng.choice(PRICE_LEADS).format(product.price) + description)
    return description + " " + rng.choice(PRICE_SENTENCES).format(product.price)


def attributes_json(product: Product, priced: bool) -> str:
    """The target: compact JSON of the stated attributes, keys in ATTRIBUTE_KEYS order."""
    return json.dumps(product.attributes(with_price=priced), ensure_ascii=False)


def generate_splits(seed: int = SEED, sizes: dict[str, int] = SPLIT_SIZES) -> Splits:
    """Train, validation and test examples; the same seed gives the same data, and inputs never repeat."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: Splits = {}
    for split, size in sizes.items():
        examples = []
        while len(examples) < size:
            product = sample_product(
                rng, brand_p=0.75, color_p=0.6, material_p=0.5, use_p=0.25, features=(1, 2), attribute_p=0.6
            )
            priced = rng.random() < PRICE_P
            description = describe(product, rng)
            if priced:
                description = with_price(description, product, rng)
            if description in seen or not MIN_CHARS <= len(description) <= MAX_CHARS:
                continue
            attributes = attributes_json(product, priced)
            if len(attributes) > MAX_JSON_CHARS:
                continue
            seen.add(description)
            examples.append({"description": description, "attributes": attributes, "category": product.category.name})
        splits[split] = examples
    return splits


TASK = Task(
    name="attribute-extraction",
    description="Extract a product's attributes from its description as JSON.",
    kind=TaskKind.GENERATION,
    instruction=(
        f"Extract the product's attributes from the description as a JSON object, using only these keys in this order: "
        f"{', '.join(ATTRIBUTE_KEYS)}; include a key only when the description states it. Output only the JSON."
    ),
    input_template="Description: {description}",
    target_template="{attributes}",
    load_splits=generate_splits,
    metrics=("json_field_f1", "json_exact_match"),
    headline="json_field_f1",
    higher_is_better=True,
    max_new_tokens=56,
)


@hookimpl
def register_tasks(register):
    register(TASK)
