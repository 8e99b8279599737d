// The inference Web Worker: the same wasm as the page, without the app. It
// runs the model and posts each frame back, so the page keeps drawing while a
// prompt runs (src/web/worker.rs). The page's first message hands over the
// wasm module it already compiled (or nothing: then it is fetched); messages
// that arrive while the wasm starts are kept and handed over.
const early = [];
let gotModule;
const module = new Promise((resolve) => { gotModule = resolve; });
self.onmessage = (event) => {
  if (event.data && "wasmModule" in event.data) gotModule(event.data.wasmModule);
  else early.push(event.data);
};
const glue = await import("./tensorcity.js");
const compiled = await module;
await glue.default(compiled ? { module_or_path: compiled } : undefined);
glue.tensorcity_worker(early);
