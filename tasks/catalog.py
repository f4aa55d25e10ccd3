"""The shared product vocabulary behind the built-in tasks, and the seeded draw of a product from it.

Everything here is data: categories of products, each with its product types, brands, materials,
colors, features (with the ways shop copy phrases them and the range of values they take), what the
products are for, what reviewers talk about and what goes wrong. The tasks draw products from it
with a seeded ``random.Random``, so the generated data is the same on every machine.

Phrases are written for a singular product as the subject ("holds 750 ml"); every product type is a
singular noun so that they always agree. Spelling is American throughout. The English helpers that
turn these phrases into sentences are in wording.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SPLIT_SIZES = {"train": 600, "validation": 100, "test": 200}


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


CATEGORIES: tuple[Category, ...] = (
    category(
        "drinkware",
        products="water bottle|travel mug|insulated tumbler|vacuum flask|sports bottle",
        brands="Aqualine|Hydrova|Sipwell|Trailcup|Frostpeak",
        materials="stainless steel|BPA-free plastic|borosilicate glass|recycled aluminum",
        colors="midnight blue|sage green|matte black|coral|white|lavender|charcoal",
        features=[
            feature("{v}", "a {v} capacity|room for {v} of your favorite drink", "holds {v}|takes up to {v}", amounts(350, 1000, 50, "ml"), "capacity"),
            feature("cold for {v}", "{v} of cold retention|double-wall insulation that keeps drinks cold for {v}", "keeps drinks cold for {v}|keeps water ice-cold for {v}", options("12 hours|18 hours|24 hours|36 hours")),
            feature("hot for {v}", "{v} of heat retention|insulation that keeps coffee hot for {v}", "keeps coffee hot for {v}|keeps tea steaming for {v}", options("6 hours|8 hours|10 hours|12 hours")),
            feature("leak-proof lid", "a leak-proof lid|a lid that seals tight", "has a leak-proof lid|seals tight with a leak-proof lid"),
            feature("dishwasher safe", "a dishwasher-safe build|parts that go in the dishwasher", "is dishwasher safe|goes straight in the dishwasher"),
            feature("carry loop", "a handy carry loop|a loop for clipping onto your bag", "clips onto any bag with its carry loop|has a handy carry loop"),
        ],
        uses="the gym|long commutes|hiking trips|the office|school days",
        aspects="lid|insulation|finish|seal|straw",
        problems="started leaking|stopped keeping drinks cold|cracked along the lid|lost its paint|began to smell",
        price_range=(12, 45),
    ),
    category(
        "headsets",
        products="wireless headset|gaming headset|over-ear headset|sports headset|studio headset",
        brands="Sonora|Beatline|Auralis|Quietwave|Echofield",
        materials="recycled plastic|aluminum|soft-touch plastic|vegan leather",
        colors="black|white|silver|navy|rose gold|olive",
        features=[
            feature("{v} battery life", "{v} of battery life|a battery that lasts {v}", "plays for {v} on a single charge|runs for up to {v} per charge", amounts(20, 60, 5, "hours")),
            feature("active noise cancelling", "active noise cancelling|noise cancelling that shuts out the world", "blocks background noise with active noise cancelling|shuts out the commute with active noise cancelling"),
            feature("Bluetooth {v}", "Bluetooth {v} for a stable connection|a Bluetooth {v} link", "connects over Bluetooth {v}|pairs in seconds over Bluetooth {v}", options("5.0|5.2|5.3|5.4")),
            feature("fast charging", "USB-C fast charging|fast charging", "charges quickly over USB-C|tops up fast over USB-C"),
            feature("built-in microphone", "a clear built-in microphone|a built-in mic for calls", "takes calls with a built-in microphone|has a clear built-in microphone"),
            feature("weighs {v}", "a light {v} frame|a featherweight {v} build", "weighs just {v}|comes in at only {v}", amounts(180, 320, 20, "g")),
        ],
        uses="long flights|gaming sessions|working from home|the daily commute|late-night music",
        aspects="sound|battery|comfort|microphone|headband",
        problems="stopped charging|kept dropping the connection|started crackling in one ear|snapped at the headband|died",
        price_range=(29, 249),
    ),
    category(
        "speakers",
        products="portable speaker|bluetooth speaker|smart speaker|shower speaker|party speaker",
        brands="Boomcraft|Soundnest|Vibra|Pulsebox|Roamtone",
        materials="fabric mesh|rubberized plastic|aluminum|recycled fabric",
        colors="black|teal|red|gray|sand|forest green",
        features=[
            feature("{v} playtime", "{v} of playtime|a battery good for {v}", "plays for {v} on one charge|keeps the music going for {v}", amounts(8, 30, 2, "hours"), only="portable speaker|bluetooth speaker|shower speaker|party speaker"),
            feature("{v} waterproof", "an {v} waterproof rating|{v} water resistance", "is {v} waterproof|shrugs off splashes with an {v} rating", options("IPX5|IPX7|IP67")),
            feature("{v} output", "{v} of room-filling sound|a {v} amplifier", "fills a room with {v} of sound|delivers {v} of output", amounts(10, 60, 5, "W")),
            feature("stereo pairing", "stereo pairing with a second speaker|a stereo pairing mode", "pairs with a second speaker for stereo sound|links up with a twin for stereo"),
            feature("floats", "a body that floats|a floating design", "floats in the pool|bobs happily in water", only="portable speaker|shower speaker"),
            feature("voice assistant", "a built-in voice assistant|hands-free voice control", "answers to voice commands|plays what you ask for by voice", only="smart speaker"),
        ],
        uses="beach days|garden parties|the shower|camping trips|small apartments",
        aspects="bass|sound|battery|volume|buttons",
        problems="stopped turning on|started distorting at half volume|kept losing the connection|died|went silent",
        price_range=(25, 199),
    ),
    category(
        "cookware",
        products="frying pan|saucepan|wok|stockpot|griddle pan|casserole dish",
        brands="Panora|Castwell|Hearthline|Copperleaf|Skillwell",
        materials="cast iron|stainless steel|hard-anodized aluminum|carbon steel|enameled cast iron",
        colors="black|red|cream|graphite|teal|navy",
        features=[
            feature("{v} diameter", "a {v} cooking surface|a generous {v} diameter", "measures {v} across|offers a {v} cooking surface", options("20 cm|24 cm|26 cm|28 cm|30 cm|32 cm"), "size", only="frying pan|wok|griddle pan"),
            feature("{v} capacity", "a {v} capacity|room for {v} of soup or stew", "holds {v}|takes up to {v}", options("2 L|3 L|4 L|5 L|6 L|8 L"), "capacity", only="saucepan|stockpot|casserole dish"),
            feature("induction compatible", "an induction-ready base|a base that works on induction", "works on all cooktops, including induction|heats evenly on induction"),
            feature("oven safe to {v}", "oven-safe handles rated to {v}|an oven-safe build up to {v}", "goes in the oven up to {v}|is oven safe to {v}", options("400°F|450°F|500°F")),
            feature("non-stick coating", "a PFOA-free non-stick coating|a slick non-stick surface", "releases food easily thanks to a non-stick coating|has a non-stick coating"),
            feature("glass lid", "a tempered glass lid|a see-through glass lid", "comes with a tempered glass lid|includes a glass lid"),
        ],
        uses="weeknight dinners|family meals|Sunday roasts|small kitchens|batch cooking",
        aspects="coating|handle|heat distribution|base|weight",
        problems="warped|started peeling|began to rust|had its handle come loose|scorched everything",
        price_range=(19, 159),
    ),
    category(
        "kettles and coffee",
        products="electric kettle|gooseneck kettle|drip coffee maker|milk frother|coffee grinder",
        brands="Kettlecraft|Morningside|Steamly|Roastwell|Brewhaven",
        materials="stainless steel|borosilicate glass|brushed steel|matte plastic",
        colors="cream|matte black|sage|silver|pastel blue|red",
        features=[
            feature("{v} capacity", "a {v} capacity|room for {v} of water", "holds {v}|takes up to {v} of water", options("0.6 L|0.8 L|1 L|1.2 L|1.5 L|1.7 L"), "capacity", only="electric kettle|gooseneck kettle|drip coffee maker"),
            feature("{v}", "a powerful {v} element|{v} of heating power", "boils water fast with {v} of power|heats up quickly on {v}", amounts(1200, 3000, 200, "W"), only="electric kettle|gooseneck kettle"),
            feature("temperature control", "precise temperature control|adjustable temperature settings", "lets you set the exact temperature|heats to the temperature you choose", only="electric kettle|gooseneck kettle|milk frother"),
            feature("auto shut-off", "an automatic shut-off|a safety auto shut-off", "switches itself off automatically|turns off on its own when done"),
            feature("keep-warm function", "a keep-warm function|a keep-warm setting", "keeps your drink warm until you need it|holds the temperature with a keep-warm setting", only="electric kettle|gooseneck kettle|drip coffee maker"),
            feature("{v} grind settings", "{v} grind settings|a dial with {v} grind settings", "offers {v} grind settings|grinds to {v} settings from fine to coarse", amounts(12, 40, 4, ""), only="coffee grinder"),
        ],
        uses="busy mornings|small kitchens|the office|coffee lovers|tea drinkers",
        aspects="spout|lid|handle|noise level|switch",
        problems="started leaking from the base|stopped heating|left a plastic taste in everything|developed rust inside|tripped the power",
        price_range=(19, 189),
    ),
    category(
        "bags",
        products="backpack|laptop backpack|hiking daypack|rolltop backpack|duffel bag",
        brands="Packwell|Trailforge|Urbanroam|Northkit|Rovera",
        materials="recycled nylon|waxed canvas|ripstop nylon|vegan leather|polyester",
        colors="black|olive|navy|mustard|gray|burgundy|khaki",
        features=[
            feature("{v} capacity", "a roomy {v} main compartment|{v} of storage", "holds {v} of gear|packs in {v} of storage", amounts(15, 45, 5, "L"), "capacity"),
            feature("fits a {v} laptop", "a padded sleeve for a {v} laptop|a {v} laptop sleeve", "fits a {v} laptop|protects a {v} laptop in a padded sleeve", options("13-inch|14-inch|15-inch|16-inch|17-inch"), only="backpack|laptop backpack|rolltop backpack"),
            feature("water-resistant fabric", "water-resistant fabric|a weatherproof shell", "keeps your things dry in the rain|shrugs off showers"),
            feature("padded shoulder straps", "padded shoulder straps|comfortable padded straps", "stays comfortable all day with padded straps|has padded shoulder straps"),
            feature("{v} pockets", "{v} pockets|{v} organizer pockets", "organizes everything in {v} pockets|has {v} pockets", amounts(4, 10, 1, "")),
            feature("luggage strap", "a trolley sleeve|a luggage pass-through", "slides over a suitcase handle|rides on your suitcase with a trolley sleeve"),
        ],
        uses="daily commutes|weekend trips|school|day hikes|business travel",
        aspects="zipper|strap|stitching|pocket layout|fabric",
        problems="ripped at the seam|had a zip break|started fraying at the straps|let the rain soak through|lost a buckle",
        price_range=(25, 149),
    ),
    category(
        "lighting",
        products="desk lamp|floor lamp|bedside lamp|reading light|clip-on lamp",
        brands="Lumora|Glowhaus|Brightwell|Lanternly|Halden",
        materials="brushed brass|matte metal|oak wood|ceramic|frosted glass",
        colors="white|black|sage green|terracotta|gray|mustard",
        features=[
            feature("{v}", "{v} of bright light|an LED that puts out {v}", "puts out {v}|shines at up to {v}", amounts(300, 1600, 100, "lumens")),
            feature("{v} brightness levels", "{v} brightness levels|a dimmer with {v} levels", "dims through {v} brightness levels|offers {v} brightness levels", options("3|5|7|10")),
            feature("adjustable color temperature", "adjustable warm-to-cool light|a color temperature dial", "switches from warm to cool light|adjusts from warm to daylight white"),
            feature("USB charging port", "a built-in USB charging port|a USB port in the base", "charges your phone through a USB port|has a USB charging port"),
            feature("touch control", "a touch-sensitive base|tap-to-dim touch control", "turns on with a tap|dims with a touch"),
            feature("{v} tall", "a {v} stand|a {v} frame", "stands {v} tall|reaches {v}", options("120 cm|140 cm|150 cm|160 cm|180 cm"), "size", only="floor lamp"),
        ],
        uses="late-night reading|home offices|bedside tables|cozy living rooms|craft projects",
        aspects="light|base|switch|cable|shade",
        problems="started flickering|stopped responding to touch|started buzzing|cracked at the base|burned out",
        price_range=(18, 179),
        product_materials={"reading light": "matte metal|recycled plastic|aluminum"},
    ),
    category(
        "bedding",
        products="duvet|pillow|mattress topper|weighted blanket|sheet set",
        brands="Dreamweave|Slumbera|Nestwell|Cloudrest|Linenly",
        materials="organic cotton|bamboo fabric|linen|microfiber|wool",
        colors="white|ivory|dusty pink|slate gray|navy|sage",
        features=[
            feature("{v} size", "a {v} size|a {v}-size fit", "fits a {v} bed|comes in {v} size", options("twin|full|queen|king"), "size", only="duvet|mattress topper|weighted blanket|sheet set"),
            feature("machine washable", "a machine-washable cover|an easy-care washable finish", "goes straight in the washing machine|is machine washable"),
            feature("hypoallergenic", "hypoallergenic filling|a hypoallergenic build", "is hypoallergenic|keeps allergens at bay"),
            feature("{v} thread count", "a {v} thread count|a silky {v} thread count", "has a {v} thread count|feels silky with a {v} thread count", amounts(300, 1000, 100, ""), only="sheet set"),
            feature("{v} weight", "a calming {v} weight|an even {v} of glass beads", "weighs {v}|spreads {v} evenly across you", options("5 kg|7 kg|9 kg|11 kg"), only="weighted blanket"),
            feature("cooling fabric", "breathable cooling fabric|a cooling weave", "stays cool through warm nights|keeps you cool all night"),
        ],
        uses="hot sleepers|guest rooms|cold winter nights|kids' rooms|light sleepers",
        aspects="fabric|stitching|filling|fit|softness",
        problems="shrank in the wash|went flat|started pilling|lost its shape|started shedding",
        price_range=(24, 229),
        product_materials={"pillow": "memory foam|organic cotton|bamboo fabric|down alternative"},
    ),
    category(
        "fitness",
        products="yoga mat|exercise mat|foam roller|kettlebell|balance board",
        brands="Flexcore|Zenfit|Ironleaf|Motiva|Stridewell",
        materials="natural rubber|TPE|cork|PVC",
        colors="purple|teal|black|coral|gray|lime",
        features=[
            feature("{v} thick", "{v} of cushioning|a comfy {v} thickness", "cushions your joints with {v} of padding|is {v} thick", options("4 mm|6 mm|8 mm|10 mm"), "size", only="yoga mat|exercise mat"),
            feature("{v}", "a {v} weight|a solid {v} build", "weighs {v}|packs {v} of iron", options("8 kg|12 kg|16 kg|20 kg|24 kg"), only="kettlebell"),
            feature("{v} long", "a {v} length|a full {v} body", "measures {v} long|runs {v} end to end", options("30 cm|45 cm|60 cm|90 cm"), "size", only="foam roller"),
            feature("non-slip surface", "a non-slip surface|a grippy textured surface", "grips the floor without slipping|stays put on a non-slip surface"),
            feature("carry strap", "a carry strap|a shoulder strap for carrying", "comes with a carry strap|travels easily with its carry strap", only="yoga mat|exercise mat|foam roller"),
            feature("sweat-resistant", "a sweat-resistant finish|an easy-wipe surface", "wipes clean after sweaty sessions|resists sweat"),
        ],
        uses="home workouts|hot yoga|recovery days|the gym|beginners",
        aspects="grip|cushioning|smell|durability|surface",
        problems="started flaking|started sliding around|split down the middle|began to smell of chemicals|lost its grip",
        price_range=(15, 99),
        product_materials={"kettlebell": "cast iron|vinyl-coated iron", "balance board": "birch plywood|bamboo|recycled plastic"},
    ),
    category(
        "pet supplies",
        products="dog bed|cat tree|dog harness|pet bowl|cat carrier",
        brands="Pawfield|Furrow|Tailwise|Whiskerly|Barkwell",
        materials="plush fleece|recycled polyester|breathable mesh|canvas",
        colors="gray|tan|blue|pink|green|charcoal",
        features=[
            feature("size {v}", "a {v} size|a {v} fit", "comes in size {v}|suits {v} pets", options("small|medium|large|extra large"), "size", only="dog bed|dog harness|cat carrier"),
            feature("washable cover", "a removable washable cover|a machine-washable cover", "has a cover that goes in the wash|unzips for easy washing", only="dog bed|cat carrier"),
            feature("non-slip base", "a non-slip base|rubber feet that grip", "stays put on a non-slip base|has a non-slip base", only="dog bed|pet bowl|cat tree"),
            feature("{v} capacity", "a {v} capacity|room for {v} of food or water", "holds {v}|takes up to {v}", options("400 ml|700 ml|1 L|1.5 L"), "capacity", only="pet bowl"),
            feature("reflective strips", "reflective strips|reflective trim for night walks", "keeps walks safe with reflective strips|has reflective strips", only="dog harness"),
            feature("{v} tall", "a {v} frame|{v} of climbing", "stands {v} tall|rises {v} with three perches", options("90 cm|120 cm|150 cm"), "size", only="cat tree"),
        ],
        uses="puppies|senior dogs|indoor cats|road trips|big breeds",
        aspects="fabric|size guide|buckle|stitching|base",
        problems="fell apart|got shredded|started sliding across the floor|had a buckle snap|went flat",
        price_range=(12, 139),
        product_materials={"pet bowl": "ceramic|stainless steel|bamboo", "cat tree": "sisal rope|plush fleece|engineered wood"},
    ),
    category(
        "phone accessories",
        products="power bank|wireless charger|phone case|car phone mount|charging cable",
        brands="Voltix|Chargemate|Amperly|Kinetiq|Plugwell",
        materials="braided nylon|TPE|silicone",
        colors="black|white|blue|clear|pink|gray",
        features=[
            feature("{v}", "a {v} battery|{v} of stored power", "stores {v}|packs {v} of charge", options("5000 mAh|10000 mAh|20000 mAh|26800 mAh"), "capacity", only="power bank"),
            feature("{v} fast charging", "{v} fast charging|a {v} output", "charges at up to {v}|delivers {v} of charging power", options("15 W|20 W|30 W|65 W"), only="power bank|wireless charger|charging cable"),
            feature("{v} long", "a {v} length|{v} of reach", "measures {v}|reaches {v} from the socket", options("1 m|2 m|3 m"), "size", only="charging cable"),
            feature("{v} drop protection", "{v} drop protection|shock-absorbing corners rated to {v}", "survives drops from {v}|protects against drops from {v}", options("2 m|3 m|4 m"), only="phone case"),
            feature("MagSafe compatible", "MagSafe compatibility|built-in magnets", "snaps on magnetically|works with MagSafe"),
            feature("360-degree rotation", "360-degree rotation|a ball joint that turns all the way round", "rotates a full 360 degrees|swivels between portrait and landscape", only="car phone mount"),
            feature("{v} USB-C ports", "{v} USB-C ports|room for {v} devices at once", "charges {v} devices at once|has {v} USB-C ports", options("2|3"), only="power bank"),
        ],
        uses="travel|long road trips|busy workdays|festivals|the car",
        aspects="grip|charging speed|buttons|fit|cable",
        problems="stopped charging|got worryingly hot|cracked at the corner|stopped holding a charge|frayed at the plug",
        price_range=(9, 89),
        product_materials={
            "power bank": "aluminum|recycled plastic",
            "wireless charger": "aluminum|recycled plastic|silicone",
            "phone case": "silicone|TPU|recycled plastic|vegan leather",
            "car phone mount": "aluminum|recycled plastic",
        },
    ),
    category(
        "garden",
        products="garden hose|watering can|hand trowel|raised planter|garden kneeler",
        brands="Greenspade|Bloomfield|Rootwell|Mossgate|Thornbury",
        materials="cedar wood|galvanized steel|recycled plastic",
        colors="green|terracotta|black|yellow|slate|blue",
        features=[
            feature("{v} long", "a {v} length|{v} of reach", "stretches {v}|reaches {v} across the garden", options("15 m|20 m|25 m|30 m"), "size", only="garden hose"),
            feature("{v} capacity", "a {v} capacity|room for {v} of water", "holds {v}|carries {v} of water", options("5 L|7 L|9 L|10 L"), "capacity", only="watering can"),
            feature("frost-proof", "a frost-proof build|frost-proof walls", "stays out all winter without cracking|is frost-proof", only="raised planter"),
            feature("rust-resistant", "a rust-resistant finish|rust-proof fittings", "resists rust|shrugs off rain without rusting"),
            feature("kink-free", "a kink-free design|tangle-free layers", "never kinks|uncoils without tangles", only="garden hose"),
            feature("ergonomic handle", "an ergonomic handle|a cushioned grip", "is easy on the hands|has an ergonomic handle", only="watering can|hand trowel|garden kneeler"),
        ],
        uses="balcony gardens|vegetable beds|weekend gardeners|small yards|seedlings",
        aspects="handle|spout|connector|finish|grip",
        problems="split|started leaking at the connector|rusted|cracked in the frost|bent out of shape",
        price_range=(9, 119),
        product_materials={
            "garden hose": "rubber|recycled plastic|PVC",
            "watering can": "galvanized steel|recycled plastic",
            "hand trowel": "stainless steel|carbon steel",
            "garden kneeler": "EVA foam|recycled plastic",
        },
    ),
    category(
        "stationery",
        products="notebook|planner|sketchbook|fountain pen|desk organizer",
        brands="Paperloom|Quillby|Notara|Scribewell|Foliant",
        materials="recycled paper|vegan leather|bamboo|kraft card|linen cloth",
        colors="black|navy|forest green|mustard|blush pink|tan",
        features=[
            feature("{v} size", "a handy {v} format|an {v} page size", "comes in {v} size|uses {v} pages", options("A4|A5|A6|pocket"), "size", only="notebook|planner|sketchbook"),
            feature("{v} pages", "{v} pages|{v} thick pages", "holds {v} pages|gives you {v} pages", options("80|120|160|192|240"), only="notebook|planner|sketchbook"),
            feature("{v} paper", "{v} paper|crisp {v} paper", "is filled with {v} paper|comes with {v} paper", options("dotted|lined|grid|blank"), only="notebook|planner"),
            feature("lay-flat binding", "a lay-flat binding|a binding that opens flat", "lies flat on the desk|opens flat for easy writing", only="notebook|planner|sketchbook"),
            feature("{v} nib", "a smooth {v} nib|a {v} steel nib", "writes smoothly with a {v} nib|glides across paper with a {v} nib", options("fine|medium|broad"), only="fountain pen"),
            feature("gift box", "a gift box|a presentation box", "arrives in a gift box|comes gift-boxed"),
            feature("{v} compartments", "{v} compartments|{v} slots for pens and notes", "sorts your desk into {v} compartments|has {v} compartments", options("4|5|6|8"), only="desk organizer"),
        ],
        uses="journaling|students|meeting notes|sketching on the go|daily planning",
        aspects="paper|cover|binding|quality|finish",
        problems="fell apart at the spine|let ink bleed through|leaked ink everywhere|came unstitched|lost its cover",
        price_range=(6, 69),
        product_materials={"fountain pen": "brass|resin|aluminum", "desk organizer": "bamboo|walnut wood|acrylic|metal mesh"},
    ),
    category(
        "footwear",
        products="running shoe|hiking boot|trail shoe|house slipper|walking sandal",
        brands="Stridefast|Terrapeak|Solewise|Cobbleton|Runora",
        materials="breathable mesh|full-grain leather|suede|recycled knit",
        colors="black|white|gray|navy|olive|red",
        features=[
            feature("waterproof", "a waterproof membrane|a waterproof lining", "keeps feet dry in puddles|stays waterproof on wet trails", only="hiking boot|trail shoe|walking sandal"),
            feature("cushioned sole", "a cushioned sole|plush foam cushioning", "cushions every step|softens every landing"),
            feature("grippy outsole", "a grippy rubber outsole|a high-traction sole", "grips wet pavements|holds on to muddy ground"),
            feature("{v} per shoe", "a light {v} build|a feather-light {v} per shoe", "weighs only {v} per shoe|comes in at {v} per shoe", amounts(180, 480, 30, "g")),
            feature("{v} drop", "a {v} heel-to-toe drop|a low {v} drop", "has a {v} heel-to-toe drop|runs on a {v} drop", options("4 mm|6 mm|8 mm|10 mm"), only="running shoe|trail shoe"),
            feature("wide fit", "a roomy wide fit|a wide toe box", "gives toes room with a wide fit|comes in a wide fit"),
        ],
        uses="marathon training|muddy trails|lazy Sundays|city walks|summer holidays",
        aspects="fit|sole|lacing|cushioning|heel",
        problems="gave me blisters|came apart at the sole|let water in|squeaked with every step|lost its grip",
        price_range=(25, 179),
        product_materials={"house slipper": "wool felt|suede|recycled knit", "walking sandal": "full-grain leather|recycled rubber|suede"},
    ),
    category(
        "camping",
        products="tent|sleeping bag|camping chair|headlamp|camping stove",
        brands="Summitra|Campfield|Wildpine|Ridgeway|Nomadix",
        materials="aluminum|steel|ripstop nylon",
        colors="orange|forest green|gray|yellow|blue|red",
        features=[
            feature("sleeps {v}", "room for {v}|space for {v}", "sleeps {v}|fits {v} comfortably", options("2 people|3 people|4 people|6 people"), "capacity", only="tent"),
            feature("rated to {v}", "a comfort rating of {v}|warmth down to {v}", "keeps you warm down to {v}|is rated to {v}", options("15°F|20°F|30°F|40°F"), only="sleeping bag"),
            feature("weighs {v}", "a packed weight of {v}|a light {v} build", "weighs just {v} packed|comes in at {v}", options("900 g|1.2 kg|1.5 kg|2 kg|2.5 kg")),
            feature("{v}", "{v} of light|a beam of {v}", "shines {v} down the trail|lights the way with {v}", amounts(200, 800, 100, "lumens"), only="headlamp"),
            feature("packs down small", "a compact packed size|a small stuff sack", "packs down small|squeezes into a small stuff sack"),
            feature("boils water in {v}", "a burner that boils water in {v}|fast {v} boil times", "boils water in {v}|brings a pot to the boil in {v}", options("3 minutes|4 minutes|5 minutes"), only="camping stove"),
        ],
        uses="festival weekends|backpacking trips|family camping|wild camping|scout trips",
        aspects="zip|frame|packing bag|weight|warmth",
        problems="leaked in the rain|snapped a pole|had its zip break|left me freezing|bent out of shape",
        price_range=(19, 299),
        product_materials={
            "tent": "ripstop nylon|recycled polyester|polyester canvas",
            "sleeping bag": "recycled polyester|ripstop nylon|duck down",
            "headlamp": "aluminum|recycled plastic",
            "camping stove": "stainless steel|aluminum|titanium",
        },
    ),
    category(
        "personal care",
        products="electric toothbrush|hair dryer|beard trimmer|electric shaver|hair straightener",
        brands="Brightsmile|Silkara|Groomwell|Vellor|Puraline",
        materials="recycled plastic|stainless steel|brushed aluminum",
        colors="white|black|rose gold|mint|silver|lilac",
        features=[
            feature("{v} run time", "{v} of cordless use|a battery good for {v}", "runs for {v} on a charge|lasts {v} between charges", options("45 minutes|60 minutes|90 minutes|120 minutes"), only="electric toothbrush|beard trimmer|electric shaver"),
            feature("{v}", "a {v} motor|{v} of drying power", "dries hair fast with {v} of power|blows at {v}", options("1800 W|2000 W|2200 W|2400 W"), only="hair dryer"),
            feature("{v} heat settings", "{v} heat settings|a dial with {v} heat settings", "offers {v} heat settings|adjusts across {v} heat settings", options("3|4|5|6"), only="hair dryer|hair straightener"),
            feature("waterproof", "a waterproof body|a fully waterproof design", "works in the shower|rinses clean under the tap", only="electric toothbrush|beard trimmer|electric shaver"),
            feature("travel case", "a travel case|a zip-up travel case", "comes with a travel case|packs into its own travel case"),
            feature("{v} length settings", "{v} length settings|a guide comb with {v} settings", "trims to {v} length settings|offers {v} length settings", options("10|20|30|40"), only="beard trimmer"),
        ],
        uses="travel|busy mornings|everyday grooming|small bathrooms|gym bags",
        aspects="battery|noise|grip|trimmer head|charger",
        problems="stopped holding a charge|started making a grinding noise|overheated|stopped working|lost power",
        price_range=(19, 199),
        product_materials={"hair straightener": "ceramic|titanium", "hair dryer": "recycled plastic|brushed aluminum"},
    ),
)

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
