#!/usr/bin/env python3
"""Writes jobd's reference image corpus: files from real encoders, judged by reference decoders.

    python3 tests/corpus/make.py OUTDIR     writes the files and OUTDIR/manifest.json
    python3 tests/corpus/make.py --check    exits 0 when the pinned packages are installed

The encoders are Pillow (PNG, JPEG, GIF, WebP, BMP, TIFF through libtiff, ICO, AVIF through
libavif), pillow-heif (HEIF through libheif and x265) and pillow-jxl-plugin (JPEG XL through
libjxl). Quirks that no encoder writes (stray bytes in a JPEG, an OS/2 BMP, a tiled or
big-endian TIFF, an AVIF or HEIF grid, interlaced and 16-bit RGB PNG) are made by editing or
assembling encoder output here, and every file called "valid" is then decoded, every frame of
it, by the reference decoder (Pillow and its plugins): the manifest is not written if the
reference refuses one, and its width, height and frame count are the reference's, not ours.

Each manifest entry: name, mime (as jobd's sniffer names it), kind ("valid", "bomb", "corrupt"),
note (what the file is), for valid files width, height (displayed: after EXIF orientation or
irot, as the reference applies it) and frames, and for the others problems (the
jobd::validate::Problem names the validator may answer with).

Everything is deterministic (seeded noise, fixed encoder settings) and small: about 2 MB in all,
written in a few seconds.
"""

import io
import json
import os
import random
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL = "python3 -m pip install -r tests/corpus/requirements.txt"


def requirements():
    """The pins of requirements.txt as {distribution: version}."""
    pins = {}
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def check_packages():
    """Empty when every pinned package is installed at its pinned version, else what is wrong."""
    from importlib import metadata

    problems = []
    for name, want in requirements().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if have != want:
            problems.append(f"{name} is {have}, the corpus pins {want}")
    return problems


if len(sys.argv) == 2 and sys.argv[1] == "--check":
    wrong = check_packages()
    for w in wrong:
        print(f"make.py: {w}", file=sys.stderr)
    sys.exit(1 if wrong else 0)

if len(sys.argv) != 2:
    sys.exit("usage: make.py OUTDIR | make.py --check")

try:
    from PIL import Image, ImageDraw, ImageOps, ImageSequence, features
    import pillow_heif
    import pillow_jxl  # noqa: F401  (registers nothing by itself)
    from pillow_jxl import JpegXLImagePlugin  # noqa: F401  (registers the JXL opener and saver)
except ImportError as e:
    sys.exit(f"make.py: {e}; the corpus needs Pillow, pillow-heif and pillow-jxl-plugin: {INSTALL}")

for w in check_packages():
    # Another version still makes a corpus judged by its own decoders; say so, go on.
    print(f"make.py: warning: {w} ({INSTALL})", file=sys.stderr)

pillow_heif.register_heif_opener()
for feature in ("webp", "avif", "jpg", "zlib", "libtiff"):
    if not features.check(feature):
        sys.exit(f"make.py: this Pillow lacks {feature} support; {INSTALL}")

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
ENTRIES = []

# -------------------------------------------------------------------------------------------
# Content: gradients, a few shapes, and seeded noise, so that compressed data looks like a photo's.


