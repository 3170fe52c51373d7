// A player on another origin: a page served from its own port loads
// hls.js and plays Tandem's /out/ playlist directly (no proxy), which works
// only if Tandem answers CORS.
//
// Env: PLAYLIST_URL (absolute, on Tandem), HLS_JS (path of hls.js on disk).
import http from "node:http";
import fs from "node:fs";
import { launch, say } from "./lib.mjs";

const playlist = process.env.PLAYLIST_URL;
const hlsJs = fs.readFileSync(process.env.HLS_JS);
const html = `<!doctype html><meta charset="utf-8"><video id="v" muted autoplay playsinline></video>
<script src="/hls.js"></script>
<script>
  window.__errors = [];
  const v = document.getElementById("v");
  const h = new Hls({ liveSyncDurationCount: 3 });
  h.on(Hls.Events.ERROR, (_, d) => window.__errors.push((d.fatal ? "fatal " : "") + d.details));
  h.loadSource(${JSON.stringify(playlist)});
  h.attachMedia(v);
  v.play().catch(() => {});
</script>`;
const server = http.createServer((req, res) => {
  if (req.url === "/hls.js") { res.writeHead(200, { "content-type": "text/javascript" }); res.end(hlsJs); return; }
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(html);
});
await new Promise(r => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await launch();
try {
  const page = await browser.newPage();
  const cors = [];
  page.on("response", r => {
    if (r.url().startsWith(new URL(playlist).origin)) {
      cors.push({ url: r.url(), status: r.status(), allow: r.headers()["access-control-allow-origin"] || null });
    }
  });
  await page.goto(origin + "/");
  try {
    await page.waitForFunction(() => document.getElementById("v").currentTime > 0.5, null, { timeout: 45000 });
  } catch (e) {
    say({ origin, played: 0, errors: await page.evaluate(() => window.__errors), responses: cors.length, seen: cors.slice(0, 12) });
    throw e;
  }
  const a = await page.evaluate(() => document.getElementById("v").currentTime);
  await page.waitForTimeout(6000);
  const b = await page.evaluate(() => document.getElementById("v").currentTime);
  const errors = await page.evaluate(() => window.__errors);
  say({ origin, played: b - a, errors, responses: cors.length,
    playlists: cors.filter(c => c.url.includes(".m3u8")).length,
    segments: cors.filter(c => c.url.endsWith(".ts")).length,
    allow: [...new Set(cors.map(c => c.allow))] });
} finally {
  await browser.close();
  server.close();
}
