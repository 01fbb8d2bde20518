#!/usr/bin/env python3
"""Generate the G.711 reference vectors that dataplane/tests/media_g711_vectors.rs compares
against. The reference is CPython's `audioop` module (Python <= 3.12), whose lin2ulaw /
lin2alaw / ulaw2lin / alaw2lin implement ITU-T G.711.

Files written to dataplane/tests/vectors/ (all little-endian):
  ulaw_decode.bin  256 x i16: decode of code 0..=255
  alaw_decode.bin  256 x i16: decode of code 0..=255
  ulaw_encode.bin  65536 x u8: encode of the i16 sample whose bit pattern is 0..=65535
  alaw_encode.bin  65536 x u8: same for A-law

Usage: python3 scripts/gen-g711-vectors.py [OUTPUT_DIR]
"""
import os
import struct
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "dataplane", "tests", "vectors")
    os.makedirs(out, exist_ok=True)

    codes = bytes(range(256))
    # Every i16 bit pattern 0x0000..=0xFFFF, as little-endian 16-bit samples.
    samples = b"".join(struct.pack("<H", u) for u in range(65536))

    files = {
        "ulaw_decode.bin": audioop.ulaw2lin(codes, 2),
        "alaw_decode.bin": audioop.alaw2lin(codes, 2),
        "ulaw_encode.bin": audioop.lin2ulaw(samples, 2),
        "alaw_encode.bin": audioop.lin2alaw(samples, 2),
    }
    if sys.byteorder != "little":
        # audioop works in native byte order; the vector files are little-endian.
        files["ulaw_decode.bin"] = audioop.byteswap(files["ulaw_decode.bin"], 2)
        files["alaw_decode.bin"] = audioop.byteswap(files["alaw_decode.bin"], 2)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
