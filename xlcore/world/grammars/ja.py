"""Japanese captions: attributive adjectives (赤い, 緑の) before the noun, the existential ある for
objects, and the particles に (location), が (subject), の (relative position: 四角形の左)."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar

NOUNS = {"circle": "円", "square": "四角形", "triangle": "三角形", "star": "星", "heart": "ハート",
         "diamond": "ひし形", "torii": "鳥居"}  # 鳥居 (torii gate) is the culture concept
# Attributive forms: i-adjectives (赤い) attach directly, nouns of colour (緑) take の.
COLOURS = {"red": "赤い", "green": "緑の", "blue": "青い", "yellow": "黄色い", "black": "黒い", "white": "白い"}
SIZES = {"small": "小さい", "big": "大きい"}
POSITIONS = {"left": "左", "right": "右", "top": "上", "bottom": "下", "centre": "真ん中"}
RELATIONS = {"left_of": "左", "right_of": "右", "above": "上", "below": "下"}


def noun_phrase(thing: Thing) -> str:
    return f"{SIZES.get(thing.size, '')}{COLOURS[thing.colour]}{NOUNS[thing.shape]}"


@GRAMMARS.register("ja")
class Japanese(Grammar):
    code = "ja"
    name = "日本語"

    def single(self, thing: Thing, position: str, template: int) -> str:
        np, where = noun_phrase(thing), POSITIONS[position]
        return [
            f"{where}に{np}がある",
            f"{np}が{where}にある",
            f"{where}にある{np}",
            f"画像の{where}に{np}が描かれている",
        ][template]

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        a, b, side = noun_phrase(subject), noun_phrase(reference), RELATIONS[relation]
        return [
            f"{b}の{side}に{a}がある",
            f"{a}が{b}の{side}にある",
            f"{b}の{side}にある{a}",
            f"画像では{a}が{b}の{side}にある",
        ][template]
