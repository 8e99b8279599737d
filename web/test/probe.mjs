// Opens a page of the web bundle in Debian's headless Chromium (SwiftShader
// WebGL2) in real time, waits for the app's first frames (or an error), lets
// it run `SETTLE_MS` more, then prints one JSON line: time to first frame,
// title, error shown, console errors; and saves a screenshot.
// Usage: node web/test/probe.mjs URL SHOT.png   (used by tests/integration/web.rs)
// Options (environment):
//   UPLOAD=FILE    choose FILE in the page's "Open .safetensors…" picker
//   DROP=FILE      drop FILE on the page (a drag-and-drop `drop` event)
//   DROP_PATH=P    drag P (a file or folder) onto the page as the desktop does (CDP)
//   WAIT_RUN=1     wait for the URL's prompt run to finish; report its timing
//                  and the longest gap between the page's frames during it
// Always reported: the median interval between the page's frames while idle.
//   CANCEL_WITH=T  1.5 s into the URL's run, run prompt T (`tensorcityRun`); with
//                  WAIT_RUN, report the tokens the older run still sent after it
//   DOWNLOAD_DIR   press the page's PNG button; the download lands there
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import puppeteer from "puppeteer-core";
const [url, shot] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,720"] });
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 720 });
const errors = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
// Every frame the page draws, on its own clock.
await page.evaluateOnNewDocument(() => {
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
});
const t0 = Date.now();
await page.goto(url);
try {
  await page.waitForFunction(() => document.body.dataset.firstFrameMs || document.body.dataset.error, { timeout: 180000, polling: 500 });
} catch (e) { errors.push("timeout: " + e.message); }
const ms = Date.now() - t0;
const result = {};
// A newer prompt while the URL's run goes on: the worker should drop the older run.
if (process.env.CANCEL_WITH) {
  try {
    await page.waitForFunction(() => document.body.dataset.runStartedMs, { timeout: 180000, polling: 100 });
    await sleep(1500);
    await page.evaluate((text) => window.tensorcityRun(text, 0), process.env.CANCEL_WITH);
  } catch (e) { errors.push("cancel: " + e.message); }
}
if (process.env.WAIT_RUN) {
  try {
    await page.waitForFunction(() => document.body.dataset.lastRun, { timeout: 300000, polling: 250 });
  } catch (e) { errors.push("run timeout: " + e.message); }
  Object.assign(result, await page.evaluate(() => {
    const d = document.body.dataset;
    const [start, end] = [Number(d.runStartedMs), Number(d.runEndedMs)];
    const during = window.__frames.filter((t) => t >= start && t <= end);
    let gap = 0;
    for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i] - during[i - 1]);
    return { lastRun: d.lastRun || null, lastCompute: d.lastCompute || null, runFrames: during.length, runMaxGapMs: Math.round(gap),
             staleTokens: Number(d.staleTokens || 0) };
  }));
}
const settleFrom = await page.evaluate(() => performance.now());
await sleep(Number(process.env.SETTLE_MS || 3000));
// The page's frame interval while idle (to compare with the gaps during a run).
result.idleMedianGapMs = await page.evaluate((from) => {
  const f = window.__frames.filter((t) => t >= from);
  const gaps = f.slice(1).map((t, i) => t - f[i]).sort((a, b) => a - b);
  return gaps.length ? Math.round(gaps[gaps.length >> 1]) : null;
}, settleFrom);
if (process.env.UPLOAD) {
  const input = await page.$("#file");
  await input.uploadFile(process.env.UPLOAD);
  await sleep(3000);
}
if (process.env.DROP) {
  const bytes = readFileSync(process.env.DROP).toString("base64");
  await page.evaluate((b64, name) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([data], name));
    dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, cancelable: true }));
  }, bytes, basename(process.env.DROP));
  await sleep(3000);
}
if (process.env.DROP_PATH) {
  // A real drag from the desktop: Chromium reads the path itself (a folder stays a folder).
  const cdp = await page.createCDPSession();
  const data = { items: [], files: [process.env.DROP_PATH], dragOperationsMask: 1 };
  for (const type of ["dragEnter", "dragOver", "drop"]) {
    await cdp.send("Input.dispatchDragEvent", { type, x: 300, y: 300, data });
  }
  await sleep(3000);
}
if (process.env.DOWNLOAD_DIR) {
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: process.env.DOWNLOAD_DIR });
  await page.click("#shot");
  await sleep(5000);
}
await page.screenshot({ path: shot });
console.log(JSON.stringify({ ms, title: await page.title(), firstFrame: await page.evaluate(() => document.body.dataset.firstFrameMs),
  error: await page.evaluate(() => document.body.dataset.error || null), errors, ...result }));
await browser.close();