def photo(w, h, seed, mode="RGB"):
    rnd = random.Random(seed)
    gx = Image.linear_gradient("L").rotate(90).resize((w, h))
    gy = Image.linear_gradient("L").resize((w, h))
    gr = Image.radial_gradient("L").resize((w, h))
    channels = []
    for g in (gx, gy, gr):
        noise = Image.frombytes("L", (w, h), rnd.randbytes(w * h))
        channels.append(Image.blend(g, noise, 0.12))
    im = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(im)
    for _ in range(5):
        x, y = rnd.randrange(w), rnd.randrange(h)
        r = rnd.randrange(4, max(5, min(w, h) // 3))
        colour = tuple(rnd.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    if mode == "RGBA":
        alpha = Image.radial_gradient("L").resize((w, h)).point(lambda v: 255 - v)
        im.putalpha(alpha)
    elif mode != "RGB":
        im = im.convert(mode)
    return im


def frames_of(w, h, seed, n):
    """n frames of one scene with a moving disc: animations whose later frames differ only in
    part, so that encoders write sub-rectangles."""
    base = photo(w, h, seed)
    out = []
    for i in range(n):
        f = base.copy()
        x = 10 + i * (w - 40) // max(1, n - 1)
        ImageDraw.Draw(f).ellipse((x, h // 3, x + 24, h // 3 + 24), fill=(255, 40 * i % 256, 0))
        out.append(f)
    return out


def encode(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def exif_orientation(n):
    ex = Image.Exif()
    ex[0x0112] = n
    return ex.tobytes()


# -------------------------------------------------------------------------------------------
# Recording files.


def valid(name, mime, data, note, frames_via=None):
    """A file the reference must decode; its size and frames are the reference's."""
    (OUT / name).write_bytes(data)
    width, height, frames = reference(OUT / name, frames_via)
    ENTRIES.append(
        dict(name=name, mime=mime, kind="valid", note=note, width=width, height=height, frames=frames)
    )


def bomb(name, mime, data, note, problems=("TooLarge",)):
    (OUT / name).write_bytes(data)
    ENTRIES.append(dict(name=name, mime=mime, kind="bomb", note=note, problems=list(problems)))
    if mime not in ("image/webp", "image/jxl"):  # their Pillow plugins decode (allocate) on open
        ENTRIES[-1]["note"] += f" (Pillow: {bomb_verdict(OUT / name)})"


def bomb_verdict(path):
    """What the reference says of a bomb, from headers (nothing big is decoded or allocated):
    it refuses it, or reports a frame over max_pixels or more than max_frames frames. A bomb it
    sees as a small image is no bomb: no manifest."""
    try:
        with Image.open(path) as im:
            if hasattr(im, "ico"):
                im.ico.frame(0)  # opens the embedded PNG's header, where Pillow's bomb check is
            if im.format in ("AVIF", "HEIF"):
                im.load()  # libavif and libheif check their size limits before they allocate
            n = getattr(im, "n_frames", 1)
            if n > 1000:
                return f"{n} frames"
            for i in range(n):
                im.seek(i)  # reads each frame's header only
                if im.size[0] * im.size[1] > 100_000_000:
                    return f"frame {i + 1} is {im.size[0]}x{im.size[1]}"
    except Exception as e:
        words = " ".join(str(e).replace(str(path), path.name).split()).split(", could be")[0]
        return f"{type(e).__name__}: {words[:90]}"
    raise Refused(f"the reference sees {path.name} as a small image, not a bomb")


def corrupt(name, mime, data, note, problems=("Truncated", "Corrupt")):
    (OUT / name).write_bytes(data)
    ENTRIES.append(dict(name=name, mime=mime, kind="corrupt", note=note, problems=list(problems)))


class Refused(Exception):
    pass


def reference(path, frames_via):
    """Decodes every frame (every entry of an icon) with the reference decoder. Returns the
    displayed width and height (ImageOps.exif_transpose's size, which applies EXIF orientation;
    pillow-heif applies irot/imir itself, Pillow's AVIF plugin turns them into an EXIF
    orientation) and the frame count (Pillow's n_frames, an icon's entry count)."""
    try:
        with Image.open(path) as im:
            if frames_via == "ico":
                for i in range(len(im.ico.entry)):
                    im.ico.frame(i).load()
                frames = len(im.ico.entry)
            else:
                frames = 0
                for frame in ImageSequence.Iterator(im):
                    frame.load()
                    frames += 1
                if frames != getattr(im, "n_frames", 1):
                    raise Refused(f"decoded {frames} frames, n_frames says {im.n_frames}")
                im.seek(0)
            im.load()
            shown = ImageOps.exif_transpose(im)
            return shown.size[0], shown.size[1], frames
    except Exception as e:  # the reference refuses the file: no manifest
        raise Refused(f"the reference decoder refuses {path.name}: {type(e).__name__}: {e}") from e


# -------------------------------------------------------------------------------------------
# PNG: a hand writer for what Pillow does not write (Adam7 interlacing, 16-bit RGB).


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_raw(w, h, depth, colour_type, pixels, bpp, interlace):
    """A PNG from raw pixel bytes (bpp bytes a pixel), filter type 0, optionally Adam7."""
    stride = w * bpp
    rows = []
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            if x0 >= w or y0 >= h:
                continue  # an empty pass has no rows, not even filter bytes
            for y in range(y0, h, dy):
                line = pixels[y * stride : (y + 1) * stride]
                rows.append(b"\0" + b"".join(line[x * bpp : (x + 1) * bpp] for x in range(x0, w, dx)))
    else:
        rows = [b"\0" + pixels[y * stride : (y + 1) * stride] for y in range(h)]
    idat = zlib.compress(b"".join(rows), 9)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 1 if interlace else 0)
    # Two IDAT chunks, as encoders that flush their buffer write them.
    half = len(idat) // 2
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat[:half])
        + png_chunk(b"IDAT", idat[half:])
        + png_chunk(b"IEND", b"")
    )


def rgb16(im, seed):
    """16-bit big-endian RGB samples: the 8-bit value in the high byte, noise in the low one."""
    rnd = random.Random(seed)
    src = im.tobytes()
    low = rnd.randbytes(len(src))
    return bytes(b for pair in zip(src, low) for b in pair)


def png_chunks(data):
    """(type, start, end) of each chunk, end past its CRC."""
    at, out = 8, []
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        out.append((data[at + 4 : at + 8], at, at + 12 + n))
        at += 12 + n
    return out


def make_png():
    m = "image/png"
    valid("png-rgb.png", m, encode(photo(257, 171, 1), "PNG", optimize=True), "8-bit RGB, Pillow")
    valid("png-rgba.png", m, encode(photo(160, 120, 2, "RGBA"), "PNG"), "8-bit RGBA, Pillow")
    pal = photo(150, 100, 3).quantize(64)
    pal.info["transparency"] = 0
    valid("png-palette.png", m, encode(pal, "PNG", transparency=0), "palette with tRNS, Pillow")
    gray16 = photo(120, 90, 4, "L").convert("I").point(lambda v: v * 257).convert("I;16")
    valid("png-gray16.png", m, encode(gray16, "PNG"), "16-bit grayscale, Pillow")
    im = photo(101, 67, 5)
    valid(
        "png-interlaced.png",
        m,
        png_raw(101, 67, 8, 2, im.tobytes(), 3, True),
        "8-bit RGB, Adam7 interlaced (hand-written, Pillow writes no interlace)",
    )
    im = photo(63, 45, 6)
    valid(
        "png-rgb16-interlaced.png",
        m,
        png_raw(63, 45, 16, 2, rgb16(im, 6), 6, True),
        "16-bit RGB, Adam7 interlaced (hand-written)",
    )
    valid(
        "png-rgb16.png",
        m,
        png_raw(80, 61, 16, 2, rgb16(photo(80, 61, 7), 7), 6, False),
        "16-bit RGB (hand-written)",
    )
    # An ancillary chunk between the last IDAT and IEND, as some editors write.
    base = encode(photo(90, 70, 8), "PNG")
    iend = png_chunks(base)[-1][1]
    after = base[:iend] + png_chunk(b"tEXt", b"Comment\0written after IDAT") + base[iend:]
    valid("png-text-after-idat.png", m, after, "a tEXt chunk after IDAT")

    frames = frames_of(160, 120, 9, 4)
    apng = encode(
        frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=1, blend=1
    )
    valid("apng.png", m, apng, "APNG, 4 frames (sub-rectangles), Pillow")

    # Bombs and broken files, hand-built with correct CRCs.
    sig = b"\x89PNG\r\n\x1a\n"
    small_idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    bomb(
        "png-bomb.png",
        m,
        sig + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)) + small_idat + png_chunk(b"IEND", b""),
        "IHDR 60000x60000",
    )
    ihdr16 = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
    idat16 = png_chunk(b"IDAT", zlib.compress(b"\0" * (17 * 16)))

    def fctl(seq, w, h, x, y):
        return png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, x, y, 1, 10, 0, 0))

    def fdat(seq, raw):
        return png_chunk(b"fdAT", struct.pack(">I", seq) + zlib.compress(raw))

    bomb(
        "apng-bomb.png",
        m,
        sig
        + ihdr16
        + png_chunk(b"acTL", struct.pack(">II", 2, 0))
        + fctl(0, 16, 16, 0, 0)
        + idat16
        + fctl(1, 60000, 60000, 0, 0)
        + fdat(2, b"\0" * 64)
        + png_chunk(b"IEND", b""),
        "APNG on a 16x16 canvas whose frame 2 is 60000x60000: over max_pixels, and outside its "
        "canvas (libpng's error), so either answer is a refusal",
        problems=("TooLarge", "Corrupt"),
    )
    outside = (
        sig
        + ihdr16
        + png_chunk(b"acTL", struct.pack(">II", 2, 0))
        + fctl(0, 16, 16, 0, 0)
        + idat16
        + fctl(1, 8, 8, 12, 12)
        + fdat(2, b"\0" * (9 * 8))
        + png_chunk(b"IEND", b"")
    )
    corrupt("apng-frame-outside.png", m, outside, "APNG frame 2 (8x8 at 12,12) outside its 16x16 canvas")
    refuses("apng-frame-outside.png")

    good = encode(photo(64, 48, 10), "PNG")
    chunks = png_chunks(good)
    idat = next(c for c in chunks if c[0] == b"IDAT")
    broken = bytearray(good)
    broken[idat[2] - 1] ^= 0x55  # the last byte of IDAT's CRC: the data is intact, its CRC wrong
    corrupt("png-bad-crc.png", m, bytes(broken), "the CRC of IDAT is wrong (its data is intact)")
    corrupt("png-no-iend.png", m, good[: chunks[-1][1]], "ends after its last IDAT, without IEND")
    corrupt("png-33-bytes.png", m, good[:33], "signature and IHDR only (33 bytes)")


