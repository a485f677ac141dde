// The dashboard's Web Worker (a module worker). It loads its own small WASM bundle (the
// `flowtrail-browser-worker` crate) and runs `worker_main`, which keeps observations in IndexedDB and
// filters and sorts them off the page's thread.
import init, { worker_main } from '/pkg/flowtrail_browser_worker.js';

await init({ module_or_path: '/pkg/flowtrail_browser_worker_bg.wasm' });
worker_main();
