"""Czech captions: no articles; gender agreement of hard adjectives (-ý/-á/-é); genitive after
"vlevo od"/"vpravo od" and instrumental after "nad"/"pod"."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar, capitalise

NOUNS = {  # gender, nominative, genitive, instrumental
    "circle": ("m", "kruh", "kruhu", "kruhem"),
    "square": ("m", "čtverec", "čtverce", "čtvercem"),
    "triangle": ("m", "trojúhelník", "trojúhelníku", "trojúhelníkem"),
    "star": ("f", "hvězda", "hvězdy", "hvězdou"),
    "heart": ("n", "srdce", "srdce", "srdcem"),
    "diamond": ("m", "kosočtverec", "kosočtverce", "kosočtvercem"),
    "easter_egg": ("f", "kraslice", "kraslice", "kraslicí"),  # culture concept (painted Easter egg)
}
CASES = ("nom", "gen", "ins")
ADJECTIVE_STEMS = {"red": "červen", "green": "zelen", "blue": "modr", "yellow": "žlut", "black": "čern",
                   "white": "bíl", "small": "mal", "big": "velk"}
# Hard adjective declension (mladý): masculine inanimate, feminine, neuter.
HARD_ENDINGS = {
    ("nom", "m"): "ý", ("nom", "f"): "á", ("nom", "n"): "é",
    ("gen", "m"): "ého", ("gen", "f"): "é", ("gen", "n"): "ého",
    ("ins", "m"): "ým", ("ins", "f"): "ou", ("ins", "n"): "ým",
}
POSITIONS = {"left": "vlevo", "right": "vpravo", "top": "nahoře", "bottom": "dole", "centre": "uprostřed"}
RELATIONS = {"left_of": ("vlevo od", "gen"), "right_of": ("vpravo od", "gen"), "above": ("nad", "ins"),
             "below": ("pod", "ins")}


def noun_phrase(thing: Thing, case: str = "nom") -> str:
    gender, *forms = NOUNS[thing.shape]
    noun = forms[CASES.index(case)]
    adjectives = [ADJECTIVE_STEMS[w] + HARD_ENDINGS[case, gender] for w in (thing.size, thing.colour) if w]
    return " ".join([*adjectives, noun])


def relation_phrase(relation: str, reference: Thing) -> str:
    preposition, case = RELATIONS[relation]
    return f"{preposition} {noun_phrase(reference, case)}"


@GRAMMARS.register("cs")
class Czech(Grammar):
    code = "cs"
    name = "Čeština"

    def single(self, thing: Thing, position: str, template: int) -> str:
        np, where = noun_phrase(thing), POSITIONS[position]
        return capitalise([
            f"{np} {where}",
            f"{where} je {np}",
            f"na obrázku je {np} {where}",
            f"{np} se nachází {where}",
        ][template])

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        np, rel = noun_phrase(subject), relation_phrase(relation, reference)
        return capitalise([
            f"{np} {rel}",
            f"{np} je {rel}",
            f"{rel} je {np}",
            f"na obrázku je {np} {rel}",
        ][template])