def refuses(name):
    """Notes, for a corrupt sample, that the reference decoder refuses it too."""
    try:
        with Image.open(OUT / name) as im:
            for frame in ImageSequence.Iterator(im):
                frame.load()
    except Exception as e:
        ENTRIES[-1]["note"] += f" (Pillow: {type(e).__name__}: {e})"
        return
    raise Refused(f"{name} is meant to be corrupt, but the reference decoder accepts it")


# -------------------------------------------------------------------------------------------
# JPEG.


def jpeg_markers(data):
    """(marker, offset) of each marker segment up to SOS."""
    at, out = 2, []
    while at < len(data):
        assert data[at] == 0xFF, at
        marker = data[at + 1]
        out.append((marker, at))
        if marker == 0xDA:
            break
        (n,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + n
    return out


def marker_at(data, marker):
    return next(at for m, at in jpeg_markers(data) if m == marker)


def make_jpeg():
    m = "image/jpeg"
    im = photo(320, 213, 20)
    base = encode(im, "JPEG", quality=85)
    valid("jpeg-baseline.jpg", m, base, "baseline, 4:2:0, JFIF, Pillow/libjpeg-turbo")
    valid("jpeg-444.jpg", m, encode(im, "JPEG", quality=90, subsampling=0), "baseline 4:4:4")
    valid("jpeg-progressive.jpg", m, encode(im, "JPEG", quality=85, progressive=True), "progressive")
    valid("jpeg-gray.jpg", m, encode(im.convert("L"), "JPEG"), "grayscale, one component")
    valid("jpeg-cmyk.jpg", m, encode(im.convert("CMYK"), "JPEG"), "CMYK with an Adobe APP14")
    valid(
        "jpeg-restart.jpg",
        m,
        encode(im, "JPEG", restart_marker_blocks=8),
        "restart markers in the scan data",
    )
    valid("jpeg-exif6.jpg", m, encode(im, "JPEG", exif=exif_orientation(6)), "EXIF orientation 6 (shown rotated)")
    valid("jpeg-exif3.jpg", m, encode(im, "JPEG", exif=exif_orientation(3)), "EXIF orientation 3 (upside down)")
    valid(
        "jpeg-progressive-exif8.jpg",
        m,
        encode(im, "JPEG", progressive=True, exif=exif_orientation(8)),
        "progressive, EXIF orientation 8",
    )
    dqt = marker_at(base, 0xDB)
    valid(
        "jpeg-stray-bytes.jpg",
        m,
        base[:dqt] + b"\x00\x17\x42" + base[dqt:],
        "3 stray bytes before the DQT marker (libjpeg warns and goes on)",
    )
    app0 = marker_at(base, 0xE0)
    (n,) = struct.unpack(">H", base[app0 + 2 : app0 + 4])
    valid(
        "jpeg-short-app0.jpg",
        m,
        base[:app0] + b"\xff\xe0\x00\x09JFIF\x00\x01\x02" + base[app0 + 2 + n :],
        "a JFIF APP0 of 7 bytes: version, no density (libjpeg skips it; Pillow needs the version)",
    )
    sof = marker_at(base, 0xC0)
    sos = marker_at(base, 0xDA)
    filled = base[:sos] + b"\xff\xff\xff" + base[sos:]
    filled = filled[:sof] + b"\xff\xff" + filled[sof:]
    valid("jpeg-fill-bytes.jpg", m, filled, "0xFF fill bytes before SOF0 and SOS")

    gray = encode(photo(64, 48, 21, "L"), "JPEG")
    sof = marker_at(gray, 0xC0)
    huge = gray[: sof + 5] + struct.pack(">HH", 65000, 65000) + gray[sof + 9 :]
    bomb("jpeg-bomb.jpg", m, huge, "SOF0 65000x65000 around a 64x48 scan")
    sos = marker_at(base, 0xDA)
    (n,) = struct.unpack(">H", base[sos + 2 : sos + 4])
    corrupt("jpeg-cut-before-scan.jpg", m, base[: sos + 2 + n], "ends right after its SOS header")
    return base


# -------------------------------------------------------------------------------------------
# GIF.


def lzw_min(pixels, min_size=2):
    """GIF LZW data for pixels < 4 with a clear code before every pair (codes stay 3 bits)."""
    bits, nbits, out = 0, 0, bytearray()
    clear, end = 1 << min_size, (1 << min_size) + 1
    codes = []
    for i in range(0, len(pixels), 2):
        codes.append(clear)
        codes.extend(pixels[i : i + 2])
    codes.append(end)
    for c in codes:
        bits |= c << nbits
        nbits += 3
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits)
    blocks = b"".join(bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255))
    return bytes([min_size]) + blocks + b"\0"


