"""The shape of the built-in tasks' product vocabulary: features, categories, and the helpers that keep
their data tables short (``options``, ``amounts``, ``feature``, ``category``).

The tables themselves are in categories.py; drawing a product from them is catalog.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


def options(text: str) -> tuple[str, ...]:
    """'a|b|c' -> ('a', 'b', 'c'): keeps the data tables short and readable."""
    return tuple(part.strip() for part in text.split("|") if part.strip())


def amounts(low: float, high: float, step: float, unit: str) -> tuple[str, ...]:
    """Values from low to high in steps, with a unit: amounts(500, 1000, 250, "ml") -> 500 ml, 750 ml, 1000 ml."""
    values = []
    value = low
    while value <= high + 1e-9:
        number = f"{value:g}" if value < 10000 else f"{int(value)}"
        values.append(f"{number} {unit}".strip())
        value += step
    return tuple(values)


@dataclass(frozen=True)
class Feature:
    """Something a product offers, with the ways shop copy says it.

    ``tag`` is the short form used in a feature list; ``nouns`` are noun phrases that fit after
    "with" or "features"; ``verbs`` are verb phrases with the product as subject. Each may hold
    ``{v}``, filled with one of ``values`` (features without a value have ``values == ("",)``).
    ``attribute`` names the attribute-extraction key the value is ("size" or "capacity"), if any;
    ``only`` limits the feature to some product types of its category.
    """

    tag: str
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    values: tuple[str, ...] = ("",)
    attribute: str | None = None
    only: tuple[str, ...] = ()


def feature(tag: str, nouns: str, verbs: str, values: Sequence[str] = ("",), attribute: str | None = None, only: str = "") -> Feature:
    """A Feature from '|'-separated phrase lists."""
    return Feature(tag, options(nouns), options(verbs), tuple(values), attribute, options(only))


@dataclass(frozen=True)
class Category:
    """A family of products that share brands, materials, features and failure modes.

    ``uses`` complete "for ..." (who or what the products are for); ``aspects`` are singular parts
    or qualities reviewers judge ("the lid is ..."); ``problems`` are past-tense failures with no
    time in them, since reviews add one ("started leaking after two weeks").
    ``product_materials`` overrides ``materials`` for product types that need their own.
    """

    name: str
    products: tuple[str, ...]
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    colors: tuple[str, ...]
    features: tuple[Feature, ...]
    uses: tuple[str, ...]
    aspects: tuple[str, ...]
    problems: tuple[str, ...]
    price_range: tuple[int, int]
    product_materials: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def materials_for(self, kind: str) -> tuple[str, ...]:
        return self.product_materials.get(kind, self.materials)

    def features_for(self, kind: str) -> list[Feature]:
        return [f for f in self.features if not f.only or kind in f.only]


def category(name: str, products: str, brands: str, materials: str, colors: str, features: Iterable[Feature], uses: str, aspects: str, problems: str, price_range: tuple[int, int], product_materials: Mapping[str, str] | None = None) -> Category:
    """A Category from '|'-separated lists."""
    return Category(
        name,
        options(products),
        options(brands),
        options(materials),
        options(colors),
        tuple(features),
        options(uses),
        options(aspects),
        options(problems),
        price_range,
        {kind: options(text) for kind, text in (product_materials or {}).items()},
    )
