"""Colour words the model was not trained on read as the trained colour they name
(vla_ros/model/colour_words.py, model.colour_words)."""

from __future__ import annotations

import pytest
import torch

from vla_ros.checkpoint import load_checkpoint, save_checkpoint
from vla_ros.model.colour_words import ColourWords, basic_term, lch
from vla_ros.model.vla import SimpleVLA
from vla_ros.model.xkcd_colours import XKCD_COLOURS
from vla_ros.sim.commands import PHRASINGS

TRAINED = [t for kind in PHRASINGS.values() for t in kind["train"]]


def test_cielab_of_known_srgb_colours():
    # reference values (D65): sRGB red L 53.24, C 104.55, h 40.0; blue L 32.30, C 133.81, h 306.3
    for hex_colour, expect in (("#ff0000", (53.24, 104.55, 40.0)), ("#0000ff", (32.30, 133.81, 306.3))):
        assert lch(hex_colour) == pytest.approx(expect, abs=0.1)
    assert lch("#808080")[1] < 0.01  # grey has no chroma


@pytest.mark.parametrize("name, term", [
    ("sapphire", "blue"), ("emerald", "green"), ("crimson", "red"), ("navy", "blue"), ("cherry", "red"),
    ("forest", "green"), ("orange", "orange"), ("violet", "purple"),
    ("teal", None),  # between green and blue
    ("maroon", None),  # between red and pink
    ("grey", None), ("charcoal", None),  # no hue
    ("cone", None), ("left", None),  # not colour names
])
def test_a_colour_name_is_a_shade_of_the_basic_term_nearest_in_hue(name, term):
    assert basic_term(name) == term


def test_unknown_colour_words_are_rewritten_to_the_trained_colour_and_nothing_else_changes():
    words = ColourWords(TRAINED)
    assert words.rewrite("Head to the Sapphire cone, please!") == "Head to the blue cone, please!"
    assert words.rewrite("head to the emerald cone") == "head to the green cone"
    assert words.replacements("the crimson or the cherry one") == [("crimson", "red"), ("cherry", "red")]
    for kept in ("go to the scarlet cone",  # a trained word stays itself
                 "go to the orange cone",  # no orange cone was trained: not forced onto another colour
                 "go to the teal cone", "turn left", "stop", ""):
        assert words.rewrite(kept) == kept
    assert "scarlet" not in words.table and "blue" not in words.table  # trained words are never rewritten
    assert set(words.table.values()) == {"red", "green", "blue"}
    assert ColourWords([]).rewrite("go to the sapphire cone") == "go to the sapphire cone"
    # colours it can neither ground nor read as a trained one are named, for the node to warn
    assert words.trained == ("red", "green", "blue")
    assert words.untrained("go to the Orange cone, not the teal or grey one") == ["Orange", "teal", "grey"]
    assert words.untrained("head to the sapphire cone") == [] and words.untrained("turn left") == []
    assert all(name.isalpha() and name.islower() for name in XKCD_COLOURS) and len(XKCD_COLOURS) > 200


def test_the_model_encodes_an_unknown_colour_word_as_the_trained_colour(tmp_path):
    model = SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, phrasebook_temperature=0.01).eval()
    asked = ["head to the sapphire cone", "go to the blue cone", "go to the red cone"]
    with torch.no_grad():
        before = model.encode_text(asked)  # no phrasebook: no vocabulary to read against
        assert model.reading(asked[0]) == asked[0] and not torch.allclose(before[0], before[1])
        model.set_phrasebook(["go to the blue cone", "go to the red cone", "turn left"])
        assert model.reading(asked[0]) == "head to the blue cone"
        after = model.encode_text(asked)
        torch.testing.assert_close(after[0], model.encode_text(["head to the blue cone"])[0])
        assert model.understood_as(asked[0])[0] == "go to the blue cone"
        assert model.untrained_colours("go to the orange cone") == (["orange"], ("red", "blue"))
    # kept through a checkpoint; switched off at load time, the word is read as written
    path = save_checkpoint(model, tmp_path / "cw.pth")
    again, _ = load_checkpoint(path)
    off, _ = load_checkpoint(path, colour_words=False)
    with torch.no_grad():
        torch.testing.assert_close(again.encode_text(asked), after)
        assert off.reading(asked[0]) == asked[0]
        assert not torch.allclose(off.encode_text(asked[:1]), after[:1])