def gif_frame(x, y, w, h, pixels):
    return b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0) + lzw_min(pixels)


def make_gif():
    m = "image/gif"
    still = photo(200, 133, 30).quantize(128)
    valid("gif-still.gif", m, encode(still, "GIF"), "still, 128 colours, Pillow")
    frames = [f.quantize(64) for f in frames_of(180, 120, 31, 5)]
    anim = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0, disposal=2)
    valid("gif-animated.gif", m, anim, "animated, 5 frames, local palettes, sub-rectangles, Pillow")
    # A first frame larger than its logical screen: Firefox and Chromium grow the screen to the
    # first frame, and so does Pillow; giflib does not care.
    rnd = random.Random(32)
    palette = b"\x10\x20\x30\x80\x90\xa0\xf0\x40\x40\x20\xe0\x20"
    beyond = (
        b"GIF89a"
        + struct.pack("<HHBBB", 100, 80, 0x81, 0, 0)
        + palette
        + gif_frame(0, 0, 120, 90, [rnd.randrange(4) for _ in range(120 * 90)])
        + b"\x3b"
    )
    valid("gif-frame-beyond-screen.gif", m, beyond, "a 100x80 screen whose first frame is 120x90 (shown 120x90)")
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"  # 2 colours
    bomb(
        "gif-bomb.gif",
        m,
        head + gif_frame(0, 0, 60000, 60000, [0]) + b"\x3b",
        "a 1x1 screen with a 60000x60000 frame",
    )
    many = head + b"".join(gif_frame(0, 0, 1, 1, [i & 1]) for i in range(1001)) + b"\x3b"
    bomb("gif-1001-frames.gif", m, many, "1001 frames of 1x1: over max_frames (1000)")
    # Whole otherwise: the reference decodes all its frames.
    if reference(OUT / "gif-1001-frames.gif", None)[2] != 1001:
        raise Refused("the reference does not see 1001 frames in gif-1001-frames.gif")


# -------------------------------------------------------------------------------------------
# WebP.


def riff_chunks(data):
    at, out = 12, []
    while at + 8 <= len(data):
        kind = data[at : at + 4]
        (n,) = struct.unpack("<I", data[at + 4 : at + 8])
        out.append((kind, at, n))
        at += 8 + n + (n & 1)
    return out


def riff_chunk(kind, payload):
    pad = b"\0" if len(payload) & 1 else b""
    return kind + struct.pack("<I", len(payload)) + payload + pad


def riff(chunks):
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8l_header(w, h, alpha=False):
    bits = 0x2F | ((w - 1) << 8) | ((h - 1) << 22) | (int(alpha) << 36)
    return bits.to_bytes(5, "little")


def make_webp():
    m = "image/webp"
    im = photo(301, 199, 40)
    valid("webp-lossy.webp", m, encode(im, "WEBP", quality=80), "lossy VP8, simple format, odd size")
    valid("webp-lossless.webp", m, encode(photo(150, 101, 41), "WEBP", lossless=True), "lossless VP8L")
    rgba = photo(160, 120, 42, "RGBA")
    valid("webp-lossy-alpha.webp", m, encode(rgba, "WEBP", quality=80), "lossy with alpha: VP8X, ALPH, VP8")
    valid("webp-lossless-alpha.webp", m, encode(rgba, "WEBP", lossless=True), "lossless with alpha")
    icc = encode_icc()
    valid(
        "webp-metadata.webp",
        m,
        encode(im, "WEBP", quality=70, icc_profile=icc, exif=exif_without_orientation()),
        "VP8X with ICCP and EXIF chunks",
    )
    frames = frames_of(200, 150, 43, 4)
    anim = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=70)
    valid("webp-animated.webp", m, anim, "animated: ANIM and 4 ANMF frames, Pillow/libwebp")
    mixed = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:3], duration=100, lossless=True
    )
    valid("webp-animated-lossless.webp", m, mixed, "animated, lossless frames")

    vp8x = struct.pack("<B3x", 0x10) + (16382).to_bytes(3, "little") + (16382).to_bytes(3, "little")
    payload = vp8l_header(16383, 16383) + b"\x00" * 11
    bomb(
        "webp-vp8x-bomb.webp",
        m,
        riff([riff_chunk(b"VP8X", vp8x), riff_chunk(b"VP8L", payload)]),
        "VP8X canvas 16383x16383 with a VP8L image of that size",
    )
    bomb("webp-vp8l-bomb.webp", m, riff([riff_chunk(b"VP8L", payload)]), "lossless VP8L 16383x16383")


