// Shared by the browser tests: Debian's Chromium, headless, through
// playwright-core; one JSON line per step on stdout for the Rust test.
import { chromium } from "playwright-core";

export const say = obj => process.stdout.write(JSON.stringify(obj) + "\n");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
  });
}

// Lines the Rust test writes to our stdin, one at a time.
export function lines() {
  const queue = [];
  const waiting = [];
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", d => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line); else queue.push(line);
    }
  });
  return () => queue.length ? Promise.resolve(queue.shift()) : new Promise(r => waiting.push(r));
}
