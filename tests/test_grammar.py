"""Captions checked against hand-written sentences: agreement, case, word order, classifiers, particles.

Each case gives a scene, the phrasing of the relation and the template, and the sentence a native
speaker would write. The expected strings are typed by hand, not produced by the code under test.
"""

import pytest

from xlcore.errors import UnknownLanguageError, XlcoreError
from xlcore.world import Scene, Thing, get_grammar


def S(shape, colour, size, position):
    return Scene((Thing(shape, colour, size),), position)


def P(shape_a, colour_a, shape_b, colour_b, axis):
    """A pair in slot order: slot 0 is left (horizontal) or top (vertical)."""
    return Scene((Thing(shape_a, colour_a), Thing(shape_b, colour_b)), axis)


CASES = {
    "en": [
        (S("circle", "red", "small", "left"), None, 0, "A small red circle on the left"),
        (S("triangle", "yellow", "big", "centre"), None, 1, "There is a big yellow triangle in the middle"),
        (S("star", "white", "small", "top"), None, 2, "The small white star is at the top"),
        (S("heart", "black", "big", "bottom"), None, 3, "A picture of a big black heart at the bottom"),
        (S("diamond", "green", "small", "right"), None, 0, "A small green diamond on the right"),
        (P("circle", "red", "square", "blue", "horizontal"), "left_of", 0, "A red circle to the left of a blue square"),
        (P("circle", "red", "square", "blue", "horizontal"), "right_of", 0, "A blue square to the right of a red circle"),
        (P("star", "green", "heart", "yellow", "vertical"), "above", 1, "There is a green star above a yellow heart"),
        (P("star", "green", "heart", "yellow", "vertical"), "below", 2, "The yellow heart is below a green star"),
        (P("triangle", "black", "diamond", "white", "horizontal"), "left_of", 3,
         "A picture of a black triangle to the left of a white diamond"),
    ],
    "de": [
        (S("circle", "red", "small", "left"), None, 0, "Ein kleiner roter Kreis auf der linken Seite"),
        (S("square", "green", "big", "right"), None, 0, "Ein großes grünes Quadrat auf der rechten Seite"),
        (S("diamond", "blue", "small", "top"), None, 0, "Eine kleine blaue Raute oben"),
        (S("triangle", "yellow", "big", "centre"), None, 1, "In der Mitte ist ein großes gelbes Dreieck"),
        (S("star", "black", "small", "bottom"), None, 2, "Der kleine schwarze Stern ist unten"),
        (S("diamond", "white", "big", "left"), None, 2, "Die große weiße Raute ist auf der linken Seite"),
        (S("heart", "red", "small", "right"), None, 3, "Ein Bild mit einem kleinen roten Herzen auf der rechten Seite"),
        (P("circle", "red", "diamond", "blue", "horizontal"), "left_of", 0, "Ein roter Kreis links von einer blauen Raute"),
        (P("square", "green", "star", "yellow", "vertical"), "above", 1, "Über einem gelben Stern ist ein grünes Quadrat"),
        (P("triangle", "black", "heart", "white", "vertical"), "below", 2, "Das weiße Herz ist unter einem schwarzen Dreieck"),
        (P("diamond", "red", "circle", "green", "horizontal"), "right_of", 3,
         "Ein Bild mit einem grünen Kreis rechts von einer roten Raute"),
        (S("pretzel", "yellow", "big", "centre"), None, 2, "Die große gelbe Brezel ist in der Mitte"),
        (S("pretzel", "red", "small", "left"), None, 3, "Ein Bild mit einer kleinen roten Brezel auf der linken Seite"),
    ],
    "fr": [
        (S("circle", "red", "small", "left"), None, 0, "Un petit cercle rouge à gauche"),
        (S("star", "green", "big", "right"), None, 0, "Une grande étoile verte à droite"),
        (S("star", "white", "small", "top"), None, 2, "La petite étoile blanche est en haut"),
        (P("star", "blue", "square", "black", "horizontal"), "left_of", 2, "L'étoile bleue est à gauche d'un carré noir"),
        (S("heart", "black", "big", "bottom"), None, 1, "Il y a un grand cœur noir en bas"),
        (S("diamond", "yellow", "small", "centre"), None, 3, "Une image d'un petit losange jaune au centre"),
        (S("star", "yellow", "big", "centre"), None, 3, "Une image d'une grande étoile jaune au centre"),
        (P("circle", "red", "star", "blue", "horizontal"), "left_of", 0, "Un cercle rouge à gauche d'une étoile bleue"),
        (P("triangle", "green", "heart", "white", "vertical"), "above", 1, "Il y a un triangle vert au-dessus d'un cœur blanc"),
        (P("square", "black", "star", "green", "vertical"), "below", 0, "Une étoile verte au-dessous d'un carré noir"),
        (S("croissant", "yellow", "big", "right"), None, 2, "Le grand croissant jaune est à droite"),
        (P("circle", "white", "square", "blue", "horizontal"), "right_of", 2, "Le carré bleu est à droite d'un cercle blanc"),
    ],
    "cs": [
        (S("circle", "red", "small", "left"), None, 0, "Malý červený kruh vlevo"),
        (S("star", "blue", "big", "right"), None, 1, "Vpravo je velká modrá hvězda"),
        (S("heart", "white", "small", "top"), None, 2, "Na obrázku je malé bílé srdce nahoře"),
        (S("diamond", "black", "big", "centre"), None, 3, "Velký černý kosočtverec se nachází uprostřed"),
        (P("circle", "red", "square", "blue", "horizontal"), "left_of", 0, "Červený kruh vlevo od modrého čtverce"),
        (P("square", "green", "star", "yellow", "horizontal"), "left_of", 1, "Zelený čtverec je vlevo od žluté hvězdy"),
        (P("triangle", "black", "heart", "white", "horizontal"), "right_of", 0, "Bílé srdce vpravo od černého trojúhelníku"),
        (P("star", "red", "circle", "green", "vertical"), "above", 2, "Nad zeleným kruhem je červená hvězda"),
        (P("heart", "yellow", "star", "blue", "vertical"), "below", 3, "Na obrázku je modrá hvězda pod žlutým srdcem"),
        (P("diamond", "white", "star", "black", "vertical"), "above", 1, "Bílý kosočtverec je nad černou hvězdou"),
        (S("easter_egg", "green", "small", "bottom"), None, 0, "Malá zelená kraslice dole"),
        (P("easter_egg", "red", "circle", "blue", "vertical"), "below", 0, "Modrý kruh pod červenou kraslicí"),
    ],
    "zh": [
        (S("triangle", "red", "small", "left"), None, 0, "左边有一个红色的小三角形"),
        (S("star", "yellow", "big", "top"), None, 0, "上方有一颗黄色的大星星"),
        (S("heart", "red", "small", "right"), None, 1, "图片的右边是一颗红色的小爱心"),
        (S("circle", "blue", "big", "centre"), None, 2, "一个蓝色的大圆形位于画面中间"),
        (S("diamond", "white", "small", "bottom"), None, 3, "下方的白色小菱形"),
        (P("circle", "red", "square", "blue", "horizontal"), "left_of", 0, "一个红色的圆形在蓝色正方形的左边"),
        (P("circle", "red", "square", "blue", "horizontal"), "right_of", 1, "红色圆形的右边有一个蓝色的正方形"),
        (P("star", "green", "heart", "black", "vertical"), "above", 2, "一颗绿色的星星位于黑色爱心的上方"),
        (P("triangle", "white", "diamond", "yellow", "vertical"), "below", 3, "图中黄色菱形在白色三角形的下方"),
        (S("lantern", "red", "big", "left"), None, 0, "左边有一盏红色的大灯笼"),
        (P("lantern", "yellow", "star", "blue", "horizontal"), "left_of", 1, "蓝色星星的左边有一盏黄色的灯笼"),
    ],
    "ja": [
        (S("circle", "red", "small", "left"), None, 0, "左に小さい赤い円がある"),
        (S("square", "green", "big", "right"), None, 1, "大きい緑の四角形が右にある"),
        (S("triangle", "yellow", "small", "top"), None, 2, "上にある小さい黄色い三角形"),
        (S("star", "white", "big", "centre"), None, 3, "画像の真ん中に大きい白い星が描かれている"),
        (S("heart", "black", "small", "bottom"), None, 0, "下に小さい黒いハートがある"),
        (P("circle", "red", "square", "blue", "horizontal"), "left_of", 0, "青い四角形の左に赤い円がある"),
        (P("circle", "red", "square", "blue", "horizontal"), "right_of", 1, "青い四角形が赤い円の右にある"),
        (P("diamond", "green", "star", "yellow", "vertical"), "above", 2, "黄色い星の上にある緑のひし形"),
        (P("heart", "white", "triangle", "black", "vertical"), "below", 3, "画像では黒い三角形が白いハートの下にある"),
        (S("torii", "red", "big", "centre"), None, 0, "真ん中に大きい赤い鳥居がある"),
        (P("torii", "blue", "circle", "yellow", "horizontal"), "left_of", 1, "青い鳥居が黄色い円の左にある"),
    ],
}