def encode_icc():
    """An sRGB profile from LittleCMS, with its creation date fixed so that runs are alike."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(icc)


def exif_without_orientation():
    ex = Image.Exif()
    ex[0x010F] = "jobd corpus"  # Make
    return ex.tobytes()


# -------------------------------------------------------------------------------------------
# BMP.


def make_bmp():
    m = "image/bmp"
    im = photo(121, 83, 50)
    b24 = encode(im, "BMP")
    valid("bmp-24.bmp", m, b24, "24-bit, bottom-up, BITMAPINFOHEADER, Pillow")
    valid("bmp-8-palette.bmp", m, encode(im.quantize(200), "BMP"), "8-bit palette")
    valid("bmp-1bit.bmp", m, encode(im.convert("1"), "BMP"), "1-bit, rows padded to 4 bytes")
    valid("bmp-32-rgba.bmp", m, encode(photo(64, 40, 51, "RGBA"), "BMP"), "32-bit with alpha")

    (offset,) = struct.unpack("<I", b24[10:14])
    stride = (121 * 3 + 3) & ~3
    rows = [b24[offset + y * stride : offset + (y + 1) * stride] for y in range(83)]
    top = bytearray(b24[:offset] + b"".join(reversed(rows)))
    top[22:26] = struct.pack("<i", -83)
    valid("bmp-topdown.bmp", m, bytes(top), "24-bit, top-down (negative height)")

    pixels = b"".join(rows)
    core = struct.pack("<IHHHH", 12, 121, 83, 1, 24)
    head = b"BM" + struct.pack("<IHHI", 14 + 12 + len(pixels), 0, 0, 26)
    valid("bmp-os2v1.bmp", m, head + core + pixels, "OS/2 v1: 12-byte BITMAPCOREHEADER, 24-bit")

    pal = im.quantize(16)
    palette = pal.getpalette()[: 16 * 3]
    palette += [0] * (256 * 3 - len(palette))
    triples = b"".join(bytes([palette[i + 2], palette[i + 1], palette[i]]) for i in range(0, 768, 3))
    stride8 = (121 + 3) & ~3
    raw = pal.tobytes()
    data8 = b"".join(raw[y * 121 : (y + 1) * 121].ljust(stride8, b"\0") for y in reversed(range(83)))
    core = struct.pack("<IHHHH", 12, 121, 83, 1, 8)
    off = 14 + 12 + len(triples)
    head = b"BM" + struct.pack("<IHHI", off + len(data8), 0, 0, off)
    valid(
        "bmp-os2v1-palette.bmp",
        m,
        head + core + triples + data8,
        "OS/2 v1, 8-bit with 256 three-byte palette entries",
    )

    # A palette shorter than the bit depth implies (biClrUsed 0 means 256): the pixel data
    # offset ends it, as Chromium's reader truncates it and Pillow reads it.
    quads = b"".join(bytes([palette[i + 2], palette[i + 1], palette[i], 0]) for i in range(0, 48, 3))
    info = struct.pack("<IiiHHIIiiII", 40, 121, 83, 1, 8, 0, len(data8), 2835, 2835, 0, 0)
    off = 14 + 40 + len(quads)
    head = b"BM" + struct.pack("<IHHI", off + len(data8), 0, 0, off)
    valid(
        "bmp-short-palette.bmp",
        m,
        head + info + quads + data8,
        "8-bit, biClrUsed 0 (256 colours) but only 16 palette entries before the pixel data",
    )

    # RLE8: runs of one index, an end-of-line after each row, an end-of-bitmap.
    rle = bytearray()
    for y in reversed(range(83)):
        row = raw[y * 121 : (y + 1) * 121]
        x = 0
        while x < len(row):
            n = 1
            while x + n < len(row) and n < 255 and row[x + n] == row[x]:
                n += 1
            rle += bytes([n, row[x]])
            x += n
        rle += b"\0\0"
    rle[-2:] = b"\0\1"
    info = struct.pack("<IiiHHIIiiII", 40, 121, 83, 1, 8, 1, len(rle), 2835, 2835, 16, 16)
    off = 14 + 40 + len(quads)
    head = b"BM" + struct.pack("<IHHI", off + len(rle), 0, 0, off)
    valid("bmp-rle8.bmp", m, head + info + quads + bytes(rle), "8-bit RLE8 compressed (hand-written)")

    info = struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    data = b"\x80" * 96
    head = b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
    bomb("bmp-bomb.bmp", m, head + info + data, "BITMAPINFOHEADER 60000x60000, 24-bit")


# -------------------------------------------------------------------------------------------
# TIFF: Pillow and libtiff, and a hand writer for tiles, big-endian order and the bomb.

SHORT, LONG = 3, 4


def tiff(pages, order="<"):
    """A classic TIFF. pages: lists of (tag, type, values) plus "data" blobs: each page is
    (tags, blobs) where tags may hold the string "blob:i" for the offset of blob i."""
    out = bytearray((b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 0))
    first_link = 4
    link = first_link
    for tags, blobs in pages:
        offsets = []
        for blob in blobs:
            if len(out) & 1:
                out += b"\0"
            offsets.append(len(out))
            out += blob
        if len(out) & 1:
            out += b"\0"
        ifd_at = len(out)
        struct.pack_into(order + "I", out, link, ifd_at)
        entries = sorted(tags, key=lambda t: t[0])
        extra_at = ifd_at + 2 + 12 * len(entries) + 4
        ifd = bytearray(struct.pack(order + "H", len(entries)))
        extra = bytearray()
        for tag, typ, values in entries:
            values = [offsets[int(v[5:])] if isinstance(v, str) else v for v in values]
            fmt = {SHORT: "H", LONG: "I"}[typ]
            packed = struct.pack(order + fmt * len(values), *values)
            if len(packed) <= 4:
                field = packed.ljust(4, b"\0")
            else:
                field = struct.pack(order + "I", extra_at + len(extra))
                extra += packed
            ifd += struct.pack(order + "HHI", tag, typ, len(values)) + field
        link = ifd_at + len(ifd)
        ifd += b"\0\0\0\0"
        out += ifd + extra
    return bytes(out)


def tiled_page(im, tw, th):
    w, h = im.size
    blobs, refs = [], []
    for ty in range(0, h, th):
        for tx in range(0, w, tw):
            tile = im.crop((tx, ty, tx + tw, ty + th))  # past the edge: padded, as TIFF wants
            blobs.append(zlib.compress(tile.tobytes(), 9))
            refs.append(f"blob:{len(refs)}")
    tags = [
        (256, LONG, [w]),
        (257, LONG, [h]),
        (258, SHORT, [8, 8, 8]),
        (259, SHORT, [8]),
        (262, SHORT, [2]),
        (277, SHORT, [3]),
        (284, SHORT, [1]),
        (322, LONG, [tw]),
        (323, LONG, [th]),
        (324, LONG, refs),
        (325, LONG, [len(b) for b in blobs]),
    ]
    return tags, blobs


def strip_page(w, h, blob, compression):
    tags = [
        (256, LONG, [w]),
        (257, LONG, [h]),
        (258, SHORT, [8]),
        (259, SHORT, [compression]),
        (262, SHORT, [1]),
        (273, LONG, ["blob:0"]),
        (277, SHORT, [1]),
        (278, LONG, [h]),
        (279, LONG, [len(blob)]),
    ]
    return tags, [blob]


def make_tiff():
    m = "image/tiff"
    im = photo(150, 100, 60)
    valid("tiff-raw.tif", m, encode(im, "TIFF"), "uncompressed RGB strips, Pillow's own writer")
    valid("tiff-lzw.tif", m, encode(photo(200, 150, 61), "TIFF", compression="tiff_lzw"), "LZW, libtiff")
    valid("tiff-jpeg.tif", m, encode(photo(200, 150, 62), "TIFF", compression="jpeg"), "JPEG-compressed, libtiff")
    gray16 = photo(100, 80, 63, "L").convert("I").point(lambda v: v * 257).convert("I;16")
    valid("tiff-gray16-deflate.tif", m, encode(gray16, "TIFF", compression="tiff_adobe_deflate"), "16-bit gray, deflate")
    pages = [photo(120, 90, 64), photo(80, 60, 65), photo(64, 100, 66).convert("L")]
    multi = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    valid("tiff-multipage.tif", m, multi, "3 pages of different sizes and modes, LZW")
    valid(
        "tiff-oriented.tif",
        m,
        encode(photo(160, 90, 67), "TIFF", tiffinfo={274: 6}, compression="tiff_adobe_deflate"),
        "Orientation tag 6 (shown rotated)",
    )
    valid("tiff-bigtiff.tif", m, encode(photo(130, 70, 68), "TIFF", big_tiff=True), "BigTIFF, Pillow")
    valid(
        "tiff-bigtiff-multipage.tif",
        m,
        encode(pages[0], "TIFF", big_tiff=True, save_all=True, append_images=pages[1:2]),
        "BigTIFF with 2 pages",
    )
    valid("tiff-tiled.tif", m, tiff([tiled_page(photo(150, 100, 69), 64, 64)]), "tiled 64x64, deflate, edge tiles padded")
    valid(
        "tiff-tiled-be.tif",
        m,
        tiff([tiled_page(photo(100, 70, 70), 32, 48)], ">"),
        "big-endian (MM), tiled 32x48, deflate",
    )
    small = zlib.compress(photo(32, 32, 71, "L").tobytes())
    bomb(
        "tiff-bomb.tif",
        m,
        tiff([strip_page(32, 32, small, 8), strip_page(60000, 60000, zlib.compress(b"\0" * 4096), 8)]),
        "page 1 is 32x32, page 2 claims 60000x60000 (deflate, so its strips say nothing of its size)",
    )


# -------------------------------------------------------------------------------------------
# ICO.


def make_ico():
    m = "image/vnd.microsoft.icon"
    src = photo(256, 256, 80, "RGBA")
    png_ico = encode(src, "ICO", sizes=[(16, 16), (32, 32), (48, 48), (256, 256)])
    valid("ico-png.ico", m, png_ico, "4 PNG entries, 256x256 written as 0", frames_via="ico")
    bmp_ico = encode(src, "ICO", sizes=[(16, 16), (32, 32), (64, 64)], bitmap_format="bmp")
    valid("ico-bmp.ico", m, bmp_ico, "3 BMP (DIB with AND mask) entries", frames_via="ico")

    def entries(data):
        (n,) = struct.unpack("<H", data[4:6])
        out = []
        for i in range(n):
            e = data[6 + 16 * i : 22 + 16 * i]
            size, at = struct.unpack("<II", e[8:16])
            out.append((e[:8], data[at : at + size]))
        return out

    chosen = entries(bmp_ico)[:2] + [e for e in entries(png_ico) if e[0][0] == 0]
    head = struct.pack("<HHH", 0, 1, len(chosen))
    at = 6 + 16 * len(chosen)
    directory, body = b"", b""
    for fixed, blob in chosen:
        directory += fixed + struct.pack("<II", len(blob), at + len(body))
        body += blob
    valid("ico-mixed.ico", m, head + directory + body, "BMP 16x16 and 32x32 with a PNG 256x256", frames_via="ico")

    inner = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 6, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(inner), 22)
    bomb("ico-bomb.ico", m, struct.pack("<HHH", 0, 1, 1) + entry + inner, "directory says 16x16, its PNG is 100000x100000")


# -------------------------------------------------------------------------------------------
# AVIF and HEIF (ISOBMFF): Pillow/libavif and pillow-heif/libheif, plus hand-assembled grids.


def boxes(data, start=0, end=None):
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    at, out = start, []
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        head = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
            head = 16
        elif size == 0:
            size = end - at
        out.append((kind, at + head, at + size))
        at += size
    return out


def child(data, parent, kind):
    """The payload (start, end) of the first box of that kind in the parent's payload."""
    s, e = parent
    for k, ps, pe in boxes(data, s, e):
        if k == kind:
            return ps, pe
    raise KeyError(kind)


