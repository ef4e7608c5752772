// rxchain: QR codes on a page. Drawing one (qrcode-generator, from /vendor through the page's import
// map) on a canvas, and finding one in a photo or screenshot (jsQR, loaded by the page as a classic
// script). Shared by the pharmacy dApp and the patient's app.

import qrcode from "qrcode-generator";

/**
 * Draws `text` as a QR code on `canvas` (byte mode; error correction M, or L for a long code so it
 * stays scannable from a phone screen), with the 4-module quiet zone, `scale` pixels per module.
 */
export function drawQr(canvas, text, scale = 4) {
  const qr = qrcode(0, text.length > 600 ? "L" : "M");
  qr.addData(text, "Byte");
  qr.make();
  const modules = qr.getModuleCount();
  const size = (modules + 8) * scale;
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, size, size);
  context.fillStyle = "#000";
  for (let row = 0; row < modules; row++) {
    for (let col = 0; col < modules; col++) {
      if (qr.isDark(row, col)) context.fillRect((col + 4) * scale, (row + 4) * scale, scale, scale);
    }
  }
  canvas.dataset.modules = String(modules);
  return modules;
}

/** The text of the first QR code jsQR finds in an image file, trying it at a few sizes; null if none. Throws for a file that is no picture. */
export async function readQrFile(file) {
  if (typeof window.jsQR !== "function") throw new Error("The QR reader did not load; paste the code instead.");
  const bitmap = await createImageBitmap(file);
  try {
    return findQr(bitmap);
  } finally {
    bitmap.close();
  }
}

/** The text of the first QR code jsQR finds in a bitmap, trying it at a few sizes (large photos scale down); null if none. */
export function findQr(bitmap) {
  const largest = Math.max(bitmap.width, bitmap.height);
  const scales = [Math.min(1, 1600 / largest), Math.min(1, 800 / largest), Math.min(1, 400 / largest)];
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  for (const scale of [...new Set(scales)]) {
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const result = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
    if (result && result.data) return result.data;
  }
  return null;
}
