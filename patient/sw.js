// rxchain patient's app: the service worker that keeps the page usable offline once it has loaded.
// The page's files are fetched from the network when it answers (so an update shows at once) and
// kept; without a network the kept copy answers. The chain's relay (rpc) and the lot index (api/) are
// never kept: a read that needs them says it is offline instead.

const CACHE = "rxchain-patient-v2";
const FILES = [
  "./", "app.js", "style.css", "dapp.css", "rxcore.js", "handover.js", "qrcodes.js", "boxes.js", "boxcheck.js", "favicon.svg", "config.json",
  "vendor/ethers.min.js", "vendor/pako.esm.mjs", "vendor/qrcode.mjs", "vendor/jsQR.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || url.pathname.endsWith("/rpc") || url.pathname.includes("/api/")) {
    return;
  }
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() => caches.match(request, { ignoreSearch: true }).then((kept) => kept || Response.error())),
  );
});