def heif_items(data):
    """The single coded image of a still AVIF/HEIF: (codec config box, coded payload, colour
    properties). Assumes what these encoders write: one primary item, construction method 0."""
    meta = next((ps + 4, pe) for k, ps, pe in boxes(data) if k == b"meta")  # a full box
    (pitm_s, _) = child(data, meta, b"pitm")
    v = data[pitm_s]
    primary = struct.unpack(">H" if v == 0 else ">I", data[pitm_s + 4 : pitm_s + (6 if v == 0 else 8)])[0]
    iloc_s, _ = child(data, meta, b"iloc")
    version = data[iloc_s]
    p = iloc_s + 4
    off_size, len_size = data[p] >> 4, data[p] & 15
    base_size, index_size = data[p + 1] >> 4, (data[p + 1] & 15 if version in (1, 2) else 0)
    p += 2
    count_fmt = ">H" if version < 2 else ">I"
    (count,) = struct.unpack(count_fmt, data[p : p + struct.calcsize(count_fmt)])
    p += struct.calcsize(count_fmt)

    def num(size):
        nonlocal p
        value = int.from_bytes(data[p : p + size], "big")
        p += size
        return value

    payload = None
    for _ in range(count):
        item = num(2 if version < 2 else 4)
        method = num(2) & 15 if version in (1, 2) else 0
        num(2)  # data reference index
        base = num(base_size)
        extents = []
        for _ in range(num(2)):
            num(index_size)
            extents.append((base + num(off_size), num(len_size)))
        if item == primary:
            assert method == 0, "construction method 0 expected"
            payload = b"".join(data[o : o + n] for o, n in extents)
    iprp = child(data, meta, b"iprp")
    ipco = child(data, iprp, b"ipco")
    props = [data[ps - 8 : pe] for k, ps, pe in boxes(data, *ipco)]
    ipma_s, _ = child(data, iprp, b"ipma")
    ver, flags = data[ipma_s], data[ipma_s + 3]
    p = ipma_s + 4
    (n,) = struct.unpack(">I", data[p : p + 4])
    p += 4
    mine = []
    for _ in range(n):
        item = num(2 if ver < 1 else 4)
        for _ in range(num(1)):
            a = num(2 if flags & 1 else 1)
            index = a & (0x7FFF if flags & 1 else 0x7F)
            if item == primary:
                mine.append(props[index - 1])
    config = next(b for b in mine if b[4:8] in (b"av1C", b"hvcC"))
    colour = [b for b in mine if b[4:8] in (b"colr", b"pixi")]
    return config, payload, colour


