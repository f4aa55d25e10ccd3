"""product-descriptions: a product's features -> a one- or two-sentence shop description.

The guide's running example. Inputs are comma lists of features drawn from the catalog; targets are
composed from the catalog's phrasings: a name phrase (brand, color and material placed in several
ways), one of many sentence frames for the first sentence, an optional second sentence, and the
product's use placed up front, at the end or in a sentence of its own. Every input feature is said.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tuning_bench import TaskKind, hookimpl
from tuning_bench.api.task import Splits, Task

from .catalog import SPLIT_SIZES, Product, sample_product
from .wording import capitalize, fix_articles, join_words

SEED = 20240611
MIN_FEATURES, MAX_FEATURES_CHARS = 3, 90
MIN_TARGET_CHARS, MAX_TARGET_CHARS = 60, 165


@dataclass(frozen=True)
class Point:
    """One thing the description has to say, phrased both as a verb phrase and as a noun phrase."""

    verb: str
    noun: str


# --- the name phrase -----------------------------------------------------------------------------------

COLOR_VERBS = ("comes in {}", "is finished in {}", "arrives in {}")
COLOR_NOUNS = ("a {} finish", "a {} colorway", "a {} look")
COLOR_LEADS = ("Finished in {}", "Dressed in {}", "Available in {}")
MATERIAL_VERBS = ("is made from {}", "is built from {}", "is crafted from {}")
MATERIAL_NOUNS = ("{} construction", "a {} build", "a sturdy {} body")
MATERIAL_LEADS = ("Made from {}", "Built from {}", "Crafted from {}")


def name_phrase(product: Product, rng: random.Random) -> tuple[str, list[Point], list[str]]:
    """The noun phrase naming the product, plus what it left for clauses and for a leading phrase.

    Brand, color and material each go into the name ("the Aqualine blue water bottle"), after it
    ("... in blue", "... from Aqualine"), into a clause of their own, or into a leading participle
    ("Made from glass, ...").
    """
    points: list[Point] = []
    leads: list[str] = []
    before: list[str] = []
    after: list[str] = []
    if product.color:
        place = rng.choice(("before", "after", "clause", "lead"))
        if place == "before":
            before.append(product.color)
        elif place == "after":
            after.append(f"in {product.color}")
        elif place == "clause":
            points.append(
                Point(rng.choice(COLOR_VERBS).format(product.color), rng.choice(COLOR_NOUNS).format(product.color))
            )
        else:
            leads.append(rng.choice(COLOR_LEADS).format(product.color))
    if product.material:
        place = rng.choice(("before", "clause", "lead"))
        if place == "before":
            before.append(product.material)
        elif place == "clause":
            points.append(
                Point(
                    rng.choice(MATERIAL_VERBS).format(product.material),
                    rng.choice(MATERIAL_NOUNS).format(product.material),
                )
            )
        else:
            leads.insert(0, rng.choice(MATERIAL_LEADS).format(product.material))
    noun = " ".join(before + [product.kind] + after)
    if product.brand:
        style = rng.choice(("the {b} {n}", "the {b} {n}", "{b}'s {n}", "this {n} from {b}", "the {n} by {b}"))
        phrase = style.format(b=product.brand, n=noun)
    else:
        phrase = rng.choice(("the {n}", "this {n}", "our {n}")).format(n=noun)
    # Two leading participles read badly ("Made from x, in y, ..."): join them into one.
    lead = " and ".join([leads[0], leads[1][0].lower() + leads[1][1:]]) if len(leads) == 2 else "".join(leads)
    return phrase, points, [lead] if lead else []


# --- sentence frames --------------------------------------------------------------------------------------
# A frame turns the name phrase and some points into a sentence. Frames that start with the name
# phrase may take a leading phrase ("Designed for hiking trips, the ...").


def verbs(points: list[Point]) -> str:
    return join_words([p.verb for p in points])


def nouns(points: list[Point]) -> str:
    return join_words([p.noun for p in points])


def also(adverb: str, points: list[Point]) -> str:
    """'also holds 750 ml', but 'is also dishwasher safe' (the adverb goes after 'is')."""
    said = verbs(points)
    return f"is {adverb} {said[3:]}" if said.startswith("is ") else f"{adverb} {said}"


Frame = Callable[[str, list[Point], random.Random], str]

SUBJECT_FRAMES: tuple[Frame, ...] = (
    lambda np, ps, rng: f"{np} {verbs(ps)}",
    lambda np, ps, rng: f"{np} {verbs(ps)}",
    lambda np, ps, rng: f"{np} {rng.choice(('comes with', 'offers', 'features', 'boasts', 'brings you'))} {nouns(ps)}",
    lambda np, ps, rng: f"{np} pairs {ps[0].noun} with {nouns(ps[1:])}" if len(ps) > 1 else f"{np} {verbs(ps)}",
    lambda np, ps, rng: f"{np} {rng.choice(('gives you', 'packs in', 'is all about'))} {nouns(ps)}",
)

OPEN_FRAMES: tuple[Frame, ...] = (
    lambda np, ps, rng: f"Meet {np}: it {verbs(ps)}",
    lambda np, ps, rng: f"Meet {np}, with {nouns(ps)}",
    lambda np, ps, rng: f"Say hello to {np}, which {verbs(ps)}",
    lambda np, ps, rng: f"Enjoy {nouns(ps)} with {np}",
    lambda np, ps, rng: f"Discover {np}, featuring {nouns(ps)}",
    lambda np, ps, rng: f"Introducing {np}, which {verbs(ps)}",
    lambda np, ps, rng: f"Upgrade to {np}, which {verbs(ps)}",
    lambda np, ps, rng: f"Get {nouns(ps)} with {np}",
    lambda np, ps, rng: f"Here's {np}, with {nouns(ps)}",
    lambda np, ps, rng: (
        f"With {nouns(ps)}, {np} {rng.choice(('is a joy to use', 'makes every day easier', 'is built to last', 'earns its place'))}"
    ),
    lambda np, ps, rng: (
        f"Looking for something that {ps[0].verb}? {capitalize(np)} does, and it {also('also', ps[1:])}"
        if len(ps) > 1
        else f"Looking for something that {ps[0].verb}? Try {np}"
    ),
)

FOLLOW_FRAMES: tuple[Callable[[list[Point], random.Random], str], ...] = (
    lambda ps, rng: f"It {also('also', ps)}",
    lambda ps, rng: f"It {verbs(ps)}",
    lambda ps, rng: f"Plus, it {verbs(ps)}",
    lambda ps, rng: f"On top of that, it {verbs(ps)}",
    lambda ps, rng: f"Better still, it {verbs(ps)}",
    lambda ps, rng: f"It {also('even', ps)}",
    lambda ps, rng: f"You also get {nouns(ps)}",
    lambda ps, rng: f"There's also {nouns(ps)}",
    lambda ps, rng: f"Expect {nouns(ps)} too",
    lambda ps, rng: f"It rounds things off with {nouns(ps)}",
    lambda ps, rng: f"Add {nouns(ps)} and you're set",
)

USE_LEADS = ("Designed for {}", "Made for {}", "Built for {}", "Perfect for {}")
USE_TAILS = (", perfect for {}", ", ideal for {}", ", great for {}", ", made for {}", ", just right for {}")
USE_SENTENCES = (
    "Perfect for {}.",
    "Ideal for {}.",
    "A great pick for {}.",
    "It's made for {}.",
    "Just right for {}.",
    "A smart choice for {}.",
)


def describe(product: Product, rng: random.Random) -> str:
    """A one- or two-sentence shop description that says everything the product states."""
    phrase, points, leads = name_phrase(product, rng)
    points += [Point(f.verb_phrase(rng), f.noun_phrase(rng)) for f in product.features]
    rng.shuffle(points)
    use = product.use
    if use and not leads and rng.random() < 0.35:
        leads, use = [rng.choice(USE_LEADS).format(use)], None

    split = len(points) >= 4 or (len(points) >= 2 and rng.random() < 0.6)
    first_count = rng.randint(1, min(3, len(points) - 1)) if split else len(points)
    first, rest = points[:first_count], points[first_count:]

    if leads:
        sentences = [f"{leads[0]}, {rng.choice(SUBJECT_FRAMES)(phrase, first, rng)}"]
    else:
        sentences = [capitalize(rng.choice(SUBJECT_FRAMES + OPEN_FRAMES)(phrase, first, rng))]
    if rest:
        sentences.append(rng.choice(FOLLOW_FRAMES)(rest, rng))
    if use and len(sentences) == 1 and rng.random() < 0.5:
        sentences.append(rng.choice(USE_SENTENCES).format(use).rstrip("."))
    elif use:
        sentences[-1] += rng.choice(USE_TAILS).format(use)
    return fix_articles(" ".join(s if s.endswith(("?", ".")) else s + "." for s in sentences))


def feature_list(product: Product, rng: random.Random) -> str:
    """The input: the product type first, then its other features in a shuffled order."""
    items = [product.brand, product.color, product.material] + [f.tag() for f in product.features]
    items = [item for item in items if item]
    if product.use:
        items.append(f"for {product.use}")
    rng.shuffle(items)
    return ", ".join([product.kind] + items)


def right_size(features: str, description: str) -> bool:
    """Short texts keep CPU training affordable: about 10-25 input and 15-40 target tokens."""
    return (
        len(features.split(", ")) >= MIN_FEATURES
        and len(features) <= MAX_FEATURES_CHARS
        and MIN_TARGET_CHARS <= len(description) <= MAX_TARGET_CHARS
    )


def generate_splits(seed: int = SEED, sizes: dict[str, int] = SPLIT_SIZES) -> Splits:
    """Train, validation and test examples; the same seed gives the same data, and inputs never repeat."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: Splits = {}
    for split, size in sizes.items():
        examples = []
        while len(examples) < size:
            product = sample_product(rng, brand_p=0.75, color_p=0.45, material_p=0.4, use_p=0.3)
            features = feature_list(product, rng)
            description = describe(product, rng)
            if features in seen or not right_size(features, description):
                continue
            seen.add(features)
            examples.append({"features": features, "description": description, "category": product.category.name})
        splits[split] = examples
    return splits


TASK = Task(
    name="product-descriptions",
    description="Write a one- or two-sentence shop description from a product's features.",
    kind=TaskKind.GENERATION,
    instruction="Write a one- or two-sentence shop description of the product that mentions every listed feature. Output only the description.",
    input_template="Features: {features}",
    target_template="{description}",
    load_splits=generate_splits,
    metrics=("rouge_l", "chrf"),
    headline="rouge_l",
    higher_is_better=True,
    max_new_tokens=56,
)


@hookimpl
def register_tasks(register):
    register(TASK)