@pytest.mark.parametrize(
    "lang,scene,relation,template,expected",
    [(lang, *case) for lang, cases in CASES.items() for case in cases],
    ids=[f"{lang}-{i}" for lang, cases in CASES.items() for i in range(len(cases))],
)
def test_caption_matches_hand_written_sentence(lang, scene, relation, template, expected):
    assert get_grammar(lang).describe(scene, relation, template) == expected


def test_every_language_has_at_least_ten_cases_with_pairs_and_single_objects():
    for lang, cases in CASES.items():
        assert len(cases) >= 10, lang
        assert any(scene.is_pair for scene, *_ in cases) and any(not scene.is_pair for scene, *_ in cases), lang
        assert len({template for _, _, template, _ in cases}) == 4, f"{lang}: every template is covered"


def test_paraphrase_templates_differ():
    scene = S("star", "blue", "big", "top")
    for lang in CASES:
        grammar = get_grammar(lang)
        assert len({grammar.describe(scene, None, t) for t in range(grammar.n_templates)}) == grammar.n_templates


def test_a_language_has_no_word_for_another_languages_culture_concept():
    with pytest.raises(XlcoreError, match="ja culture concept"):
        get_grammar("de").describe(S("torii", "red", "big", "left"))
    with pytest.raises(XlcoreError, match="de culture concept"):
        get_grammar("en").describe(S("pretzel", "red", "big", "left"))


def test_relation_must_fit_the_axis_and_template_must_exist():
    with pytest.raises(ValueError, match="does not fit"):
        get_grammar("en").describe(P("circle", "red", "square", "blue", "vertical"), "left_of")
    with pytest.raises(ValueError, match="out of range"):
        get_grammar("en").describe(S("circle", "red", "big", "left"), None, 4)


def test_unknown_language_lists_the_supported_ones():
    with pytest.raises(UnknownLanguageError) as err:
        get_grammar("xx")
    assert "'xx'" in str(err.value) and "cs, de, en, fr, ja, zh" in str(err.value)
