// Flow Trail's service worker: keeps the dashboard usable offline.
//
// - The app shell (bundle, stylesheet, worker script, icon) is cached at install and refreshed
//   whenever the network answers.
// - Pages are network-first: every page answered by the server is kept, and served from the
//   cache when the network is gone (the page itself also stores pages reached by client-side
//   navigation, in the same cache). Server-rendered pages carry their data, so a cached flow
//   page hydrates without the server; its observations come from IndexedDB via the worker.
// - API calls and server functions are never cached here: the worker owns observations, and
//   anything else must be fresh or fail visibly.
const SHELL = 'flowtrail-shell-v1';
const PAGES = 'flowtrail-pages-v1';
const SHELL_FILES = [
  '/pkg/flowtrail.js',
  '/pkg/flowtrail_bg.wasm',
  '/pkg/flowtrail.css',
  '/pkg/flowtrail_browser_worker.js',
  '/pkg/flowtrail_browser_worker_bg.wasm',
  '/browser-worker.js',
  '/favicon.svg',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(SHELL_FILES)).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(
        names.filter((n) => n !== SHELL && n !== PAGES).map((n) => caches.delete(n)),
      ))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.pathname.startsWith('/pkg/') || SHELL_FILES.includes(url.pathname);
}

function isPage(request, url) {
  return request.mode === 'navigate'
    || (request.headers.get('accept') || '').includes('text/html')
      && !url.pathname.startsWith('/api/') && !url.pathname.startsWith('/fn/');
}

// Network first; a good answer refreshes the cache; no network → the cached copy.
async function networkFirst(request, cacheName, fallback) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    // Never keep the sign-in page in place of the page asked for.
    if (response.ok && !response.redirected) {
      await cache.put(request, response.clone());
    }
    return response;
  } catch (error) {
    const cached = (await cache.match(request)) || (await cache.match(request, { ignoreSearch: true }));
    if (cached) return cached;
    if (fallback) return fallback();
    throw error;
  }
}

function offlinePage() {
  const body = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/pkg/flowtrail.css"><title>Offline · Flow Trail</title></head>
<body><main id="main"><section class="empty"><h1>You are offline</h1>
<p role="alert">This page was not opened before, so there is no copy of it here. Flows you
have opened stay available offline.</p><p><a href="/">Back to the flows</a></p></section></main></body></html>`;
  return new Response(body, { status: 503, headers: { 'content-type': 'text/html; charset=utf-8' } });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (isShell(url)) {
    event.respondWith(networkFirst(request, SHELL));
  } else if (isPage(request, url)) {
    event.respondWith(networkFirst(request, PAGES, offlinePage));
  }
});
