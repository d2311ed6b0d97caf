"""English captions: the backbone's language. English has no culture concepts of its own here."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar, capitalise

POSITIONS = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the middle",
}
RELATIONS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above", "below": "below"}


def noun_phrase(thing: Thing, definite: bool = False) -> str:
    words = " ".join(w for w in (thing.size, thing.colour, thing.shape) if w)
    if definite:
        return f"the {words}"
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words}"


@GRAMMARS.register("en")
class English(Grammar):
    code = "en"
    name = "English"

    def single(self, thing: Thing, position: str, template: int) -> str:
        a, the, where = noun_phrase(thing), noun_phrase(thing, definite=True), POSITIONS[position]
        return capitalise([
            f"{a} {where}",
            f"there is {a} {where}",
            f"{the} is {where}",
            f"a picture of {a} {where}",
        ][template])

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        a, the, b, rel = noun_phrase(subject), noun_phrase(subject, True), noun_phrase(reference), RELATIONS[relation]
        return capitalise([
            f"{a} {rel} {b}",
            f"there is {a} {rel} {b}",
            f"{the} is {rel} {b}",
            f"a picture of {a} {rel} {b}",
        ][template])
