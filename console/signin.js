// rxchain sign-in (EIP-4361, Sign-In with Ethereum): the server writes the message with a fresh nonce,
// the member's wallet signs it (personal_sign), the server checks it and sets an HttpOnly session cookie.
// On the devnet the public development identities can sign in from the page itself.
import { ethers } from "./vendor/ethers.min.js";

const $ = (selector) => document.querySelector(selector);

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function showError(text) {
  const box = $("#signin-error");
  box.textContent = text || "";
  box.hidden = !text;
}

// sign(address, message) -> signature
async function signIn(address, sign) {
  showError("");
  try {
    const { message } = await post("/auth/message", { address });
    const signature = await sign(message);
    await post("/auth/sign-in", { message, signature });
    location.reload();
  } catch (error) {
    showError(`Not signed in: ${error.message || error}`);
  }
}

async function setUp() {
  const signOut = $("#sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      await post("/auth/sign-out").catch(() => null);
      location.reload();
    });
  }
  const me = await fetch("api/whoami", { headers: { Accept: "application/json" } }).then((r) => r.json(), () => null);
  if (!me || !me.signIn) return; // a console without sign-in (a trusted machine)
  const config = await fetch("/auth/config", { headers: { Accept: "application/json" } }).then((r) => r.json());

  if (window.ethereum) {
    const button = $("#signin-wallet");
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
        await signIn(ethers.getAddress(address), (message) =>
          window.ethereum.request({ method: "personal_sign", params: [ethers.hexlify(ethers.toUtf8Bytes(message)), address] }));
      } catch (error) {
        showError(`The wallet did not connect: ${error.message || error}`);
      }
    });
  }
  if (config.devKeys) {
    const select = $("#signin-dev-account");
    select.replaceChildren(...Object.entries(config.devKeys).map(([name, key]) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = `${name} (${new ethers.Wallet(key).address.slice(0, 10)}…)`;
      return option;
    }));
    $("#signin-dev").hidden = false;
    $("#signin-dev-button").addEventListener("click", () => {
      const wallet = new ethers.Wallet(config.devKeys[select.value]);
      signIn(wallet.address, (message) => wallet.signMessage(message));
    });
  }
  document.body.dataset.signinReady = "1";
}

setUp();
