#!/usr/bin/env node
// One session of Twilio's official Node SDK (npm `twilio`, pinned in tools/twilio-node, installed
// by scripts/test with `npm ci`) against verifyd's /v2 face, changed only by its base URL:
//
//     const client = twilio(ACCOUNT_SID, API_KEY);
//     client.verify.baseUrl = VERIFYD_SDK_BASE_URL;
//
// Run by tests/api/v2_sdk.rs with the SDK pointed at `prism proxy --errors` in front of verifyd.
// Every exchange is appended to VERIFYD_SDK_LOG (JSON lines) for the test's own spec check and
// printed abbreviated on stdout. Exits non-zero, naming the step, on anything unexpected.
// Environment: as tests/sdk/python_session.py.
"use strict";

const fs = require("fs");
const path = require("path");
const sdk = path.join(__dirname, "..", "..", "tools", "twilio-node", "node_modules", "twilio");
const twilio = require(sdk);
const RequestClient = require(path.join(sdk, "lib", "base", "RequestClient"));

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("VERIFYD_SDK_BASE_URL");
const DIRECT = env("VERIFYD_URL");
const ACCOUNT = env("VERIFYD_ACCOUNT_SID");
const KEY = env("VERIFYD_API_KEY");
const SERVICE = env("VERIFYD_SERVICE_SID");
const LOG = env("VERIFYD_SDK_LOG");
const NUMBER = "+14155552671";

const short = (text) => (text.length <= 160 ? text : text.slice(0, 160) + "…");

/** The SDK's own HTTP client, recording each exchange. */
class Recording extends RequestClient {
  async request(opts) {
    const response = await super.request(opts);
    const url = new URL(opts.uri);
    const body =
      typeof response.body === "string" ? response.body : JSON.stringify(response.body);
    fs.appendFileSync(
      LOG,
      JSON.stringify({ method: opts.method.toUpperCase(), path: url.pathname, status: response.statusCode, body }) +
        "\n",
    );
    const query = opts.params ? new URLSearchParams(opts.params).toString() : "";
    const form = opts.data ? " " + new URLSearchParams(opts.data).toString() : "";
    console.log(`> ${opts.method.toUpperCase()} ${url.pathname}${query ? "?" + query : url.search}${form}`);
    console.log(`< ${response.statusCode} ${short(body)}`);
    return response;
  }
}

