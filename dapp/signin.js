// rxchain sign-in for the pharmacy dApp (EIP-4361, Sign-In with Ethereum): the server writes the message
// with a fresh nonce, the pharmacy's signer (its wallet, or a development key on the devnet) signs it
// with personal_sign, and the server sets an HttpOnly session cookie. The server relays transactions
// only for a signed-in pharmacy; reading the chain needs no sign-in.

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

// Signs in as the signer's account (unless already signed in as it); returns the session.
export async function signIn(signer) {
  const address = await signer.getAddress();
  const session = await fetch("/auth/session", { headers: { Accept: "application/json" } }).then((r) => r.json());
  if (session.signedIn && session.address.toLowerCase() === address.toLowerCase()) return session;
  const { message } = await post("/auth/message", { address });
  const signature = await signer.signMessage(message);
  return post("/auth/sign-in", { message, signature });
}

export async function signOut() {
  return post("/auth/sign-out");
}
