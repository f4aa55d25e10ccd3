"""Built-in tasks: generated data is deterministic, well-formed, sized, balanced and varied."""

from __future__ import annotations

import collections
import importlib
import json
import random
import time

import pytest

from tuning_bench.api.kinds import TaskKind
from tuning_bench.metrics import SHIPPED_METRICS
from tuning_bench.api.task import SPLIT_NAMES, Task


def _tasks_module(name: str):
    try:
        return importlib.import_module(f"tuning_bench_tasks.{name}")
    except ImportError:  # a source checkout run without `pip install -e .`
        return importlib.import_module(f"tasks.{name}")


catalog = _tasks_module("catalog")
vocabulary = _tasks_module("vocabulary")
wording = _tasks_module("wording")
product_descriptions = _tasks_module("product_descriptions")
review_sentiment = _tasks_module("review_sentiment")
attribute_extraction = _tasks_module("attribute_extraction")
MODULES = [product_descriptions, review_sentiment, attribute_extraction]
MIN_SIZES = {"train": 500, "validation": 100, "test": 200}


@pytest.fixture(scope="module", params=MODULES, ids=lambda m: m.TASK.name)
def module(request):
    return request.param


def test_each_module_registers_its_task(module):
    registered = []
    module.register_tasks(registered.append)
    assert registered == [module.TASK]
    assert isinstance(module.TASK, Task)


def test_task_definition_is_consistent(module):
    task = module.TASK
    assert task.headline in task.metrics
    assert set(task.metrics) <= set(SHIPPED_METRICS)
    assert task.higher_is_better is True
    assert task.instruction.strip() and task.description.strip()
    assert 1 <= task.max_new_tokens <= 64
    if task.kind is TaskKind.CLASSIFICATION:
        assert task.labels == ("negative", "positive")
    else:
        assert task.labels == ()


def test_generation_is_deterministic_and_seeded(module):
    first = module.generate_splits()
    second = module.generate_splits()
    assert first == second
    other_seed = module.generate_splits(seed=module.SEED + 1)
    assert other_seed["train"] != first["train"]


def test_generation_is_fast(module):
    start = time.perf_counter()
    module.generate_splits()
    # The budget is 0.3 s; the margin absorbs a busy shared machine.
    assert time.perf_counter() - start < 1.5


def test_split_sizes(module):
    splits = module.TASK.splits()
    assert list(splits) == list(SPLIT_NAMES)
    for name, minimum in MIN_SIZES.items():
        assert len(splits[name]) >= minimum, name


def test_splits_do_not_overlap_or_repeat(module):
    task = module.TASK
    inputs = {name: [task.render_input(e) for e in rows] for name, rows in task.splits().items()}
    for name, rendered in inputs.items():
        assert len(set(rendered)) == len(rendered), f"duplicate inputs in {name}"
    assert not set(inputs["train"]) & set(inputs["validation"])
    assert not set(inputs["train"]) & set(inputs["test"])
    assert not set(inputs["validation"]) & set(inputs["test"])


def test_every_example_renders(module):
    task = module.TASK
    for rows in task.splits().values():
        for example in rows:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in example.items())
            assert task.render_input(example).strip()
            target = task.render_target(example)
            assert target.strip() and target == target.strip()
            if task.kind is TaskKind.CLASSIFICATION:
                assert target in task.labels


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize(
    "module_, input_chars, target_chars",
    [
        (product_descriptions, (40, 110), (60, 170)),
        (review_sentiment, (60, 230), (8, 8)),
        (attribute_extraction, (80, 175), (40, 130)),
    ],
    ids=["product-descriptions", "review-sentiment", "attribute-extraction"],
)
def test_texts_are_short(module_, input_chars, target_chars):
    task = module_.TASK
    rows = task.splits()["train"]
    assert input_chars[0] <= _mean([len(task.render_input(e)) for e in rows]) <= input_chars[1]
    assert target_chars[0] <= _mean([len(task.render_target(e)) for e in rows]) <= target_chars[1]


# --- the catalog --------------------------------------------------------------------------------------


def test_catalog_is_rich():
    categories = catalog.CATEGORIES
    assert len(categories) >= 12
    brands = [b for c in categories for b in c.brands]
    assert len(brands) == len(set(brands)), "a brand belongs to one category"
    for cat in categories:
        assert len(cat.products) >= 4 and len(cat.brands) >= 4 and len(cat.colors) >= 5, cat.name
        assert len(cat.features) >= 5 and len(cat.uses) >= 4 and len(cat.aspects) >= 4 and len(cat.problems) >= 4, (
            cat.name
        )
        for kind in cat.products:
            assert len(cat.features_for(kind)) >= 2, kind
            assert cat.materials_for(kind), kind
        for feature in cat.features:
            assert set(feature.only) <= set(cat.products), feature.tag
            if feature.values != ("",):
                assert "{v}" in feature.tag
            if feature.attribute:
                assert feature.attribute in catalog.ATTRIBUTE_KEYS
                # The value has to be said for it to be extracted.
                assert all("{v}" in phrase for phrase in feature.nouns + feature.verbs), feature.tag


