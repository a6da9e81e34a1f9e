"""Colour words the model was not trained on, read as the trained colour they name.

The pretrained text encoder (MiniLM) does not know what colour most colour words are: alone,
"sapphire" is as near to "red" as to "blue" (docs/results.md, "The phrasebook"), so no reading of
its encodings can ground "head to the sapphire cone". People do know: the XKCD colour survey gives
each common colour name the sRGB value its ~222,500 participants meant by it
(vla_ros/model/xkcd_colours.py). A one-word colour name in a command that is not a word of the
commands the model was trained on (its phrasebook) is replaced by the chromatic basic colour term
(Berlin and Kay's red, orange, yellow, green, blue, purple, pink) nearest to it in CIELAB hue,
when that term is a trained word and the choice is clear: the colour is saturated enough to have
a hue, the nearest term is within ``MAX_HUE_GAP`` and the second nearest at least ``MIN_MARGIN``
further. "sapphire" reads as "blue", "emerald" as "green"; "teal" (between green and blue),
"maroon" (between red and pink) and "orange" (no orange cone trained) stay as they are.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Iterable

from vla_ros.model.xkcd_colours import XKCD_COLOURS

__all__ = ["ACHROMATIC_TERMS", "BASIC_TERMS", "ColourWords", "basic_term", "lch"]

#: Berlin and Kay's chromatic basic colour terms (the achromatic ones have no hue to compare).
BASIC_TERMS = ("red", "orange", "yellow", "green", "blue", "purple", "pink")
ACHROMATIC_TERMS = ("black", "white", "grey", "gray", "brown")  # brown: dark orange, its own basic term
MIN_CHROMA = 25.0  # CIELAB chroma below this is greyish: no reliable hue
MAX_HUE_GAP = 30.0  # degrees of CIELAB hue to the nearest basic term
MIN_MARGIN = 8.0  # degrees by which the second-nearest basic term must be further
_WORD = re.compile(r"[A-Za-z]+")


def lch(hex_colour: str) -> tuple[float, float, float]:
    """'#rrggbb' (sRGB, D65) -> CIELAB lightness, chroma and hue in degrees [0, 360)."""
    rgb = [int(hex_colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    m = ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505))
    white = (0.95047, 1.0, 1.08883)
    xyz = [sum(a * c for a, c in zip(row, lin)) / w for row, w in zip(m, white)]
    f = [math.cbrt(v) if v > 0.008856 else 7.787 * v + 16 / 116 for v in xyz]
    lab_a, lab_b = 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    return 116 * f[1] - 16, math.hypot(lab_a, lab_b), math.degrees(math.atan2(lab_b, lab_a)) % 360


def _is_colour(name: str) -> bool:
    """A survey colour name with a hue, or an achromatic basic term (not "sand", "ice" and the like)."""
    return name in ACHROMATIC_TERMS or (name in XKCD_COLOURS and lch(XKCD_COLOURS[name])[1] >= MIN_CHROMA)


def _hue_gap(a: float, b: float) -> float:
    return min(abs(a - b), 360 - abs(a - b))


@lru_cache(maxsize=None)
def basic_term(name: str) -> str | None:
    """The chromatic basic colour term that the XKCD colour ``name`` is a shade of; None for a
    name not in the survey, a greyish colour, or one between two terms."""
    hex_colour = XKCD_COLOURS.get(name.lower())
    if hex_colour is None:
        return None
    _, chroma, hue = lch(hex_colour)
    if chroma < MIN_CHROMA:
        return None
    gaps = sorted((_hue_gap(hue, lch(XKCD_COLOURS[t])[2]), t) for t in BASIC_TERMS)
    (nearest, term), (second, _) = gaps[0], gaps[1]
    return term if nearest <= MAX_HUE_GAP and second - nearest >= MIN_MARGIN else None


class ColourWords:
    """Rewrites the colour words of a command that its ``vocabulary`` (the words of the trained
    commands) lacks into the trained basic colour term they name; other words are kept as written."""

    def __init__(self, vocabulary: Iterable[str]):
        self.vocabulary = {w.lower() for text in vocabulary for w in _WORD.findall(text)}
        self.table = {name: term for name in XKCD_COLOURS
                      if name not in self.vocabulary and (term := basic_term(name)) in self.vocabulary}

    @property
    def trained(self) -> tuple[str, ...]:
        """The basic colour terms among the trained words, in BASIC_TERMS order."""
        return tuple(t for t in (*BASIC_TERMS, *ACHROMATIC_TERMS) if t in self.vocabulary)

    def untrained(self, text: str) -> list[str]:
        """Colour words of ``text`` that the model neither was trained on nor can read as a trained
        colour ("orange" when no orange cone was trained, "teal" between green and blue)."""
        return [w for w in _WORD.findall(text) if _is_colour(w.lower()) and w.lower() not in self.vocabulary
                and w.lower() not in self.table]

    def replacements(self, text: str) -> list[tuple[str, str]]:
        """(word as written, the trained colour term it reads as), in order."""
        return [(w, self.table[w.lower()]) for w in _WORD.findall(text) if w.lower() in self.table]

    def rewrite(self, text: str) -> str:
        """``text`` with each unknown colour word replaced; equal to ``text`` when none is found."""
        if not self.table:
            return text
        return _WORD.sub(lambda m: self.table.get(m.group().lower(), m.group()), text)
