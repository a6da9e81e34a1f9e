#!/usr/bin/env python3
"""Does the model go to the cone whose colour the command names? (vla_ros.training.evaluate.colour_grounding)

The model answers "go to the red / green / blue cone" from the same frames, with x_T = 0 (its
mean-like answer, no noise draw), for every unblocked goto episode of a dataset; the expert
plans the same three commands from the recorded state. Prints (and writes) JSON:
``identified`` (1/3 = chance), the endpoint spread across colours (model vs expert) and the
bearing error.

Usage: .venv/bin/python scripts/colour_grounding.py --data EVAL [--checkpoint CKPT] [--json F]
       [--phrase "head to the {} cone" --words red=cherry,carmine/green=fern,forest/blue=midnight,iris]
       [--no-colour-words]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from vla_ros.training.evaluate import colour_grounding
from vla_ros.inference import VLAInferenceAPI


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset directory (vla data generate), e.g. held-out seeds")
    ap.add_argument("--checkpoint", help="checkpoint (default: the packaged default)")
    ap.add_argument("--steps", default="8,20", help="steps of each episode to test (comma-separated)")
    ap.add_argument("--json", help="write the figures as JSON")
    ap.add_argument("--phrase", default="go to the {} cone", help="the command, {} = the colour word")
    ap.add_argument("--words", help="each colour's words, e.g. red=cherry,carmine/green=fern,forest/blue=iris,dusk "
                                    "(default: the colour's name)")
    ap.add_argument("--no-colour-words", action="store_true",
                    help="read colour words as written (model.colour_words off), for comparison")
    args = ap.parse_args()
    words = None
    if args.words:
        words = {c: tuple(ws.split(",")) for c, ws in (part.split("=", 1) for part in args.words.split("/"))}
    api = VLAInferenceAPI(args.checkpoint, noise="zero")
    if args.no_colour_words:  # before any command is encoded (the API caches encodings)
        api.model.config = dataclasses.replace(api.model.config, colour_words=False)
    out = colour_grounding(lambda e, t, text, odo: api.predict(e, t, text, odo).trajectory, args.data,
                           steps=tuple(int(s) for s in args.steps.split(",")),
                           history_length=api.config.history_length, phrase=args.phrase, words=words)
    out = {"checkpoint": str(api.checkpoint), "colour_words": api.model.config.colour_words, **out}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