def test_english_helpers():
    assert wording.fix_articles("a 800 ml bottle, a LED and an USB port") == "an 800 ml bottle, an LED and a USB port"
    assert wording.fix_articles("A 18 hour wait for a hour") == "An 18 hour wait for an hour"
    assert wording.fix_articles("a 180 g frame") == "a 180 g frame"
    assert wording.negate("holds 750 ml") == "doesn't hold 750 ml"
    assert wording.negate("is dishwasher safe") == "isn't dishwasher safe"
    assert wording.negate("carries 5 L") == "doesn't carry 5 L"
    assert wording.negate("has a lid") == "doesn't have a lid"
    assert wording.plural("casserole dish") == "casserole dishes"
    assert wording.join_words(["a", "b", "c"]) == "a, b and c"
    assert vocabulary.amounts(500, 1000, 250, "ml") == ("500 ml", "750 ml", "1000 ml")


# --- product-descriptions -----------------------------------------------------------------------------


def test_descriptions_say_the_listed_brand_color_and_material():
    named = {
        word
        for c in catalog.CATEGORIES
        for word in c.brands + c.colors + c.materials + tuple(m for ms in c.product_materials.values() for m in ms)
    }
    checked = 0
    for row in product_descriptions.TASK.splits()["test"]:
        items = row["features"].split(", ")
        assert row["description"].lower().count(items[0]) >= 1, row  # the product type
        for item in items[1:]:
            if item in named:
                assert item in row["description"], (item, row)
                checked += 1
    assert checked > 200


def test_descriptions_vary_in_structure():
    rows = product_descriptions.TASK.splits()["train"]
    openings = collections.Counter(" ".join(r["description"].split()[:2]) for r in rows)
    assert len(openings) >= 40
    assert openings.most_common(1)[0][1] < len(rows) * 0.15
    two_sentences = sum(r["description"].count(". ") >= 1 for r in rows)
    assert 0.2 < two_sentences / len(rows) < 0.9
    assert len({r["category"] for r in rows}) >= 12
    assert not any(r["description"].lower().startswith("description") for r in rows)


# --- review-sentiment ---------------------------------------------------------------------------------


def test_reviews_are_balanced_with_a_third_hard_cases():
    task = review_sentiment.TASK
    for name, rows in task.splits().items():
        labels = collections.Counter(task.render_target(r) for r in rows)
        assert labels["positive"] == labels["negative"] == len(rows) // 2, name
        hard = [r for r in rows if r["case"] != "plain"]
        assert 0.3 <= len(hard) / len(rows) <= 0.4, name
        hard_labels = collections.Counter(r["label"] for r in hard)
        assert hard_labels["positive"] == hard_labels["negative"], name
    cases = {r["case"] for r in task.splits()["train"]}
    assert cases == {
        "plain",
        "negation",
        "mixed",
        "faint_praise",
        "sarcasm",
        "mock_complaint",
        "low_expectations",
        "comparison",
    }


def test_hard_cases_carry_words_of_the_other_polarity():
    # What makes them hard: a bag of words would lean the wrong way.
    rows = review_sentiment.TASK.splits()["train"]
    positive_words = (
        "great",
        "love",
        "brilliant",
        "good",
        "best",
        "lovely",
        "wonderful",
        "impressive",
        "excellent",
        "nice",
        "five stars",
        "thanks",
        "easy",
        "pretty",
        "friendly",
        "sturdy",
        "on time",
        "matches",
        "fine",
    )
    negative_words = (
        "not",
        "n't",
        "no ",
        "bad",
        "complaint",
        "problem",
        "worse",
        "awful",
        "terrible",
        "poor",
        "worried",
        "annoyed",
        "skeptical",
        "never",
    )
    for case, label, words in [
        ("sarcasm", "negative", positive_words),
        ("faint_praise", "negative", positive_words),
        ("negation", "positive", negative_words),
        ("mock_complaint", "positive", negative_words),
    ]:
        reviews = [r["review"].lower() for r in rows if r["case"] == case and r["label"] == label]
        assert reviews, case
        with_other = sum(any(w in text for w in words) for text in reviews)
        assert with_other / len(reviews) >= 0.6, case


# --- attribute-extraction -----------------------------------------------------------------------------


def test_attribute_targets_are_compact_ordered_json_copied_from_the_text():
    rows = attribute_extraction.TASK.splits()["train"]
    key_sets = collections.Counter()
    for row in rows:
        attributes = json.loads(row["attributes"])
        assert isinstance(attributes, dict)
        assert json.dumps(attributes, ensure_ascii=False) == row["attributes"]
        keys = list(attributes)
        assert keys[0] == "product"
        assert keys == [k for k in catalog.ATTRIBUTE_KEYS if k in attributes], keys
        for value in attributes.values():
            assert value in row["description"], (value, row["description"])
        key_sets[tuple(keys)] += 1
    assert len(key_sets) >= 15
    assert all(count < len(rows) * 0.25 for count in key_sets.values())
    for key in catalog.ATTRIBUTE_KEYS:
        assert sum(key in json.loads(r["attributes"]) for r in rows) >= 30, key


def test_extraction_instruction_names_every_key():
    instruction = attribute_extraction.TASK.instruction
    assert all(key in instruction for key in catalog.ATTRIBUTE_KEYS)
    assert "JSON" in instruction


def test_sample_product_uses_the_rng_only():
    first = catalog.sample_product(random.Random(5))
    second = catalog.sample_product(random.Random(5))
    assert first == second
