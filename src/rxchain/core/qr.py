"""The patient's QR code as a picture: drawn as PNG or in a terminal, and read back from a photo.

The payload's text format lives in :mod:`rxchain.core.payload`; this module only turns that text into
a QR code (qrcode: error correction M, or L when the text does not fit) and reads a QR code out of a
photo or screenshot (zxing-cpp through Pillow), as a pharmacy's scanner does.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import qrcode
from qrcode.constants import ERROR_CORRECT_L, ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError

from rxchain.core.payload import PayloadError, PayloadTooLarge
from rxchain.errors import InvalidValue

__all__ = ["NoQrCodeFound", "UnreadableImage", "payload_matrix", "payload_png", "payload_terminal", "read_qr_image"]


class UnreadableImage(PayloadError):
    """The file given as a QR photo is not a picture that can be opened."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path} is not a picture that can be opened ({reason}): give a PNG or JPEG photo or screenshot"
        )
        self.path = path


class NoQrCodeFound(PayloadError):
    """No QR code could be read in the picture."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no QR code could be read in {path}: take the photo again, straight on and in focus")
        self.path = path


def payload_matrix(text: str, *, border: int = 4) -> list[list[bool]]:
    """Return the QR code of ``text`` as rows of modules (``True`` = dark), quiet zone included.

    Uses error correction M, or L when the text does not fit at M.
    Raises :class:`PayloadTooLarge` when it does not fit in any QR code.
    """
    return [list(row) for row in _qr_code(text, border).get_matrix()]


def payload_png(text: str, path: str | Path, *, box_size: int = 8, border: int = 4) -> Path:
    """Write the QR code of ``text`` as a black-and-white PNG; return the path.

    Each module is ``box_size`` pixels square; ``border`` modules of quiet zone
    surround the code (the QR standard asks for 4).
    """
    if box_size < 1:
        raise InvalidValue("box_size must be at least 1")
    path = Path(path)
    path.write_bytes(_png_bytes(payload_matrix(text, border=border), box_size))
    return path


def payload_terminal(text: str, *, dark_terminal: bool = True, border: int = 2) -> str:
    """Return the QR code of ``text`` drawn with half-block characters, two module rows per line.

    With ``dark_terminal`` (light text on a dark background) the blocks draw
    the light modules so that the code reads dark-on-light as scanners expect.
    """
    buffer = io.StringIO()
    _qr_code(text, border).print_ascii(out=buffer, tty=False, invert=dark_terminal)
    return buffer.getvalue()


def read_qr_image(path: str | Path) -> str:
    """The text of the QR code in a photo or screenshot (PNG, JPEG ...), as a scanner reads it.

    Raises :class:`UnreadableImage` for a file that is not a picture and :class:`NoQrCodeFound` when
    no QR code can be read in it; the text is then decoded with :func:`decode_payload` as usual.
    """
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    except (OSError, UnidentifiedImageError) as exc:
        raise UnreadableImage(str(path), str(exc)) from None
    texts = [code.text for code in found if code.valid and code.text]
    if not texts:
        raise NoQrCodeFound(str(path))
    return texts[0]


def _qr_code(text: str, border: int) -> qrcode.QRCode:
    """Return the smallest QR code holding ``text``: error correction M if it fits, else L."""
    if not isinstance(text, str) or not text:
        raise InvalidValue("nothing to encode")
    for level in (ERROR_CORRECT_M, ERROR_CORRECT_L):
        code = qrcode.QRCode(error_correction=level, border=border)
        code.add_data(text)
        try:
            code.make(fit=True)
        except (DataOverflowError, ValueError):  # qrcode reports "version 41" as a ValueError
            continue
        return code
    raise PayloadTooLarge(len(text), 2953, "text for one QR code")


def _png_bytes(matrix: list[list[bool]], scale: int) -> bytes:
    """Encode a module matrix as a 1-bit greyscale PNG, ``scale`` pixels per module."""
    size = len(matrix) * scale
    rows = []
    for row in matrix:
        bits = "".join(("0" if dark else "1") * scale for dark in row)
        bits += "1" * (-len(bits) % 8)
        line = b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")  # filter type 0, then pixels
        rows.extend([line] * scale)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1 bit, greyscale, deflate, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
