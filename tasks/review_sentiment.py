"""review-sentiment: a product review -> positive or negative.

About a third of the reviews are hard cases, where the words that carry sentiment point the other
way from the verdict: negation ("not bad at all"), mixed praise and complaint with an explicit
overall verdict, faint praise, light sarcasm, complaint-shaped praise, low expectations beaten, and
comparisons with another product. Every review still has one clear reading; the ``case`` field
names its kind. Labels are balanced exactly in every split.

Reviews are built from sentence pools below, filled with a product drawn from the catalog.
"""

from __future__ import annotations

import random

from tuning_bench import TaskKind, hookimpl
from tuning_bench.api.task import Splits, Task, template_fields

from .catalog import SPLIT_SIZES, sample_product
from .wording import capitalize, fix_articles, negate, plural

SEED = 20240612
LABELS = ("negative", "positive")
HARD_IN_20 = 7  # 35% hard cases
MIN_CHARS, MAX_CHARS = 60, 230  # about 15-50 tokens

GOOD = ("excellent", "great", "superb", "impressive", "brilliant", "fantastic", "spot on", "first-class")
BAD = ("poor", "disappointing", "terrible", "awful", "subpar", "dreadful", "a letdown", "really bad")
NUMBERS = ("two", "three", "four", "five", "six", "ten")
SPANS = ("days", "weeks")
GENERIC_ASPECTS = ("build quality", "design", "finish")
TRIVIA = (
    "the box was sturdy",
    "it arrived on time",
    "the color matches the photo",
    "the instructions were easy to read",
    "it looks nice on the shelf",
    "the packaging was pretty",
    "the delivery driver was friendly",
)
ANNOYANCES = (
    "waiting weeks for a refund",
    "buying things twice",
    "long calls with customer service",
    "reading error messages",
)

# --- plain reviews ---------------------------------------------------------------------------------------

CONTEXT = (
    "Bought this for my {relative}.",
    "I've had it for {n} {span} now.",
    "Ordered the {color} one.",
    "Got it on sale last month.",
    "This replaced my old {kind}.",
    "Second order from {brand}.",
    "I use it most days.",
)
PRAISE = (
    "I love this {kind}.",
    "The {aspect} is {good}.",
    "It {feature}, just as promised.",
    "Really happy with my {brand} {kind}.",
    "Works perfectly and {feature}.",
    "Great value for the money.",
    "Exactly what I was looking for.",
    "The {aspect} is {good} and it {feature}.",
    "Easily the best {kind} I've owned.",
    "Solid, well made and a pleasure to use.",
)
COMPLAINTS = (
    "It {problem} after {n} {span}.",
    "The {aspect} is {bad}.",
    "Very disappointed with this {kind}.",
    "Cheaply made and overpriced.",
    "Mine {problem} within {n} {span}.",
    "The {aspect} is {bad} and it {problem} after a week.",
    "Poor quality from start to finish.",
    "Arrived scratched, and it {problem} soon after.",
    "Honestly the worst {kind} I've bought.",
)
PRAISE_VERDICTS = (
    "Would buy again.",
    "Highly recommend it.",
    "Worth every penny.",
    "Five stars.",
    "I'd recommend it to anyone.",
    "Buying another as a gift.",
)
COMPLAINT_VERDICTS = (
    "Returning it.",
    "Save your money.",
    "Would not buy again.",
    "One star.",
    "I want a refund.",
    "Avoid.",
)

# --- hard reviews --------------------------------------------------------------------------------------
# Each recipe is a list of (sentence pool, chance the sentence is included).

