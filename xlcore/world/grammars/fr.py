"""French captions: gender agreement of article and adjectives, size adjectives before the noun and
colour adjectives after it, elision (l', d') and the contraction de + un -> d'un."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar, capitalise

NOUNS = {  # noun, gender
    "circle": ("cercle", "m"),
    "square": ("carré", "m"),
    "triangle": ("triangle", "m"),
    "star": ("étoile", "f"),
    "heart": ("cœur", "m"),
    "diamond": ("losange", "m"),
    "croissant": ("croissant", "m"),  # culture concept
}
COLOURS = {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"),
           "yellow": ("jaune", "jaune"), "black": ("noir", "noire"), "white": ("blanc", "blanche")}
SIZES = {"small": ("petit", "petite"), "big": ("grand", "grande")}  # these precede the noun
POSITIONS = {"left": "à gauche", "right": "à droite", "top": "en haut", "bottom": "en bas", "centre": "au centre"}
RELATIONS = {"left_of": "à gauche de", "right_of": "à droite de", "above": "au-dessus de", "below": "au-dessous de"}
VOWELS = "aeiouyéèêàâœ"  # no noun here starts with h, so mute-h elision never arises


def noun_phrase(thing: Thing, definite: bool = False) -> str:
    noun, gender = NOUNS[thing.shape]
    form = 0 if gender == "m" else 1
    words = ([SIZES[thing.size][form]] if thing.size else []) + [noun, COLOURS[thing.colour][form]]
    if definite:
        article = "le" if gender == "m" else "la"
        if words[0][0] in VOWELS:
            return "l'" + " ".join(words)
        return " ".join([article, *words])
    return " ".join(["un" if gender == "m" else "une", *words])


def de(phrase: str) -> str:
    """'de' before a phrase, elided before a vowel: de + un cercle -> d'un cercle."""
    return ("d'" + phrase) if phrase[0] in VOWELS else ("de " + phrase)


def relation_phrase(relation: str, reference: Thing) -> str:
    head = RELATIONS[relation].removesuffix(" de")
    return f"{head} {de(noun_phrase(reference))}"


@GRAMMARS.register("fr")
class French(Grammar):
    code = "fr"
    name = "Français"

    def single(self, thing: Thing, position: str, template: int) -> str:
        where = POSITIONS[position]
        return capitalise([
            f"{noun_phrase(thing)} {where}",
            f"il y a {noun_phrase(thing)} {where}",
            f"{noun_phrase(thing, definite=True)} est {where}",
            f"une image {de(noun_phrase(thing))} {where}",
        ][template])

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        rel = relation_phrase(relation, reference)
        return capitalise([
            f"{noun_phrase(subject)} {rel}",
            f"il y a {noun_phrase(subject)} {rel}",
            f"{noun_phrase(subject, definite=True)} est {rel}",
            f"une image {de(noun_phrase(subject))} {rel}",
        ][template])
