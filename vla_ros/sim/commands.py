"""Language commands: kinds, training phrasings and held-out (evaluation-only) phrasings."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["KINDS", "SPLITS", "PHRASINGS", "phrasings", "sample_command", "kind_of_phrasing", "kind_from_text", "normalize_text"]

#: Every command kind, in a fixed order (index = class id).
KINDS: tuple[str, ...] = (
    "forward", "turn_left", "turn_right", "stop", "follow_lane", "goto_red", "goto_green", "goto_blue",
)
SPLITS = ("train", "eval")

#: kind -> {"train": [...], "eval": [...]}. Eval phrasings never occur in training data.
PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "forward": {
        "train": ("move forward", "go straight", "drive forward", "go straight ahead", "keep going straight",
                  "move ahead", "continue straight", "drive straight", "keep moving forward", "roll forward"),
        "eval": ("drive ahead", "proceed straight on"),
    },
    "turn_left": {
        "train": ("turn left", "take a left", "steer left", "go left", "make a left turn",
                  "turn to the left", "swing left", "head left", "curve to the left", "rotate left while driving"),
        "eval": ("veer to the left", "bear left"),
    },
    "turn_right": {
        "train": ("turn right", "take a right", "steer right", "go right", "make a right turn",
                  "turn to the right", "swing right", "head right", "curve to the right",
                  "rotate right while driving"),
        "eval": ("veer to the right", "bear right"),
    },
    "stop": {
        "train": ("stop", "halt", "stop the robot", "come to a stop", "stop moving",
                  "stay put", "don't move", "wait here", "stay where you are", "remain stationary",
                  "pause", "do not drive"),
        "eval": ("hold still", "freeze right there"),
    },
    "follow_lane": {
        "train": ("follow the lane", "follow the road", "stay in your lane", "drive along the lane",
                  "keep to the road", "keep in the lane", "drive down the road", "go along the road",
                  "stay on the road", "follow the path"),
        "eval": ("track the lane markings", "stick to the road"),
    },
    "goto_red": {
        "train": ("go to the red cone", "drive to the red cone", "move to the red cone", "approach the red cone",
                  "head for the red one", "find the red cone", "reach the red cone", "get to the red cone",
                  "go to the scarlet cone", "drive to the ruby one"),
        "eval": ("head to the crimson cone", "navigate toward the red marker"),
    },
    "goto_green": {
        "train": ("go to the green cone", "drive to the green cone", "move to the green cone",
                  "approach the green cone", "head for the green one", "find the green cone",
                  "reach the green cone", "get to the green cone", "go to the lime cone", "drive to the jade one"),
        "eval": ("head to the emerald cone", "navigate toward the green marker"),
    },
    "goto_blue": {
        "train": ("go to the blue cone", "drive to the blue cone", "move to the blue cone", "approach the blue cone",
                  "head for the blue one", "find the blue cone", "reach the blue cone", "get to the blue cone",
                  "go to the navy cone", "drive to the cobalt one"),
        "eval": ("head to the sapphire cone", "navigate toward the blue marker"),
    },
}


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", str(text).lower()).split())


def _check(kind: str, split: str) -> None:
    if kind not in PHRASINGS:
        raise ValueError(f"unknown command kind {kind!r}; choose one of {list(KINDS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'eval'")


def phrasings(kind: str, split: str = "train") -> tuple[str, ...]:
    """The phrasings of ``kind`` for ``split`` ("train" or "eval", disjoint)."""
    _check(kind, split)
    return PHRASINGS[kind][split]


def sample_command(rng: np.random.Generator, kind: str | None = None, split: str = "train") -> tuple[str, str]:
    """``(kind, text)``: a random kind (unless given) and one of its ``split`` phrasings."""
    if kind is None:
        kind = KINDS[int(rng.integers(len(KINDS)))]
    options = phrasings(kind, split)
    return kind, options[int(rng.integers(len(options)))]


_LOOKUP = {normalize_text(t): k for k, d in PHRASINGS.items() for sp in SPLITS for t in d[sp]}
_COLOUR_WORDS = {
    "goto_red": ("red", "crimson", "scarlet", "ruby"),
    "goto_green": ("green", "emerald", "lime", "jade"),
    "goto_blue": ("blue", "sapphire", "navy", "azure", "cobalt"),
}


def kind_of_phrasing(text: str) -> str | None:
    """The kind of a known phrasing (train or eval, up to case and punctuation); None for any other text."""
    return _LOOKUP.get(normalize_text(text))


def kind_from_text(text: str) -> str | None:
    """The kind of a known phrasing (train or eval); for other text a keyword guess; None if unsure."""
    known = kind_of_phrasing(text)
    if known is not None:
        return known
    words = set(normalize_text(text).split())
    for kind, colours in _COLOUR_WORDS.items():
        if words & set(colours):
            return kind
    if words & {"lane", "road", "markings"}:
        return "follow_lane"
    if "left" in words:
        return "turn_left"
    if "right" in words:
        return "turn_right"
    if words & {"stop", "halt", "freeze", "still", "wait", "stay", "pause", "stationary", "put"}:
        return "stop"
    if words & {"forward", "straight", "ahead"}:
        return "forward"
    return None
