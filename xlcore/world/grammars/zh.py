"""Chinese captions: numeral + classifier (个, 颗 for stars and hearts, 盏 for lanterns), attributive
的, and locative phrases (在 X 的左边, X 的上方有 ...) in Chinese word order."""

from ..scene import Thing
from ._base import GRAMMARS, Grammar

NOUNS = {  # noun, classifier
    "circle": ("圆形", "个"),
    "square": ("正方形", "个"),
    "triangle": ("三角形", "个"),
    "star": ("星星", "颗"),
    "heart": ("爱心", "颗"),
    "diamond": ("菱形", "个"),
    "lantern": ("灯笼", "盏"),  # culture concept
}
COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "black": "黑色", "white": "白色"}
SIZES = {"small": "小", "big": "大"}
POSITIONS = {"left": "左边", "right": "右边", "top": "上方", "bottom": "下方", "centre": "中间"}
RELATIONS = {"left_of": "左边", "right_of": "右边", "above": "上方", "below": "下方"}


def noun_phrase(thing: Thing) -> str:
    """Counted noun phrase: 一个红色的小三角形."""
    noun, classifier = NOUNS[thing.shape]
    return f"一{classifier}{COLOURS[thing.colour]}的{SIZES.get(thing.size, '')}{noun}"


def bare_phrase(thing: Thing) -> str:
    """Reference noun phrase without numeral: 红色小三角形."""
    return f"{COLOURS[thing.colour]}{SIZES.get(thing.size, '')}{NOUNS[thing.shape][0]}"


@GRAMMARS.register("zh")
class Chinese(Grammar):
    code = "zh"
    name = "中文"

    def single(self, thing: Thing, position: str, template: int) -> str:
        where = POSITIONS[position]
        return [
            f"{where}有{noun_phrase(thing)}",
            f"图片的{where}是{noun_phrase(thing)}",
            f"{noun_phrase(thing)}位于画面{where}",
            f"{where}的{bare_phrase(thing)}",
        ][template]

    def pair(self, subject: Thing, relation: str, reference: Thing, template: int) -> str:
        side, ref = RELATIONS[relation], bare_phrase(reference)
        return [
            f"{noun_phrase(subject)}在{ref}的{side}",
            f"{ref}的{side}有{noun_phrase(subject)}",
            f"{noun_phrase(subject)}位于{ref}的{side}",
            f"图中{bare_phrase(subject)}在{ref}的{side}",
        ][template]
