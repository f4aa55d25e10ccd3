"""The seeded draw of a product from the built-in tasks' shared vocabulary, and the split sizes they share.

The vocabulary is data: its shape in vocabulary.py, its categories in categories.py. The tasks draw
products here with a seeded ``random.Random``, so the generated data is the same on every machine. The
English helpers that turn the phrases into sentences are in wording.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .categories import CATEGORIES
from .vocabulary import Category, Feature

SPLIT_SIZES = {"train": 600, "validation": 100, "test": 200}


ATTRIBUTE_KEYS = ("product", "brand", "color", "material", "size", "capacity", "price")


@dataclass(frozen=True)
class ChosenFeature:
    """A feature with its value picked."""

    feature: Feature
    value: str

    def tag(self) -> str:
        return self.feature.tag.format(v=self.value)

    def noun_phrase(self, rng: random.Random) -> str:
        return rng.choice(self.feature.nouns).format(v=self.value)

    def verb_phrase(self, rng: random.Random) -> str:
        return rng.choice(self.feature.verbs).format(v=self.value)


@dataclass(frozen=True)
class Product:
    """One product drawn from the catalog; ``None`` means the attribute is not stated."""

    category: Category
    kind: str
    brand: str | None
    color: str | None
    material: str | None
    features: tuple[ChosenFeature, ...]
    use: str | None
    price: str

    def attributes(self, with_price: bool) -> dict[str, str]:
        """The stated attributes under ATTRIBUTE_KEYS, in that order."""
        found = {"product": self.kind, "brand": self.brand, "color": self.color, "material": self.material}
        for chosen in self.features:
            if chosen.feature.attribute:
                found[chosen.feature.attribute] = chosen.value
        if with_price:
            found["price"] = self.price
        return {key: found[key] for key in ATTRIBUTE_KEYS if found.get(key)}


def sample_product(
    rng: random.Random,
    *,
    brand_p: float = 0.8,
    color_p: float = 0.5,
    material_p: float = 0.5,
    use_p: float = 0.4,
    features: tuple[int, int] = (1, 3),
    attribute_p: float = 0.5,
) -> Product:
    """Draw a product: a category and type, some of brand/color/material/use, and a few features.

    ``attribute_p`` is the chance that, where the type has one, a feature whose value is a size or
    capacity is among the features.
    """
    cat = rng.choice(CATEGORIES)
    kind = rng.choice(cat.products)
    available = cat.features_for(kind)
    with_attribute = [f for f in available if f.attribute]
    chosen: list[Feature] = []
    if with_attribute and rng.random() < attribute_p:
        chosen.append(rng.choice(with_attribute))
    others = [f for f in available if not f.attribute]
    count = rng.randint(*features)
    rng.shuffle(others)
    chosen += others[: max(0, count - len(chosen))]
    if not chosen:  # a type whose only features are attributes, and none was picked
        chosen.append(rng.choice(available))
    rng.shuffle(chosen)
    low, high = cat.price_range
    price = f"${rng.randint(low, high)}.{rng.choice(('99', '95', '49', '00'))}"
    return Product(
        category=cat,
        kind=kind,
        brand=rng.choice(cat.brands) if rng.random() < brand_p else None,
        color=rng.choice(cat.colors) if rng.random() < color_p else None,
        material=rng.choice(cat.materials_for(kind)) if rng.random() < material_p else None,
        features=tuple(ChosenFeature(f, rng.choice(f.values)) for f in chosen),
        use=rng.choice(cat.uses) if rng.random() < use_p else None,
        price=price,
    )
