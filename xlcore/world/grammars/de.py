"""German captions: grammatical gender, mixed (after "ein") and weak (after "der") adjective endings,
nominative for the subject and dative after "mit", "links/rechts von", "über" and "unter" (location)."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar, capitalise

NOUNS = {  # nominative, dative, gender ("Herz" is irregular: dem Herzen)
    "circle": ("Kreis", "Kreis", "m"),
    "square": ("Quadrat", "Quadrat", "n"),
    "triangle": ("Dreieck", "Dreieck", "n"),
    "star": ("Stern", "Stern", "m"),
    "heart": ("Herz", "Herzen", "n"),
    "diamond": ("Raute", "Raute", "f"),
    "pretzel": ("Brezel", "Brezel", "f"),  # culture concept
}
ADJECTIVES = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "black": "schwarz",
              "white": "weiß", "small": "klein", "big": "groß"}
INDEFINITE_ARTICLE = {("nom", "m"): "ein", ("nom", "n"): "ein", ("nom", "f"): "eine",
                      ("dat", "m"): "einem", ("dat", "n"): "einem", ("dat", "f"): "einer"}
# Mixed declension after ein/eine/einem/einer: the ending carries the gender only in the nominative.
MIXED_ENDING = {("nom", "m"): "er", ("nom", "n"): "es", ("nom", "f"): "e",
                ("dat", "m"): "en", ("dat", "n"): "en", ("dat", "f"): "en"}
DEFINITE_ARTICLE = {"m": "der", "n": "das", "f": "die"}  # nominative; weak ending is always -e there
POSITIONS = {"left": "auf der linken Seite", "right": "auf der rechten Seite", "top": "oben",
             "bottom": "unten", "centre": "in der Mitte"}
RELATIONS = {"left_of": "links von", "right_of": "rechts von", "above": "über", "below": "unter"}


def noun_phrase(thing: Thing, case: str = "nom", definite: bool = False) -> str:
    nominative, dative, gender = NOUNS[thing.shape]
    noun = nominative if case == "nom" else dative
    stems = [ADJECTIVES[w] for w in (thing.size, thing.colour) if w]
    if definite:
        if case != "nom":
            raise ValueError("definite noun phrases are only used in the nominative here")
        return " ".join([DEFINITE_ARTICLE[gender], *(s + "e" for s in stems), noun])
    ending = MIXED_ENDING[case, gender]
    return " ".join([INDEFINITE_ARTICLE[case, gender], *(s + ending for s in stems), noun])


@GRAMMARS.register("de")
class German(Grammar):
    code = "de"
    name = "Deutsch"

    def single(self, thing: Thing, position: str, template: int) -> str:
        where = POSITIONS[position]
        return capitalise([
            f"{noun_phrase(thing)} {where}",
            f"{where} ist {noun_phrase(thing)}",  # verb second: the position leads, the subject follows
            f"{noun_phrase(thing, definite=True)} ist {where}",
            f"ein Bild mit {noun_phrase(thing, 'dat')} {where}",
        ][template])

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        rel, ref = RELATIONS[relation], noun_phrase(reference, "dat")
        return capitalise([
            f"{noun_phrase(subject)} {rel} {ref}",
            f"{rel} {ref} ist {noun_phrase(subject)}",
            f"{noun_phrase(subject, definite=True)} ist {rel} {ref}",
            f"ein Bild mit {noun_phrase(subject, 'dat')} {rel} {ref}",
        ][template])
