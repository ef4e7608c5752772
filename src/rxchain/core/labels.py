"""Box labels as a PNG sheet: each box's printed DataMatrix (its traceability code, as a scanner reads
it) and, in the area the scratch panel covers, a second DataMatrix holding the code and the secret
together (one scan at the counter gives the pharmacy both), with both in digits beneath.

Barcodes are made by zxing-cpp (the library that also reads the patient's QR photos,
:mod:`rxchain.core.qr`), drawn with Pillow; :func:`read_scratch_code` reads a scanned scratch-panel
code back.
"""

from __future__ import annotations

from pathlib import Path

from rxchain.core.boxes import Box, check_code, check_secret
from rxchain.errors import InvalidValue

__all__ = ["SCRATCH_PREFIX", "label_sheet_png", "read_scratch_code", "scratch_text"]

#: What the scratch-panel DataMatrix holds: ``RXS1:<code>:<secret>``.
SCRATCH_PREFIX = "RXS1:"


def scratch_text(box: Box) -> str:
    return f"{SCRATCH_PREFIX}{box.code}:{box.secret}"


def read_scratch_code(text: str) -> tuple[str, str]:
    """(code, secret) from a scanned scratch-panel code."""
    text = text.strip()
    if not text.startswith(SCRATCH_PREFIX) or text.count(":") != 2:
        raise InvalidValue(
            f"not a box's scratch-panel code (it starts {SCRATCH_PREFIX}): scan the code under the panel"
        )
    _, code, secret = text.split(":")
    return check_code(code), check_secret(secret)


def _matrix(text: str, scale: int):
    import zxingcpp
    from PIL import Image

    image = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix).to_image(scale=scale, add_quiet_zones=True)
    view = memoryview(image)
    return Image.frombytes("L", (view.shape[1], view.shape[0]), view.tobytes())


def label_sheet_png(boxes: list[Box], path: str | Path, *, columns: int = 4, scale: int = 4) -> Path:
    """Writes a sheet of labels for ``boxes`` as one PNG; returns its path."""
    from PIL import Image, ImageDraw

    if not boxes:
        raise InvalidValue("no boxes to print")
    cells = [(_matrix(box.code, scale), _matrix(scratch_text(box), scale), box) for box in boxes]
    width = max(a.width + b.width for a, b, _ in cells) + 40
    height = max(max(a.height, b.height) for a, b, _ in cells) + 56
    rows = (len(cells) + columns - 1) // columns
    sheet = Image.new("L", (columns * width, rows * height), 255)
    draw = ImageDraw.Draw(sheet)
    for n, (printed, scratch, box) in enumerate(cells):
        x, y = (n % columns) * width, (n // columns) * height
        draw.rectangle([x + 2, y + 2, x + width - 3, y + height - 3], outline=0)
        sheet.paste(printed, (x + 10, y + 10))
        panel_x = x + 20 + printed.width
        draw.rectangle([panel_x - 4, y + 6, panel_x + scratch.width + 4, y + 14 + scratch.height], outline=128, width=2)
        sheet.paste(scratch, (panel_x, y + 10))
        draw.text((x + 10, y + height - 40), f"#{box.index}  {box.code}", fill=0)
        draw.text((panel_x, y + height - 24), f"scratch: {box.secret}", fill=80)
    path = Path(path)
    sheet.save(path, format="PNG")
    return path