def box(kind, payload):
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def fullbox(kind, version, flags, payload):
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def ispe(w, h):
    return fullbox(b"ispe", 0, 0, struct.pack(">II", w, h))


def grid_file(brands, item_type, tiles, tile_w, tile_h, rows, cols, out_w, out_h):
    """A HEIF whose primary item is a grid of rows x cols coded tiles (all with the first
    tile's codec configuration, which must be the same for all)."""
    configs = {t[0] for t in tiles}
    if len(configs) != 1:
        raise Refused("the tiles' codec configurations differ: the grid would be wrong")
    config, _, colour = tiles[0]
    n = len(tiles)
    grid = struct.pack(">BBBBHH", 0, 0, rows - 1, cols - 1, out_w, out_h)
    payloads = [grid] + [t[1] for t in tiles]
    ids = list(range(1, n + 2))

    def meta(offsets):
        hdlr = fullbox(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"pict") + b"\0")
        pitm = fullbox(b"pitm", 0, 0, struct.pack(">H", 1))
        infes = [fullbox(b"infe", 2, 0, struct.pack(">HH4s", 1, 0, b"grid") + b"\0")]
        infes += [fullbox(b"infe", 2, 1, struct.pack(">HH4s", i, 0, item_type) + b"\0") for i in ids[1:]]
        iinf = fullbox(b"iinf", 0, 0, struct.pack(">H", len(infes)) + b"".join(infes))
        dimg = box(b"dimg", struct.pack(">HH", 1, n) + b"".join(struct.pack(">H", i) for i in ids[1:]))
        iref = fullbox(b"iref", 0, 0, dimg)
        iloc = fullbox(
            b"iloc",
            0,
            0,
            struct.pack(">BBH", 0x44, 0x00, len(ids))
            + b"".join(struct.pack(">HHHII", i, 0, 1, o, len(p)) for i, o, p in zip(ids, offsets, payloads)),
        )
        # Properties: 1 the grid's ispe, 2 the tiles' ispe, 3 the codec configuration, 4.. colour.
        ipco = box(b"ipco", ispe(out_w, out_h) + ispe(tile_w, tile_h) + config + b"".join(colour))
        extra = [4 + i for i in range(len(colour))]
        assoc = [struct.pack(">HB", 1, 1 + len(extra)) + bytes([1] + extra)]
        for i in ids[1:]:
            assoc.append(struct.pack(">HB", i, 2 + len(extra)) + bytes([2, 0x80 | 3] + extra))
        ipma = fullbox(b"ipma", 0, 0, struct.pack(">I", len(assoc)) + b"".join(assoc))
        iprp = box(b"iprp", ipco + ipma)
        return fullbox(b"meta", 0, 0, hdlr + pitm + iloc + iinf + iref + iprp)

    ftyp = box(b"ftyp", brands[0] + b"\0\0\0\0" + b"".join(brands))
    head = len(ftyp) + len(meta([0] * len(ids))) + 8
    offsets, at = [], head
    for p in payloads:
        offsets.append(at)
        at += len(p)
    return ftyp + meta(offsets) + box(b"mdat", b"".join(payloads))


def cut(im, rows, cols):
    w, h = im.size[0] // cols, im.size[1] // rows
    return [im.crop((c * w, r * h, (c + 1) * w, (r + 1) * h)) for r in range(rows) for c in range(cols)]


def patch_ispe(data, w, h):
    out = bytearray(data)
    at = out.find(b"ispe")
    found = False
    while at >= 0:
        struct.pack_into(">II", out, at + 8, w, h)
        found = True
        at = out.find(b"ispe", at + 4)
    assert found
    return bytes(out)


def zero_times(data):
    """The creation and modification times of mvhd, tkhd and mdhd set to 0, so runs are alike."""
    out = bytearray(data)

    def walk(start, end):
        for kind, ps, pe in boxes(data, start, end):
            if kind in (b"moov", b"trak", b"mdia"):
                walk(ps, pe)
            elif kind in (b"mvhd", b"tkhd", b"mdhd"):
                n = 8 if data[ps] == 1 else 4
                out[ps + 4 : ps + 4 + 2 * n] = bytes(2 * n)

    walk(0, len(data))
    return bytes(out)


def has_box(data, kind):
    return kind in data  # good enough for these small, known files; checked by the reference