NEGATED_COMPLAINTS = (  # positive reviews worded with negations
    "The {aspect} is not bad at all.",
    "No complaints about the {aspect}.",
    "I can't fault it.",
    "Not a single problem in {n} {span}.",
    "I have nothing bad to say about it.",
    "It has never let me down.",
    "I couldn't be happier with it.",
    "I wouldn't change a thing.",
    "Not once has the {aspect} given me trouble.",
    "I don't regret buying it for a second.",
    "I wouldn't hesitate to buy it again.",
    "It didn't disappoint, not even slightly.",
)
NEGATED_PRAISE = (  # negative reviews worded with negations of praise
    "Not worth the money.",
    "I can't recommend it.",
    "I wouldn't buy it again.",
    "The {aspect} is not good at all.",
    "It {not_feature}, whatever the listing says.",
    "I'm not happy with it.",
    "It isn't what the listing promised.",
    "Not once has it worked properly.",
    "Don't waste your money on it.",
    "I would not call the {aspect} {good}, not even close.",
    "Nothing about the {aspect} is impressive.",
    "It never worked the way it should.",
)
MIXED_POSITIVE = (
    "The {aspect} is {bad}, but the {aspect2} is {good}. Overall, I'm glad I bought it.",
    "Delivery took {n} {span} and the {aspect} could be better. Still, it {feature} and I love it.",
    "It's a bit pricey and the {aspect} is {bad}. That said, it {feature}, and I'd buy it again.",
    "Although the {aspect} is {bad}, the rest is {good}, so I'm keeping it.",
    "Setup was a pain, but once running it {feature}. Happy with it overall.",
    "The first one {problem}, but the replacement has been {good}. Overall a great buy.",
)
MIXED_NEGATIVE = (
    "The {aspect} is {good}, but it {problem} after {n} {span}. Overall, not worth it.",
    "Looks lovely and it {feature}, but it {problem} within a week. It's going back.",
    "Although the {aspect} is {good}, it {problem}, so I can't recommend it.",
    "Great price and fast delivery. Sadly it {problem} after {n} {span}, so overall a waste of money.",
    "I wanted to love it, and the {aspect} is {good}, but it {problem}. Returning it.",
    "It {feature}, I'll admit, but the {aspect} is {bad}. On balance, I regret buying it.",
)
FAINT_PRAISE = (
    "The nicest thing I can say is that {trivia}.",
    "Well, {trivia}, so there's that.",
    "At least {trivia}.",
    "{Trivia}. That's about it.",
    "It's fine, I suppose, if you only want it for display.",
    "The best part of this {kind} was the box.",
)
FAINT_CLOSERS = (
    "I expected much more from {brand}.",
    "I won't be ordering another.",
    "Not what I paid for.",
    "I'll keep looking for a better one.",
    "Two stars, and that's generous.",
)
SARCASM = (
    "Great, another {kind} that {problem} after {n} {span}.",
    "Just what I wanted: a {kind} that {problem} in the first week.",
    "Brilliant. It {problem} on day {n}.",
    "Thanks, {brand}, for a {kind} that {problem} almost immediately.",
    "Wonderful {kind} if you enjoy {annoyance}.",
    "Five stars for the packaging, zero for the {kind}, which {problem}.",
    "Love how the {aspect} turned out to be {bad}. Money well spent.",
)
MOCK_COMPLAINTS = (
    "My only complaint is that I didn't buy it sooner.",
    "The only problem is that now everyone in my house wants one.",
    "Warning: once you try this {kind}, you won't want any other.",
    "I'm annoyed I wasted money on cheaper ones before this.",
    "Dangerously good. I've already ordered a second one.",
    "Be careful: this {kind} is addictive.",
)
LOW_EXPECTATIONS = (
    "I didn't expect much for the price, but the {aspect} is {good}.",
    "I was worried the {aspect} would be {bad}, but it's {good}.",
    "After reading some bad reviews I almost didn't buy it. So glad I did.",
    "I was skeptical, but this {kind} has completely won me over.",
    "I honestly thought it would break within a month. {N} months later, it is still going strong.",
)
COMPARISON_POSITIVE = (
    "Far better than my old {other} {kind}.",
    "Beats every other {kind} I've tried, including the {other} one.",
    "I've owned three {kinds} and this is the first that {feature}.",
    "Much better made than the {other} version, and half the price.",
    "My old {other} {kind} can't compare with this one.",
)
COMPARISON_NEGATIVE = (
    "My old {other} {kind} was far better.",
    "Not a patch on the {other} one it replaced.",
    "Even the cheap {kind} I had before worked better than this.",
    "Worse than the {other} version in every way.",
    "I should have stuck with my {other} {kind}.",
)

RECIPES = {
    ("positive", "plain"): [(CONTEXT, 0.3), (PRAISE, 1.0), (PRAISE, 0.6), (PRAISE_VERDICTS, 0.5)],
    ("negative", "plain"): [(CONTEXT, 0.3), (COMPLAINTS, 1.0), (COMPLAINTS, 0.6), (COMPLAINT_VERDICTS, 0.5)],
    ("positive", "negation"): [(CONTEXT, 0.3), (NEGATED_COMPLAINTS, 1.0), (NEGATED_COMPLAINTS, 0.7)],
    ("negative", "negation"): [(CONTEXT, 0.3), (NEGATED_PRAISE, 1.0), (NEGATED_PRAISE, 0.7)],
    ("positive", "mixed"): [(CONTEXT, 0.3), (MIXED_POSITIVE, 1.0)],
    ("negative", "mixed"): [(CONTEXT, 0.3), (MIXED_NEGATIVE, 1.0)],
    ("negative", "faint_praise"): [(CONTEXT, 0.3), (FAINT_PRAISE, 1.0), (FAINT_CLOSERS, 1.0)],
    ("negative", "sarcasm"): [(CONTEXT, 0.2), (SARCASM, 1.0), (COMPLAINT_VERDICTS, 0.3)],
    ("positive", "mock_complaint"): [(CONTEXT, 0.3), (MOCK_COMPLAINTS, 1.0), (PRAISE, 0.4)],
    ("positive", "low_expectations"): [(CONTEXT, 0.3), (LOW_EXPECTATIONS, 1.0)],
    ("positive", "comparison"): [(CONTEXT, 0.3), (COMPARISON_POSITIVE, 1.0), (NEGATED_COMPLAINTS, 0.3)],
    ("negative", "comparison"): [(CONTEXT, 0.3), (COMPARISON_NEGATIVE, 1.0), (NEGATED_PRAISE, 0.3)],
}
HARD_CASES = {label: [case for lab, case in RECIPES if lab == label and case != "plain"] for label in LABELS}


