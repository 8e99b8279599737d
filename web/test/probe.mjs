// Opens a page of the web bundle in Debian's headless Chromium (SwiftShader
// WebGL2) in real time, waits for the app's first frames (or an error), lets
// it run `SETTLE_MS` more, then prints one JSON line: time to first frame,
// title, error shown, console errors; and saves a screenshot.
// Usage: node web/test/probe.mjs URL SHOT.png   (used by tests/integration/web.rs)
import puppeteer from "puppeteer-core";
const [url, shot] = process.argv.slice(2);
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,720"] });
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 720 });
const errors = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
const t0 = Date.now();
await page.goto(url);
try {
  await page.waitForFunction(() => document.body.dataset.firstFrameMs || document.body.dataset.error, { timeout: 180000, polling: 500 });
} catch (e) { errors.push("timeout: " + e.message); }
const ms = Date.now() - t0;
await new Promise((r) => setTimeout(r, Number(process.env.SETTLE_MS || 3000)));
// DOWNLOAD_DIR: also press the page's PNG button and let the download land there.
if (process.env.DOWNLOAD_DIR) {
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: process.env.DOWNLOAD_DIR });
  await page.click("#shot");
  await new Promise((r) => setTimeout(r, 5000));
}
await page.screenshot({ path: shot });
console.log(JSON.stringify({ ms, title: await page.title(), firstFrame: await page.evaluate(() => document.body.dataset.firstFrameMs), error: await page.evaluate(() => document.body.dataset.error || null), errors }));
await browser.close();
