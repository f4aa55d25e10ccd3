"""Small English helpers for the generated task texts: lists, articles, plurals, negation."""

from __future__ import annotations

import re
from collections.abc import Sequence


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_VOWEL_LETTERS = "AEFHILMNORSX"  # letters whose spoken name starts with a vowel sound ("an LED")


def _takes_an(word: str) -> bool:
    """Whether a word is spoken with a leading vowel sound, so takes "an"."""
    if not word:
        return False
    if word[0].isdigit():
        digits = word.split(" ")[0].split(".")[0]
        digits = "".join(ch for ch in digits if ch.isdigit())
        # 8, 80, 800 ("eight"), 11 and 18 ("eleven", "eighteen") and their thousands.
        return digits.startswith("8") or (len(digits) % 3 == 2 and digits[:2] in ("11", "18"))
    if len(word) > 1 and word[0].isupper() and (word[1].isupper() or word[1].isdigit()):
        return word[0] in _VOWEL_LETTERS  # an acronym, read letter by letter
    lower = word.lower()
    if lower.startswith(("uni", "use", "usu", "one", "eu")):
        return False
    return lower[0] in "aeiou" or lower.startswith(("hour", "honest"))


def with_article(noun_phrase: str) -> str:
    """'an electric kettle', 'a water bottle', 'an 800 ml capacity'."""
    return ("an " if _takes_an(noun_phrase) else "a ") + noun_phrase


def fix_articles(text: str) -> str:
    """Make every 'a'/'an' agree with the word after it (values like '800 ml' land after templates' 'a')."""

    def agree(match: re.Match[str]) -> str:
        article, word = match.group(1), match.group(2)
        fixed = "an" if _takes_an(word) else "a"
        return (fixed.capitalize() if article[0].isupper() else fixed) + " " + word

    return re.sub(r"\b([Aa]n?) (\S+)", agree, text)


def plural(noun: str) -> str:
    """'water bottles', 'casserole dishes', 'electric toothbrushes'."""
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    return noun + "s"


def capitalize(text: str) -> str:
    """Upper-case the first letter only (brand names and units keep their case)."""
    return text[:1].upper() + text[1:]


def negate(verb_phrase: str) -> str:
    """'holds 750 ml' -> "doesn't hold 750 ml"; 'is waterproof' -> "isn't waterproof"."""
    verb, _, rest = verb_phrase.partition(" ")
    tail = f" {rest}" if rest else ""
    if verb == "is":
        return "isn't" + tail
    if verb == "has":
        return "doesn't have" + tail
    return "doesn't " + base_form(verb) + tail


def base_form(verb: str) -> str:
    """The bare infinitive of a third-person singular verb: holds -> hold, carries -> carry."""
    irregular = {"does": "do", "goes": "go", "has": "have", "is": "be"}
    if verb in irregular:
        return irregular[verb]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("shes", "ches", "sses", "xes", "zes")):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") else verb
