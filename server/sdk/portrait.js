// Portrait browser SDK — an ES module served at /sdk/portrait.js; no build
// step. 画像引擎浏览器 SDK：发送事件、查看和更改同意、遵从 GPC、链接隐私中心。
//
//   import { Portrait } from "https://portrait.example.com/sdk/portrait.js";
//   const p = new Portrait({ server: "https://portrait.example.com", subject: "u-123", token });
//   await p.honourGPC();                       // navigator.globalPrivacyControl → opt-out (CN-12)
//   await p.track("view", { item: "sku-1", category: "sports" });
//   await p.setConsent("marketing", "withdrawn");
//   p.linkPrivacyCentre(document.querySelector("#privacy"));
//
// The subject token comes from the site's own back end, which asks Portrait
// for it (POST /v1/subjects/{id}/tokens with an operator key); the key never
// reaches the browser. The server answers only origins listed in
// serve --cors-origins.

export class PortraitError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "PortraitError";
    this.status = status;
    this.code = problem.code;
    this.requirement = problem.requirement; // the legal rule that refused, e.g. "CN-4"
    this.problem = problem;
  }
}

export class Portrait {
  // server: base URL of Portrait; subject: the site's id for the visitor,
  // the one the token was issued for; token: a subject token (pt1.…).
  constructor({ server, subject, token, fetch: f } = {}) {
    if (!server || !token) throw new TypeError("Portrait: server and token are required");
    this.server = server.replace(/\/+$/, "");
    this.subject = subject;
    this.token = token;
    this.fetch = f || globalThis.fetch.bind(globalThis);
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await this.fetch(this.server + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", mode: "cors",
    });
    const type = resp.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) throw new PortraitError(resp.status, typeof data === "object" ? data : { detail: data });
    return data;
  }

  // track sends one event of a type the catalog declares; fields not
  // declared for it, or without a lawful purpose, are dropped by the server
  // and listed in the result. An idempotency key makes retries safe.
  async track(type, fields = {}, { time = new Date(), idempotencyKey = randomKey() } = {}) {
    return this.trackAll([{ type, fields, time, idempotencyKey }]);
  }

  // trackAll sends several events at once; the answer has a result per event.
  async trackAll(events) {
    if (!this.subject) throw new TypeError("Portrait: subject is required to send events");
    return this.request("POST", "/v1/me/events", events.map((e) => ({
      subject: this.subject, type: e.type, fields: e.fields || {},
      time: (e.time instanceof Date ? e.time : new Date(e.time || Date.now())).toISOString(),
      idempotency_key: e.idempotencyKey || randomKey(),
    })));
  }

  // consents returns the visitor's consents with notices and history.
  async consents() { return this.request("GET", "/v1/me/consents"); }

  // setConsent grants, refuses or withdraws one purpose (one call each way,
  // CN-4); a grant is for the notice version shown, which defaults to the
  // current one the server reports.
  async setConsent(purpose, status, { noticeVersion, channel = "web" } = {}) {
    if (status === "granted" && !noticeVersion) {
      const c = (await this.consents()).consents.find((x) => x.purpose === purpose);
      noticeVersion = c && c.current_notice_version;
    }
    return this.request("PUT", `/v1/me/consents/${encodeURIComponent(purpose)}`,
      { status, notice_version: noticeVersion || "", channel });
  }

  // setConsentString records what a CMP's TC string or GPP string says
  // about purpose, through the catalog's mapping; the receipt keeps it.
  async setConsentString(purpose, { tcString, gppString, noticeVersion = "", channel = "cmp" }) {
    const body = { notice_version: noticeVersion, channel };
    if (tcString) body.tc_string = tcString;
    if (gppString) body.gpp_string = gppString;
    return this.request("PUT", `/v1/me/consents/${encodeURIComponent(purpose)}`, body);
  }

  // honourGPC records a Global Privacy Control signal when the browser
  // sends one: advertising, sale and sharing purposes are opted out
  // (CN-12). Scripts may not set the Sec-GPC header, so the SDK says so in
  // the body. Returns the receipts, or null when the browser sends no GPC.
  async honourGPC() {
    if (typeof navigator === "undefined" || navigator.globalPrivacyControl !== true) return null;
    return this.request("POST", "/v1/me/gpc", {});
  }

  // privacyCentre is the URL of the privacy centre, where the visitor sees
  // and controls the whole portrait.
  privacyCentre(lang) {
    return `${this.server}/privacy/${lang ? `?lang=${encodeURIComponent(lang)}` : ""}`;
  }

  // linkPrivacyCentre points an <a> at the privacy centre.
  linkPrivacyCentre(a, lang) {
    a.href = this.privacyCentre(lang);
    a.rel = "noopener";
    return a;
  }
}

function randomKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