function expect(step, condition, detail = "") {
  if (!condition) {
    console.error(`FAILED at ${step}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
}

async function expectError(step, status, code, call) {
  try {
    await call();
  } catch (e) {
    expect(step, e.status === status && e.code === code, `got ${e.status}/${e.code}: ${e.message}`);
    return;
  }
  expect(step, false, "no RestException");
}

async function lastCode(number) {
  const r = await fetch(DIRECT + "/dev/outbox", { headers: { Authorization: "Bearer " + KEY } });
  const messages = (await r.json()).messages.filter((m) => m.to === number);
  const tail = messages[messages.length - 1].body.split("code is: ")[1];
  return tail.match(/^\d+/)[0];
}

const wrong = (code) => [...code].map((c) => String((Number(c) + 1) % 10)).join("");

async function main() {
  const client = twilio(ACCOUNT, KEY, { httpClient: new Recording() });
  client.verify.baseUrl = BASE;
  const verify = client.verify.v2;

  console.log("# create, resend, wrong check, right check, fetch, cancel");
  const v = await verify.services(SERVICE).verifications.create({ to: NUMBER, channel: "sms" });
  expect("create", v.status === "pending" && v.sid.startsWith("VE"), v.status);
  const again = await verify.services(SERVICE).verifications.create({ to: NUMBER, channel: "sms" });
  expect("resend", again.sid === v.sid && again.sendCodeAttempts.length === 2);
  const code = await lastCode(NUMBER);
  let check = await verify.services(SERVICE).verificationChecks.create({ to: NUMBER, code: wrong(code) });
  expect("wrong check", check.status === "pending" && check.valid === false, check.status);
  expect("fetch", (await verify.services(SERVICE).verifications(v.sid).fetch()).status === "pending");
  check = await verify.services(SERVICE).verificationChecks.create({ verificationSid: v.sid, code });
  expect("right check", check.status === "approved" && check.valid === true, check.status);
  const c = await verify.services(SERVICE).verifications.create({ to: NUMBER, channel: "sms" });
  const canceled = await verify.services(SERVICE).verifications(c.sid).update({ status: "canceled" });
  expect("cancel", canceled.status === "canceled");
  await expectError("fetch canceled", 404, 20404, () => verify.services(SERVICE).verifications(c.sid).fetch());

  console.log("# PSD2 and a custom code");
  const pay = await verify.services.create({ friendlyName: "Pay", psd2Enabled: true });
  const p = await verify.services(pay.sid).verifications.create({ to: NUMBER, channel: "sms", amount: "€10", payee: "Acme" });
  expect("psd2 create", p.amount === "€10" && p.payee === "Acme");
  const payCode = await lastCode(NUMBER);
  check = await verify.services(pay.sid).verificationChecks.create({ to: NUMBER, code: payCode, amount: "€20", payee: "Acme" });
  expect("psd2 other amount", check.status === "pending");
  check = await verify.services(pay.sid).verificationChecks.create({ to: NUMBER, code: payCode, amount: "€10", payee: "Acme" });
  expect("psd2 right", check.status === "approved");
  const custom = await verify.services.create({ friendlyName: "Custom", customCodeEnabled: true });
  await verify.services(custom.sid).verifications.create({ to: NUMBER, channel: "sms", customCode: "8675309" });
  check = await verify.services(custom.sid).verificationChecks.create({ to: NUMBER, code: "8675309" });
  expect("custom code", check.status === "approved");

  console.log("# services CRUD, two per page");
  const extra = await verify.services.create({ friendlyName: "Extra", codeLength: 8 });
  const sids = (await verify.services.list({ pageSize: 2 })).map((s) => s.sid);
  expect("services listed", JSON.stringify(sids) === JSON.stringify([SERVICE, pay.sid, custom.sid, extra.sid]), sids);
  const renamed = await verify.services(extra.sid).update({ friendlyName: "Extra 2" });
  expect("service update", renamed.friendlyName === "Extra 2" && renamed.codeLength === 8);
  expect("service delete", (await verify.services(extra.sid).remove()) === true);
  await expectError("deleted service", 404, 20404, () => verify.services(extra.sid).fetch());

  console.log("# rate limits and buckets, two per page, and the RateLimits refusal");
  const limits = verify.services(SERVICE).rateLimits;
  const rk = await limits.create({ uniqueName: "end_user_ip_address" });
  const other = await limits.create({ uniqueName: "phone_prefix" });
  const rks = (await limits.list({ pageSize: 1 })).map((r) => r.sid);
  expect("rate limits listed", JSON.stringify(rks) === JSON.stringify([rk.sid, other.sid]), rks);
  const buckets = limits(rk.sid).buckets;
  const b1 = await buckets.create({ max: 4, interval: 60 });
  const b2 = await buckets.create({ max: 100, interval: 86400 });
  const b3 = await buckets.create({ max: 10, interval: 600 });
  const bls = (await buckets.list({ pageSize: 2 })).map((b) => b.sid);
  expect("buckets listed", JSON.stringify(bls) === JSON.stringify([b1.sid, b2.sid, b3.sid]), bls);
  await expectError("same interval", 400, 60211, () => buckets.create({ max: 5, interval: 60 }));
  expect("bucket update", (await buckets(b3.sid).update({ max: 20 })).max === 20);
  expect("bucket delete", (await buckets(b2.sid).remove()) && (await buckets(b3.sid).remove()));
  expect("rate limit delete", await limits(other.sid).remove());
  for (let i = 0; i < 4; i++) {
    await verify.services(SERVICE).verifications.create({
      to: `+1415555010${i}`, channel: "sms", rateLimits: { end_user_ip_address: "203.0.113.7" },
    });
  }
  await expectError("the fifth send from one end user", 429, 20429, () =>
    verify.services(SERVICE).verifications.create({
      to: "+14155550105", channel: "sms", rateLimits: { end_user_ip_address: "203.0.113.7" },
    }));

  console.log("# attempts and summary");
  const attempts = await verify.verificationAttempts.list({ pageSize: 3 });
  expect("attempts", attempts.length === 9, attempts.length);
  const converted = await verify.verificationAttempts.list({ status: "converted" });
  expect("converted attempts", converted.length === 4, converted.length);
  const one = await verify.verificationAttempts(attempts[0].sid).fetch();
  expect("fetch attempt", one.sid === attempts[0].sid && one.channelData.to === NUMBER);
  const summary = await verify.verificationAttemptsSummary().fetch();
  expect("summary", summary.totalAttempts === 9 && summary.totalConverted === 4, summary);

  console.log("# the safe list");
  const CANADA = "+14165550123";
  await expectError("canada before", 403, 60605, () =>
    verify.services(SERVICE).verifications.create({ to: CANADA, channel: "sms" }));
  const entry = await verify.safelist.create({ phoneNumber: CANADA });
  expect("safe list add", entry.sid.startsWith("GN") && entry.phoneNumber === CANADA);
  expect("safe list fetch", (await verify.safelist(CANADA).fetch()).sid === entry.sid);
  const listed = await verify.services(SERVICE).verifications.create({ to: CANADA, channel: "sms" });
  expect("canada listed", listed.status === "pending");
  expect("safe list remove", await verify.safelist(CANADA).remove());
  await expectError("removed", 404, 20404, () => verify.safelist(CANADA).fetch());

  console.log("# done");
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