def review_context(rng: random.Random) -> dict[str, str]:
    """The words a review's sentences are filled with, all about one drawn product."""
    product = sample_product(rng, features=(1, 1), attribute_p=0.3)
    aspects = list(product.category.aspects + GENERIC_ASPECTS)
    rng.shuffle(aspects)
    chosen = product.features[0]
    trivia = rng.choice(TRIVIA)
    number = rng.choice(NUMBERS)
    return {
        "kind": product.kind,
        "kinds": plural(product.kind),
        "brand": product.brand or rng.choice(product.category.brands),
        "other": rng.choice([b for b in product.category.brands if b != product.brand]),
        "color": product.color or rng.choice(product.category.colors),
        "aspect": aspects[0],
        "aspect2": aspects[1],
        "good": rng.choice(GOOD),
        "bad": rng.choice(BAD),
        "problem": rng.choice(product.category.problems),
        "feature": chosen.verb_phrase(rng),
        "not_feature": negate(chosen.verb_phrase(rng)),
        "n": number,
        "N": capitalize(number),
        "span": rng.choice(SPANS),
        "relative": rng.choice(("son", "daughter", "partner", "dad", "mom", "roommate")),
        "trivia": trivia,
        "Trivia": capitalize(trivia),
        "annoyance": rng.choice(ANNOYANCES),
    }


# Slots that say something specific; two sentences of one review should not both say it.
CONTENT_SLOTS = {"problem", "feature", "not_feature", "aspect", "aspect2", "trivia", "Trivia", "other", "brand"}


def write_review(label: str, case: str, rng: random.Random) -> str:
    """One review of the given label and case, from its recipe's sentence pools."""
    words = review_context(rng)
    sentences = []
    said: set[str] = set()
    for pool, chance in RECIPES[(label, case)]:
        if rng.random() >= chance:
            continue
        fresh = [s for s in pool if s not in sentences and not set(template_fields(s)) & said]
        template = rng.choice(fresh or [s for s in pool if s not in sentences] or pool)
        said |= set(template_fields(template)) & CONTENT_SLOTS
        sentences.append(template)
    return fix_articles(" ".join(s.format_map(words) for s in sentences))


def generate_splits(seed: int = SEED, sizes: dict[str, int] = SPLIT_SIZES) -> Splits:
    """Train, validation and test reviews; the same seed gives the same data, and reviews never repeat.

    Labels alternate, and HARD_IN_20 of every 20 pairs of reviews are hard cases, spread evenly, so
    every split is balanced and about 35% hard.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: Splits = {}
    for split, size in sizes.items():
        examples = []
        for index in range(size):
            label = LABELS[index % 2]
            hard = (index // 2) * HARD_IN_20 % 20 < HARD_IN_20  # spreads the hard pairs evenly
            case = rng.choice(HARD_CASES[label]) if hard else "plain"
            review = write_review(label, case, rng)
            while review in seen or not MIN_CHARS <= len(review) <= MAX_CHARS:
                review = write_review(label, case, rng)
            seen.add(review)
            examples.append({"review": review, "label": label, "case": case})
        splits[split] = examples
    return splits


TASK = Task(
    name="review-sentiment",
    description="Label a product review positive or negative; a third are hard cases.",
    kind=TaskKind.CLASSIFICATION,
    instruction="Is the overall verdict of this product review positive or negative? Answer with one word: positive or negative.",
    input_template="Review: {review}",
    target_template="{label}",
    load_splits=generate_splits,
    metrics=("accuracy", "macro_f1"),
    headline="accuracy",
    higher_is_better=True,
    labels=LABELS,
    max_new_tokens=4,
)


@hookimpl
def register_tasks(register):
    register(TASK)
