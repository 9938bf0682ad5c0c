/**
 * latchkey.js: a small, dependency-free browser client for Latchkey, for single-page apps.
 * An ES module served by every Latchkey server at `/js/latchkey.js`; no build step.
 *
 *   import { LatchkeyClient } from "https://auth.example.com/js/latchkey.js";
 *
 *   const auth = new LatchkeyClient({
 *     issuer: "https://auth.example.com",          // the server's `issuer`
 *     clientId: "…",                                // a public client (`client create --public`)
 *     redirectUri: "https://app.example.com/callback",  // registered with the client
 *     scope: "profile",
 *   });
 *
 *   loginButton.onclick = () => auth.login();      // to Latchkey's login and consent pages
 *
 *   // On the redirect page:
 *   await auth.handleRedirect();                   // checks state and iss, gets the tokens
 *   const me = await (await auth.fetch("/api/me")).json();
 *   await auth.logout();                           // revokes the grant, forgets the tokens
 *
 * The flow is the authorization code grant with PKCE (S256), as RFC 9700 and the OAuth
 * browser-based-apps BCP ask of public clients:
 *
 * - `login(options)` makes a PKCE verifier and a random `state`, keeps them in
 *   `sessionStorage` for the round trip only, and navigates to the authorization endpoint.
 *   `options`: `prompt` ("none", "login", "consent"), `loginHint`, `params` (extra query
 *   parameters), `appState` (any JSON value, handed back by `handleRedirect`).
 *   `createLoginUrl(options)` does the same without navigating and returns the URL.
 * - `handleRedirect(url = location.href)` checks `state` (and `iss`, which must equal the
 *   issuer), removes the OAuth parameters from the address bar, throws a `LatchkeyError` for an `error`
 *   answer (e.g. `access_denied`), and exchanges the code at the token endpoint. It resolves
 *   to `{ appState }`, or to `null` when the URL carries no authorization response.
 * - `fetch(input, init)` is `window.fetch` with `Authorization: Bearer …`; it refreshes the
 *   access token shortly before it expires, and when the resource server still answers 401
 *   `invalid_token` it refreshes once and retries once; if that refresh fails, the 401 is
 *   returned. Without tokens it throws
 *   `LatchkeyError("login_required")`. It sends the token wherever `input` points: call it
 *   only for your own APIs.
 * - `refresh()` uses the refresh token (Latchkey rotates it: the new one is kept). Concurrent
 *   calls share one request, as a rotated refresh token must not be used twice. A refused
 *   refresh (`invalid_grant`) forgets the tokens.
 * - `logout()` revokes the refresh token (and with it every token of the grant) at the
 *   revocation endpoint, then forgets the tokens. The user's login session at Latchkey
 *   itself stays; send the browser to `logoutUrl` (a page that asks, then ends it) to end it too.
 * - `isAuthenticated`, `accessToken`, `expiresAt` (ms since the epoch), `scope`: the state.
 *
 * DPoP (RFC 9449): with `dpop: true`, the client makes a non-extractable ECDSA P-256 key with
 * WebCrypto (its private half can be used but never read, not even by this script), sends
 * `dpop_jkt` with every login so the code is bound to it, a `DPoP` proof with every token
 * request, and calls APIs with `Authorization: DPoP …` and a proof whose `ath` is the token's
 * hash. A stolen token is then useless without the key. When a server asks for a nonce
 * (`use_dpop_nonce`), the request is repeated once with the `DPoP-Nonce` it sent; nonces are
 * kept per origin. The key pair is kept in IndexedDB (a `CryptoKey` stays non-extractable
 * there), so the page that handles the redirect proves the key the login page named in
 * `dpop_jkt`; `logout()` deletes it, and the next login makes a new one.
 *
 * Tokens live in this object's memory only, never in localStorage or sessionStorage: a page
 * reload logs the app out (a new `login()` goes through quickly while the Latchkey session
 * lasts: no password, but the consent page, which Latchkey shows to every request of a public
 * client (RFC 6749 §10.2), so `login({ prompt: "none" })` answers `consent_required`).
 *
 * Endpoints are `${issuer}/authorize`, `/token` and `/revoke`; with `discover: true` they
 * are read from `${issuer}/.well-known/oauth-authorization-server` instead (RFC 8414).
 * An app on another origin than Latchkey needs its origin in the server's
 * `cors.allowed_origins`. Errors are `LatchkeyError`s with the OAuth `error` code, or a
 * network `TypeError` from `fetch`.
 */

