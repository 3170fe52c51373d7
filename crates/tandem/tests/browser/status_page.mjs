// The status page as an operator uses it: sign in with the admin token,
// watch a channel's two inputs, see one turn lost and the output switch
// without reloading, then open the channel's page and watch it play.
//
// Env: TANDEM_BASE, TANDEM_TOKEN, CHANNEL, SCREENSHOT (a .png path).
// Stdin: "killed P" once the test has killed pipeline P.
import { launch, lines, say } from "./lib.mjs";

const base = process.env.TANDEM_BASE;
const channel = process.env.CHANNEL || "demo";
const next = lines();
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const res = await page.goto(base + "/");
  const form = await page.locator("input[name=token]").count();
  await page.fill("input[name=token]", process.env.TANDEM_TOKEN);
  await Promise.all([page.waitForURL(base + "/ui/"), page.click("button[type=submit]")]);
  const cookie = (await page.context().cookies()).find(c => c.name === "tandem_session");
  say({ step: "signed_in", status: res.status(), form, url: page.url(),
    httpOnly: cookie?.httpOnly, sameSite: cookie?.sameSite, tokenInUrl: page.url().includes(process.env.TANDEM_TOKEN) });

  // A marker that a reload would wipe.
  await page.evaluate(() => { window.__sameDocument = true; });
  const input = (p, state) => `.input[data-channel="${channel}"][data-pipeline="${p}"][data-state="${state}"]`;
  await page.waitForSelector(input(0, "receiving"), { timeout: 60000 });
  await page.waitForSelector(input(1, "receiving"), { timeout: 60000 });
  await page.waitForSelector(`.active[data-active="0"]`, { timeout: 60000 });
  const stalledSwitch = to => `svg.timeline[data-channel="${channel}"] line.switch[data-to="${to}"][data-reason="stalled"]`;
  say({ step: "both_receiving", switchesToOneBefore: await page.locator(stalledSwitch(1)).count() });

  const killed = Number((await next()).split(" ")[1]);
  const t0 = Date.now();
  await page.waitForSelector(input(killed, "lost"), { timeout: 30000 });
  const lostMs = Date.now() - t0;
  await page.waitForSelector(stalledSwitch(1 - killed), { state: "attached", timeout: 30000 });
  const switchMs = Date.now() - t0;
  const other = await page.getAttribute(`.input[data-channel="${channel}"][data-pipeline="${1 - killed}"]`, "data-state");
  const sameDocument = await page.evaluate(() => window.__sameDocument === true);
  const live = await page.textContent("#live");
  // The last two minutes, where this test's few seconds are visible, a
  // moment after the switch so that pipeline 1's stretch shows.
  await page.waitForTimeout(2500);
  await page.click(`section.channel[data-channel="${channel}"] button.span[data-span="2"]`);
  await page.waitForSelector(`section.channel[data-channel="${channel}"] button.span[data-span="2"][aria-pressed="true"]`);
  await page.screenshot({ path: process.env.SCREENSHOT });
  say({ step: "switched", lostMs, switchMs, other, sameDocument, live });

  // The channel's page: its events and its output playing.
  await page.click(`section.channel[data-channel="${channel}"] h3 a[href="#channel/${channel}"]`);
  await page.waitForSelector(`table.events tr[data-kind="input_lost"]`, { timeout: 10000 });
  const kinds = await page.$$eval("table.events tr[data-kind]", rows => rows.map(r => r.dataset.kind));
  await page.waitForFunction(() => { const v = document.querySelector("video"); return v && v.currentTime > 0.5; }, null, { timeout: 30000 });
  const a = await page.evaluate(() => document.querySelector("video").currentTime);
  await page.waitForTimeout(4000);
  const b = await page.evaluate(() => document.querySelector("video").currentTime);
  say({ step: "channel_page", kinds, played: b - a, sameDocument: await page.evaluate(() => window.__sameDocument === true) });
} finally {
  await browser.close();
}
