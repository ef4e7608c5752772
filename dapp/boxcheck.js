// rxchain: the "Check a box" section, on the patient's app and on the pharmacy dApp. Anyone types or
// scans a box's scratch-panel code (RXS1:CODE:SECRET, as a keyboard-style scanner types it) or the
// printed code and the scratched secret, or uploads a photo of a QR code holding the scratch-panel
// code; the page says, in plain words: genuine and not yet sold / sold once (when, at which pharmacy,
// for which prescription: never who) / unknown (counterfeit or mistyped) / recalled / expired.
//
// The web server only says where the box's leaf is among the public lot files; the verdict is the
// chain's (DrugBoxes.boxState), and a sale is found in the FillBoxesRecorded events (dapp/boxes.js).
// The section's elements are the same on both pages (ids box-check-*).

import { ethers } from "ethers";
import * as boxes from "./boxes.js";
import { readQrFile } from "./qrcodes.js";

const $ = (id) => document.getElementById(id);

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
});

function timeNode(seconds) {
  const node = document.createElement("time");
  node.dateTime = new Date(Number(seconds) * 1000).toISOString();
  node.textContent = DATE_FORMAT.format(new Date(Number(seconds) * 1000));
  return node;
}

function row(list, label, ...value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.append(...value);
  list.append(dt, dd);
  return dd;
}

/** What each verdict says to a patient: [headline, advice, class]. */
const VERDICT = {
  unsold: ["Genuine, not yet sold.", "Its manufacturer registered this box and no pharmacy has recorded its sale. If you have just been given it, the pharmacy has not recorded the sale yet.", "ok"],
  dispensed: ["Genuine, sold once.", "A pharmacy recorded its sale (below). If this box was dispensed to you with that prescription, all is well. If not, it was sold before: do not take it and show it to a pharmacist.", "info"],
  unknown: ["Unknown box.", "No registered lot holds this code and secret. Check that both were typed exactly; if they were, the box may be counterfeit: do not take it and show it to a pharmacist.", "bad"],
  recalled: ["Recalled.", "Its lot was recalled by the manufacturer or the regulator. Do not take it; bring it back to a pharmacy.", "bad"],
  expired: ["Expired.", "Its lot is past its expiry date. Do not take it; bring it back to a pharmacy.", "bad"],
};

/**
 * Wires the section. `context`: {config, provider, say} (provider null when offline: the section then
 * says why it cannot check). Returns {check(scanned, code, secret)} for the page's own use.
 */
export function mountBoxCheck({ config, provider, say = () => {} }) {
  const section = $("box-check-section");
  if (!section) return null;
  const available = Boolean(config && config.boxes && config.boxesAbi && provider);
  const contract = available ? new ethers.Contract(config.boxes, config.boxesAbi, provider) : null;
  let busy = false;

  const fail = (text, code = "refused") => {
    const box = $("box-check-error");
    box.textContent = text;
    box.dataset.error = code;
    box.hidden = false;
    $("box-check-result").hidden = true;
    say(`Box not checked: ${text}`);
  };

  async function check(scanned, code, secret) {
    if (busy) return;
    $("box-check-error").hidden = true;
    $("box-check-result").hidden = true;
    if (!available) {
      return fail("Boxes cannot be checked here: this page cannot reach the chain, or no box registry is deployed on it.", "unavailable");
    }
    let box;
    try {
      box = boxes.readBox(scanned, code, secret);
    } catch (error) {
      return fail(error.message, error.code || "bad-input");
    }
    busy = true;
    $("box-check-go").disabled = true;
    say("Checking the box on the chain…");
    try {
      const result = await boxes.checkBox({ provider, boxes: contract, fromBlock: config.deployBlock }, box.code, box.secret);
      render(result);
    } catch (error) {
      fail(`The check could not be completed (${error.shortMessage || error.message || error}). Check the connection and try again.`, "unavailable");
    } finally {
      busy = false;
      $("box-check-go").disabled = false;
    }
  }

  function render(result) {
    const [headline, advice, kind] = VERDICT[result.state];
    const verdict = $("box-check-verdict");
    verdict.textContent = headline;
    verdict.className = `verdict ${kind}`;
    $("box-check-advice").textContent = advice;
    const list = $("box-check-details");
    list.replaceChildren();
    row(list, "Box code", result.code);
    if (result.sold) {
      row(list, "Sold", timeNode(result.sold.time));
      const pharmacy = row(list, "At pharmacy", result.sold.pharmacy);
      pharmacy.className = "mono";
      pharmacy.id = "box-check-pharmacy";
      const rx = row(list, "For prescription", result.sold.rxId);
      rx.className = "mono";
      rx.id = "box-check-rx";
    }
    if (result.lot) {
      const lot = row(list, "Lot", result.lot);
      lot.className = "mono";
      row(list, "Box in the lot", `#${result.index}`);
    }
    if (result.lotInfo) {
      row(list, result.state === "expired" ? "Expired" : "Expires", timeNode(result.lotInfo.expiresAt));
      const maker = row(list, "Registered by", result.lotInfo.manufacturer);
      maker.className = "mono";
    }
    const out = $("box-check-result");
    out.dataset.state = result.state;
    out.hidden = false;
    say(`Box ${result.code}: ${headline}`);
  }

  $("box-check-form").addEventListener("submit", (event) => {
    event.preventDefault();
    check($("box-check-scan").value, $("box-check-code").value, $("box-check-secret").value);
  });
  $("box-check-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const text = await readQrFile(file);
      if (!text) return fail("No QR code was found in this picture. Type the code and the secret, or scan the scratch panel with a scanner.", "no-code");
      $("box-check-scan").value = text;
      await check(text, "", "");
    } catch (error) {
      fail(error.message || "This file is not a picture this browser can open.", "no-code");
    }
  });
  section.hidden = false; // shown once wired (a page that could not start keeps it hidden)
  section.dataset.ready = "true";
  return { check };
}