const STORAGE_PREFIX = "latchkey.pending:";
const METADATA_PATH = "/.well-known/oauth-authorization-server";
const FORM = "application/x-www-form-urlencoded;charset=UTF-8";
const OAUTH_PARAMS = ["code", "state", "iss", "error", "error_description", "error_uri"];

/** An OAuth error (`error` is its code, e.g. `invalid_grant`) or a failed check. */
export class LatchkeyError extends Error {
  /**
   * @param {string} error the OAuth error code
   * @param {string} [description] a human-readable explanation
   * @param {{status?: number, uri?: string}} [details]
   */
  constructor(error, description, details = {}) {
    super(description ? `${error}: ${description}` : error);
    this.name = "LatchkeyError";
    this.error = error;
    this.description = description || "";
    this.status = details.status;
    this.uri = details.uri;
  }
}

function base64url(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteLength) {
  return base64url(crypto.getRandomValues(new Uint8Array(byteLength)));
}

async function s256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function base64urlJson(value) {
  return base64url(new TextEncoder().encode(JSON.stringify(value)));
}

const KEY_DB = "latchkey-dpop";
const KEY_STORE = "keys";

/** Runs `use(store)` in one IndexedDB transaction; resolves to the request's result. */
function keyStore(mode, use) {
  return new Promise((resolve, reject) => {
    const open = globalThis.indexedDB.open(KEY_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(KEY_STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(KEY_STORE, mode);
      const request = use(tx.objectStore(KEY_STORE));
      tx.oncomplete = () => {
        db.close();
        resolve(request.result);
      };
      tx.onerror = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}

/**
 * The DPoP key (RFC 9449) stored under `name`, or a new one: ECDSA P-256 from WebCrypto, its
 * private key not extractable. Resolves to `{ privateKey, jwk, jkt }`, `jkt` the RFC 7638
 * thumbprint of `jwk`. Without IndexedDB the key lives in memory only.
 */
async function dpopKey(name) {
  const canStore = typeof globalThis.indexedDB !== "undefined";
  let pair = canStore ? await keyStore("readonly", (s) => s.get(name)).catch(() => null) : null;
  if (!pair) {
    pair = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign", "verify"],
    );
    if (canStore) await keyStore("readwrite", (s) => s.put(pair, name)).catch(() => null);
  }
  const full = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk = { crv: full.crv, kty: full.kty, x: full.x, y: full.y };
  // RFC 7638 §3: the required members in lexicographic order, no whitespace.
  const jkt = await s256(JSON.stringify(jwk));
  return { privateKey: pair.privateKey, jwk, jkt };
}

/** The origin and the URI without query and fragment of `url` (a proof's `htu`). */
function dpopTarget(url) {
  const u = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  return { origin: u.origin, htu: `${u.origin}${u.pathname}` };
}

/** Whether an answer asks for a DPoP nonce (RFC 9449 §8 at /token, §9 at a resource). */
async function wantsNonce(response) {
  if (response.status !== 400 && response.status !== 401) return false;
  const challenge = response.headers.get("WWW-Authenticate");
  if (challenge !== null && /use_dpop_nonce/.test(challenge)) return true;
  try {
    const body = await response.clone().json();
    return Boolean(body) && body.error === "use_dpop_nonce";
  } catch {
    return false;
  }
}

/** Reads an error answer of an OAuth endpoint, whatever its body. */
async function errorFrom(response, fallback) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON: keep the fallback.
  }
  return new LatchkeyError(
    typeof body.error === "string" ? body.error : fallback,
    typeof body.error_description === "string"
      ? body.error_description
      : `HTTP ${response.status}`,
    { status: response.status, uri: body.error_uri },
  );
}

/** Whether a resource server's 401 says the access token is no good (RFC 6750 §3.1). */
async function isInvalidToken(response) {
  if (response.status !== 401) return false;
  const challenge = response.headers.get("WWW-Authenticate");
  if (challenge !== null) return /error\s*=\s*"?invalid_token/i.test(challenge);
  // Cross-origin APIs may not expose WWW-Authenticate; Latchkey's guards also say it in JSON.
  try {
    const body = await response.clone().json();
    return body && body.error === "invalid_token";
  } catch {
    return false;
  }
}

/** An OAuth 2.0 public client for a single-page app, talking to one Latchkey server. */
export class LatchkeyClient {
  #issuer;
  #clientId;
  #redirectUri;
  #scope;
  #discover;
  #refreshMargin;
  #fetchImpl;
  #storage;
  #endpoints = null;
  #tokens = null;
  #refreshing = null;
  #dpop;
  #dpopKey = null;
  #dpopNonces = new Map();

  /**
   * @param {object} options
   * @param {string} options.issuer the Latchkey server's issuer URL
   * @param {string} options.clientId the public client's id
   * @param {string} options.redirectUri a redirect URI registered for the client
   * @param {string} [options.scope] space-separated scopes to ask for (default: the client's)
   * @param {boolean} [options.discover] read the endpoints from the server's metadata
   * @param {number} [options.refreshMargin] refresh this many seconds before expiry (30)
   * @param {typeof fetch} [options.fetch] the fetch used for the OAuth endpoints
   * @param {Storage} [options.storage] where the login round trip is kept (sessionStorage)
   * @param {boolean} [options.dpop] bind the tokens to a non-extractable key (RFC 9449)
   */
  constructor({
    issuer,
    clientId,
    redirectUri,
    scope = "",
    discover = false,
    refreshMargin = 30,
    fetch: fetchImpl,
    storage,
    dpop = false,
  } = {}) {
    if (!issuer || !clientId || !redirectUri) {
      throw new TypeError("LatchkeyClient needs issuer, clientId and redirectUri");
    }
    this.#issuer = String(issuer).replace(/\/+$/, "");
    this.#clientId = String(clientId);
    this.#redirectUri = String(redirectUri);
    this.#scope = String(scope);
    this.#discover = Boolean(discover);
    this.#refreshMargin = Number(refreshMargin);
    this.#fetchImpl = fetchImpl || ((...args) => globalThis.fetch(...args));
    this.#storage = storage || globalThis.sessionStorage;
    this.#dpop = Boolean(dpop);
  }

  /** The DPoP key's thumbprint (`dpop_jkt`), or `null` without DPoP. */
  async dpopThumbprint() {
    if (!this.#dpop) return null;
    return (await this.#key()).jkt;
  }

  #key() {
    if (!this.#dpopKey) this.#dpopKey = dpopKey(this.#storageKey);
    return this.#dpopKey;
  }

  /** A DPoP proof for `method` on `url` (with `accessToken` hashed into `ath`). */
  async #proof(method, url, accessToken) {
    const { privateKey, jwk } = await this.#key();
    const { origin, htu } = dpopTarget(url);
    const claims = {
      jti: randomString(16),
      htm: method.toUpperCase(),
      htu,
      iat: Math.floor(Date.now() / 1000),
    };
    if (accessToken) claims.ath = await s256(accessToken);
    const nonce = this.#dpopNonces.get(origin);
    if (nonce) claims.nonce = nonce;
    const input = `${base64urlJson({ typ: "dpop+jwt", alg: "ES256", jwk })}.${base64urlJson(claims)}`;
    // WebCrypto's ECDSA signature is r || s, the JWS form (RFC 7518 §3.4).
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      privateKey,
      new TextEncoder().encode(input),
    );
    return `${input}.${base64url(new Uint8Array(signature))}`;
  }

  /** Keeps the `DPoP-Nonce` a server sent, by origin. */
  #learnNonce(url, response) {
    const nonce = response.headers.get("DPoP-Nonce");
    if (nonce) this.#dpopNonces.set(dpopTarget(url).origin, nonce);
  }

  /**
   * Sends `send(proof)` with a fresh proof (when DPoP is on), and once more with the server's
   * nonce when it asks for one.
   */
  async #withProof(method, url, accessToken, send) {
    if (!this.#dpop) return send(null);
    let response = await send(await this.#proof(method, url, accessToken));
    this.#learnNonce(url, response);
    if (await wantsNonce(response)) {
      response = await send(await this.#proof(method, url, accessToken));
      this.#learnNonce(url, response);
    }
    return response;
  }

  /** The issuer this client talks to. */
  get issuer() {
    return this.#issuer;
  }

  /** Whether an access token is held (it may have expired; `fetch` refreshes it). */
  get isAuthenticated() {
    return this.#tokens !== null;
  }

  /** The current access token, or `null`. */
  get accessToken() {
    return this.#tokens ? this.#tokens.accessToken : null;
  }

  /** When the access token expires, in milliseconds since the epoch, or `null`. */
  get expiresAt() {
    return this.#tokens ? this.#tokens.expiresAt : null;
  }

  /** The scope granted, or `null`. */
  get scope() {
    return this.#tokens ? this.#tokens.scope : null;
  }

  /** Latchkey's logout page, which asks the user and then ends their login session at the server. */
  get logoutUrl() {
    return `${this.#issuer}/logout`;
  }

  get #storageKey() {
    return `${STORAGE_PREFIX}${this.#issuer} ${this.#clientId}`;
  }

  /** The authorization, token and revocation endpoints. */
  async endpoints() {
    if (this.#endpoints) return this.#endpoints;
    let endpoints = {
      authorization_endpoint: `${this.#issuer}/authorize`,
      token_endpoint: `${this.#issuer}/token`,
      revocation_endpoint: `${this.#issuer}/revoke`,
    };
    if (this.#discover) {
      const response = await this.#fetchImpl(`${this.#issuer}${METADATA_PATH}`, {
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw await errorFrom(response, "discovery_failed");
      const metadata = await response.json();
      // RFC 8414 §3.3: the document must name the issuer it was fetched from.
      if (metadata.issuer !== this.#issuer) {
        throw new LatchkeyError("discovery_failed", "the metadata names another issuer");
      }
      endpoints = { ...endpoints, ...pick(metadata, Object.keys(endpoints)) };
    }
    this.#endpoints = endpoints;
    return endpoints;
  }

  /**
   * Prepares a login (PKCE verifier and state kept in sessionStorage) and returns the URL of
   * the authorization request.
   */
  async createLoginUrl({ prompt, loginHint, params = {}, appState } = {}) {
    const { authorization_endpoint } = await this.endpoints();
    const verifier = randomString(32);
    const state = randomString(16);
    const url = new URL(authorization_endpoint);
    const query = {
      ...params,
      response_type: "code",
      client_id: this.#clientId,
      redirect_uri: this.#redirectUri,
      state,
      code_challenge: await s256(verifier),
      code_challenge_method: "S256",
    };
    if (this.#scope) query.scope = this.#scope;
    if (prompt) query.prompt = prompt;
    if (loginHint) query.login_hint = loginHint;
    // RFC 9449 §10: the code is bound to the key too.
    if (this.#dpop) query.dpop_jkt = (await this.#key()).jkt;
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    this.#storage.setItem(
      this.#storageKey,
      JSON.stringify({ state, verifier, redirectUri: this.#redirectUri, appState }),
    );
    return url.toString();
  }

  /** Starts a login: navigates to Latchkey's authorization endpoint. */
  async login(options = {}) {
    const url = await this.createLoginUrl(options);
    globalThis.location.assign(url);
  }

  /**
   * Completes a login on the redirect page: checks the answer, removes it from the address
   * bar and exchanges the code for tokens. Resolves to `{ appState }`, or `null` when `url`
   * holds no authorization response.
   */
  async handleRedirect(url = globalThis.location.href) {
    const current = new URL(url);
    const query = current.searchParams;
    if (!query.has("code") && !query.has("error")) return null;
    // The code must not stay in the address bar, the history or a Referer.
    if (globalThis.history && globalThis.location && current.href === location.href) {
      const clean = new URL(current);
      for (const name of OAUTH_PARAMS) clean.searchParams.delete(name);
      globalThis.history.replaceState(globalThis.history.state, "", clean.toString());
    }
    const pending = this.#takePending(query.get("state"));
    const iss = query.get("iss");
    if (iss !== null && iss !== this.#issuer) {
      // RFC 9207: an answer from another server (mix-up attack).
      throw new LatchkeyError("invalid_issuer", "the answer comes from another issuer");
    }
    if (query.has("error")) {
      throw new LatchkeyError(
        query.get("error"),
        query.get("error_description") || "",
        { uri: query.get("error_uri") || undefined },
      );
    }
    this.#tokens = await this.#tokenRequest(
      {
        grant_type: "authorization_code",
        code: query.get("code"),
        redirect_uri: pending.redirectUri,
        code_verifier: pending.verifier,
      },
      null,
    );
    return { appState: pending.appState };
  }

  /** The login round trip kept by `createLoginUrl`, if `state` matches it; then forgotten. */
  #takePending(state) {
    const key = this.#storageKey;
    let pending = null;
    try {
      pending = JSON.parse(this.#storage.getItem(key) || "null");
    } catch {
      pending = null;
    }
    if (!pending || typeof state !== "string" || pending.state !== state) {
      // Not the answer to our request (CSRF, or a stale tab): leave any login in progress.
      throw new LatchkeyError("invalid_state", "the answer does not match a login started here");
    }
    this.#storage.removeItem(key);
    return pending;
  }

  /** Gets new tokens with the refresh token; concurrent calls share one request. */
  refresh() {
    if (!this.#refreshing) {
      this.#refreshing = this.#refreshNow().finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }

  async #refreshNow() {
    const before = this.#tokens;
    if (!before || !before.refreshToken) {
      throw new LatchkeyError("login_required", "no refresh token");
    }
    let tokens;
    try {
      tokens = await this.#tokenRequest(
        { grant_type: "refresh_token", refresh_token: before.refreshToken },
        before,
      );
    } catch (err) {
      const refused = err instanceof LatchkeyError && err.error === "invalid_grant";
      if (refused && this.#tokens === before) this.#tokens = null;
      throw err;
    }
    // A logout or a new login while the request was out wins over its answer.
    if (this.#tokens !== before) throw new LatchkeyError("login_required", "logged out");
    this.#tokens = tokens;
  }

  /** One token request; resolves to the tokens of the answer (`previous` for what it lacks). */
  async #tokenRequest(params, previous) {
    const { token_endpoint } = await this.endpoints();
    const response = await this.#withProof("POST", token_endpoint, null, (proof) => {
      const headers = { "Content-Type": FORM, Accept: "application/json" };
      if (proof) headers.DPoP = proof;
      return this.#fetchImpl(token_endpoint, {
        method: "POST",
        headers,
        body: new URLSearchParams({ ...params, client_id: this.#clientId }),
        credentials: "omit",
        cache: "no-store",
      });
    });
    if (!response.ok) throw await errorFrom(response, "server_error");
    const body = await response.json();
    const tokenType = /^dpop$/i.test(body.token_type || "") ? "DPoP" : "Bearer";
    const expected = this.#dpop ? /^dpop$/i : /^bearer$/i;
    if (typeof body.access_token !== "string" || !expected.test(body.token_type || "")) {
      throw new LatchkeyError(
        "invalid_response",
        `the token endpoint sent no ${this.#dpop ? "DPoP" : "bearer"} token`,
      );
    }
    const lifetime = Number(body.expires_in) > 0 ? Number(body.expires_in) : 3600;
    return {
      accessToken: body.access_token,
      tokenType,
      // A rotated refresh token replaces the old one, which is now spent.
      refreshToken: body.refresh_token || (previous && previous.refreshToken) || null,
      expiresAt: Date.now() + lifetime * 1000,
      lifetime,
      scope: typeof body.scope === "string" ? body.scope : (previous ? previous.scope : this.#scope),
    };
  }

  /** Whether the access token expires within the refresh margin (at most half its life). */
  #expiresSoon() {
    const t = this.#tokens;
    const margin = Math.min(this.#refreshMargin, t.lifetime / 2) * 1000;
    return t.expiresAt - Date.now() <= margin;
  }

  /**
   * `fetch` with the access token, refreshed when it is about to expire or is refused.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init) {
    if (!this.#tokens) throw new LatchkeyError("login_required", "not logged in");
    if (this.#tokens.refreshToken && this.#expiresSoon()) {
      try {
        await this.refresh();
      } catch (err) {
        if (!this.#tokens) throw err;
        // Keep using the current token while it lasts; the server has the last word.
      }
    }
    if (!this.#tokens) throw new LatchkeyError("login_required", "not logged in");
    const original = new Request(input, init);
    const send = (request, tokens) => {
      const attempt = (proof) => {
        const headers = new Headers(request.headers);
        headers.set("Authorization", `${tokens.tokenType} ${tokens.accessToken}`);
        if (proof) headers.set("DPoP", proof);
        return globalThis.fetch(new Request(request.clone(), { headers }));
      };
      // RFC 9449 §7.1: a DPoP-bound token goes with a proof for this request.
      if (tokens.tokenType !== "DPoP") return attempt(null);
      return this.#withProof(request.method, request.url, tokens.accessToken, attempt);
    };
    const sentWith = this.#tokens.accessToken;
    const response = await send(original.clone(), this.#tokens);
    if (!this.#tokens || !this.#tokens.refreshToken) return response;
    if (!(await isInvalidToken(response))) return response;
    try {
      // Another call may have refreshed meanwhile; otherwise refresh now.
      if (this.#tokens.accessToken === sentWith) await this.refresh();
    } catch {
      return response;
    }
    if (!this.#tokens) return response;
    return send(original, this.#tokens);
  }

  /** Revokes the grant at the server (best effort) and forgets the tokens. */
  async logout() {
    const tokens = this.#tokens;
    this.#tokens = null;
    this.#storage.removeItem(this.#storageKey);
    if (this.#dpop && typeof globalThis.indexedDB !== "undefined") {
      // The next login binds to a new key; this object keeps the old one for the revocation.
      await keyStore("readwrite", (s) => s.delete(this.#storageKey)).catch(() => null);
    }
    if (!tokens) return;
    const [token, hint] = tokens.refreshToken
      ? [tokens.refreshToken, "refresh_token"]
      : [tokens.accessToken, "access_token"];
    const { revocation_endpoint } = await this.endpoints();
    const response = await this.#fetchImpl(revocation_endpoint, {
      method: "POST",
      headers: { "Content-Type": FORM },
      body: new URLSearchParams({ token, token_type_hint: hint, client_id: this.#clientId }),
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) throw await errorFrom(response, "server_error");
  }
}

function pick(object, keys) {
  const out = {};
  for (const key of keys) {
    if (typeof object[key] === "string") out[key] = object[key];
  }
  return out;
}
