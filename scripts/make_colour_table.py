#!/usr/bin/env python3
"""Write vla_ros/model/xkcd_colours.py: the single-word colour names of the XKCD colour survey.

The survey (https://xkcd.com/color/rgb/, public domain, CC0) asked ~222,500 people to name
colours shown to them; its 949 most common names, each with its most typical sRGB value, ship
with matplotlib (``matplotlib._color_data.XKCD_COLORS``). vla_ros reads the one-word names
(vla_ros/model/colour_words.py) and does not depend on matplotlib at run time, so the table is
written out once by this script.

Usage: .venv/bin/python scripts/make_colour_table.py
"""

from __future__ import annotations

from pathlib import Path

from matplotlib._color_data import XKCD_COLORS

OUT = Path(__file__).resolve().parents[1] / "vla_ros" / "model" / "xkcd_colours.py"


def main() -> None:
    names = {k.removeprefix("xkcd:"): v for k, v in XKCD_COLORS.items()}
    words = {k: v for k, v in sorted(names.items()) if k.isalpha()}
    lines = [f'    "{k}": "{v}",' for k, v in words.items()]
    OUT.write_text(
        '"""The single-word colour names of the XKCD colour survey and their sRGB values (public domain,\n'
        "CC0; https://xkcd.com/color/rgb/). Written by scripts/make_colour_table.py; do not edit.\"\"\"\n\n"
        "XKCD_COLOURS: dict[str, str] = {\n" + "\n".join(lines) + "\n}\n")
    print(f"wrote {len(words)} names to {OUT}")


if __name__ == "__main__":
    main()