def make_avif():
    m = "image/avif"
    im = photo(301, 201, 90)
    valid("avif-still.avif", m, encode(im, "AVIF", quality=60), "4:2:0, odd size, Pillow/libavif")
    valid("avif-444.avif", m, encode(photo(128, 96, 91), "AVIF", subsampling="4:4:4"), "4:4:4")
    valid("avif-alpha.avif", m, encode(photo(160, 120, 92, "RGBA"), "AVIF", quality=60), "with an alpha auxiliary item")
    oriented = encode(photo(200, 120, 93), "AVIF", quality=60, exif=exif_orientation(6))
    if not has_box(oriented, b"irot"):
        raise Refused("Pillow wrote no irot for EXIF orientation 6")
    valid("avif-irot.avif", m, oriented, "irot (from EXIF orientation 6): shown rotated")
    oriented = encode(photo(200, 120, 94), "AVIF", quality=60, exif=exif_orientation(5))
    valid("avif-irot-imir.avif", m, oriented, "irot and imir (EXIF orientation 5)")
    frames = frames_of(128, 96, 95, 3)
    anim = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=100, quality=50)
    anim = zero_times(anim)
    valid("avif-animated.avif", m, anim, "animated (avis: a moov with 3 samples), Pillow/libavif")

    whole = photo(256, 192, 96)
    tiles = [heif_items(encode(t, "AVIF", quality=60, speed=8)) for t in cut(whole, 2, 2)]
    grid = grid_file([b"avif", b"mif1", b"miaf"], b"av01", tiles, 128, 96, 2, 2, 250, 190)
    valid(
        "avif-grid.avif",
        m,
        grid,
        "a 2x2 grid of 128x96 AV1 tiles cropped to 250x190 (assembled from Pillow/libavif tiles)",
    )
    small = encode(photo(64, 48, 97), "AVIF", quality=40)
    bomb("avif-bomb.avif", m, patch_ispe(small, 100000, 100000), "ispe 100000x100000 around a 64x48 image")


def make_heif():
    m = "image/heif"
    valid("heif-still.heic", m, encode(photo(300, 200, 100), "HEIF", quality=60), "HEVC, pillow-heif/libheif/x265")
    odd = encode(photo(301, 201, 105), "HEIF", quality=60)
    if not has_box(odd, b"clap"):
        raise Refused("libheif wrote no clap for an odd size")
    valid("heif-clap.heic", m, odd, "odd size: HEVC codes 302x202 (ispe), clap crops it to 301x201")
    valid("heif-alpha.heic", m, encode(photo(160, 120, 101, "RGBA"), "HEIF", quality=60), "with an alpha auxiliary item")
    oriented = encode(photo(200, 120, 102), "HEIF", quality=60, exif=exif_orientation(6))
    if not has_box(oriented, b"irot"):
        raise Refused("pillow-heif wrote no irot for EXIF orientation 6")
    valid("heif-irot.heic", m, oriented, "irot (from EXIF orientation 6): libheif shows it rotated")
    whole = photo(256, 192, 103)
    tiles = [heif_items(encode(t, "HEIF", quality=60)) for t in cut(whole, 2, 2)]
    grid = grid_file([b"heic", b"mif1"], b"hvc1", tiles, 128, 96, 2, 2, 256, 192)
    valid("heif-grid.heic", m, grid, "a 2x2 grid of 128x96 HEVC tiles (assembled from pillow-heif tiles)")
    small = encode(photo(64, 48, 104), "HEIF", quality=40)
    bomb("heif-bomb.heic", m, patch_ispe(small, 100000, 100000), "ispe 100000x100000 around a 64x48 image")


# -------------------------------------------------------------------------------------------
# JPEG XL.


class Bits:
    """JPEG XL's bit order: least significant bit first."""

    def __init__(self, data=b""):
        self.value = int.from_bytes(data, "little")
        self.pos = 0
        self.out = 0
        self.n = 0

    def read(self, n):
        v = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return v

    def write(self, v, n):
        self.out |= v << self.n
        self.n += n


U32_SIZE = [9, 13, 18, 30]


def read_size_header(bits):
    if bits.read(1):  # small
        bits.read(5)
        if bits.read(3) == 0:
            bits.read(5)
    else:
        bits.read(U32_SIZE[bits.read(2)])
        if bits.read(3) == 0:
            bits.read(U32_SIZE[bits.read(2)])


def make_jxl(jpeg_bytes):
    m = "image/jxl"
    im = photo(301, 201, 110)
    naked = encode(im, "JXL", quality=80, effort=3)
    valid("jxl-lossy.jxl", m, naked, "lossy, a bare codestream, pillow-jxl/libjxl")
    valid("jxl-lossless.jxl", m, encode(photo(120, 90, 111), "JXL", lossless=True, effort=3), "lossless modular")
    valid(
        "jxl-container.jxl",
        m,
        encode(photo(160, 120, 112, "RGBA"), "JXL", quality=80, effort=3, use_container=True),
        "RGBA in the ISOBMFF container (JXL , ftyp, jxlc)",
    )
    src = OUT / "jxl-source.tmp.jpg"
    src.write_bytes(jpeg_bytes)
    with Image.open(src) as j:
        b = io.BytesIO()
        j.save(b, "JXL", lossless_jpeg=True)
    src.unlink()
    valid("jxl-from-jpeg.jxl", m, b.getvalue(), "a recompressed JPEG (jbrd box), container")

    # The bomb: the lossy codestream with its SizeHeader replaced by 100000x100000, the rest of
    # its bits following unchanged.
    old = Bits(naked[2:])
    read_size_header(old)
    new = Bits()
    for v, n in [(0, 1), (2, 2), (99999, 18), (0, 3), (2, 2), (99999, 18)]:
        new.write(v, n)
    rest_bits = len(naked[2:]) * 8 - old.pos
    new.write(old.value >> old.pos, rest_bits)
    body = new.out.to_bytes((new.n + 7) // 8, "little")
    bomb("jxl-bomb.jxl", m, b"\xff\x0a" + body, "SizeHeader 100000x100000")


# -------------------------------------------------------------------------------------------

try:
    make_png()
    base_jpeg = make_jpeg()
    make_gif()
    make_webp()
    make_bmp()
    make_tiff()
    make_ico()
    make_avif()
    make_heif()
    make_jxl(base_jpeg)
except Refused as e:
    sys.exit(f"make.py: {e}")

versions = {"python": sys.version.split()[0]}
for name in requirements():
    from importlib import metadata

    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
for lib in ("webp", "avif", "jpg", "libtiff", "zlib"):
    versions[lib] = features.version(lib)
versions["libheif"] = pillow_heif.libheif_version()

manifest = {"generator": "tests/corpus/make.py", "versions": versions, "files": ENTRIES}
(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
total = sum((OUT / e["name"]).stat().st_size for e in ENTRIES)
print(f"make.py: {len(ENTRIES)} files, {total:,} bytes in {OUT}", file=sys.stderr)
