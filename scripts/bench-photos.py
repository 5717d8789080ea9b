#!/usr/bin/env python3
"""Writes N real photos-like images to OUTDIR, encoded by Pillow (libjpeg-turbo, zlib, libwebp):
the seed set's mix and sizes (as in testkit/src/images.rs: JPEG, PNG every fifth from the second,
WebP every fifth from the fourth; 100 KB to 8 MB), but with real compressed data, so that the
validators and decoders do the work they do on real downloads.

    scripts/bench-photos.py OUTDIR [N]
"""
import math
import sys
from pathlib import Path

from PIL import Image

KB, MB = 1024, 1024 * 1024


def photo_size(q):
    bands = [(0.0, 0.05, 100 * KB, 200 * KB), (0.05, 0.75, 200 * KB, 2 * MB), (0.75, 1.0, 2 * MB, 8 * MB)]
    for lo_q, hi_q, lo, hi in bands:
        if q < hi_q:
            return lo * (hi / lo) ** ((q - lo_q) / (hi_q - lo_q))
    return bands[-1][3]


def dims(pixels, portrait):
    w = int(math.sqrt(pixels * 4 / 3))
    h = int(w * 3 / 4)
    return (h, w) if portrait else (w, h)


def photo(w, h, seed):
    """Smooth colour gradients with grain: compresses as a photo does, not as flat colour."""
    base = Image.linear_gradient("L").resize((w, h))
    grain = Image.effect_noise((w, h), 24 + seed % 16)
    r = Image.blend(base, grain, 0.35)
    g = Image.blend(base.rotate(90).resize((w, h)), grain, 0.3)
    b = Image.blend(base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grain, 0.25)
    return Image.merge("RGB", (r, g, b))


def main():
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        q = ((i + 0.5) * 0.618033988749895) % 1.0
        target = photo_size(q)
        portrait = i % 4 == 3
        name = out / f"img-{i + 1:03}"
        if i % 5 == 1:
            w, h = dims(target / 3.0, portrait)
            photo(w, h, i).save(f"{name}.png", compress_level=1)
        elif i % 5 == 3:
            w, h = dims(target * 8.0, portrait)
            photo(w, h, i).save(f"{name}.webp", quality=80)
        else:
            w, h = dims(target * 4.0, portrait)
            photo(w, h, i).save(f"{name}.jpg", quality=90)


if __name__ == "__main__":
    main()
