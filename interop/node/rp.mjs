// openid-client (panva, v6) as an unchanged third-party relying party of Latchkey.
//
// Run by crates/latchkey-server/tests/oidc_interop_node.rs, which starts the real `latchkey`
// binary and plays the user's browser. The library does every protocol step itself:
// discovery, the authorization URL (PKCE S256, nonce, state), the callback, ID-token
// validation (signature against the JWKS, iss, aud, exp, nonce, at_hash when present),
// userinfo, refresh, and the end_session URL. The test and this script talk in JSON lines:
//
//   node rp.mjs keygen               -> {"private_jwk": {...}, "jwks": {"keys": [...]}}
//   node rp.mjs '<config JSON>'      -> {"authorize": URL}
//                                    <- {"method": "GET"|"POST", "url": URL, "body"?: FORM}
//                                    -> {"result": {...}}   or   {"error": "..."} (exit 1)
//
// config: issuer, client_id, redirect_uri, post_logout_redirect_uri, and either
// client_secret or private_jwk (private_key_jwt); optional response_mode, and par (true: push
// the authorization request first).
// client_secret or private_jwk (private_key_jwt); optional response_mode; optional dpop
// (true: every token request and the userinfo call carry DPoP proofs of a fresh key, RFC
// 9449, through the library's own DPoP handle, which is oauth4webapi's).
// jar (true, with private_jwk): the authorization parameters go as a request object signed
// with that key (RFC 9101, `buildAuthorizationUrlWithJAR`); with par too, the object is
// pushed (RFC 9126 §3).
import * as oidc from 'openid-client'
import { createInterface } from 'node:readline'

const SCOPE = 'openid profile email'

function emit(value) {
  process.stdout.write(JSON.stringify(value) + '\n')
}

async function keygen() {
  const pair = await crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['sign', 'verify'],
  )
  const kid = oidc.randomState()
  // Only the RFC 7517/7518 members: WebCrypto's `ext` and `key_ops` stay out (`key_ops`
  // beside `use` is what RFC 7517 §4.3 advises against).
  const { kty, crv, x, y, d } = await crypto.subtle.exportKey('jwk', pair.privateKey)
  const pub = { kty, crv, x, y, kid, alg: 'ES256', use: 'sig' }
  const priv = { ...pub, d }
  emit({ private_jwk: priv, jwks: { keys: [pub] } })
}

async function privateKey(config) {
  const { kid, alg, use, ...jwk } = config.private_jwk
  const key = await crypto.subtle.importKey(
    'jwk',
    jwk,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  )
  return { key, kid }
}

async function clientAuthentication(config) {
  if (config.private_jwk) {
    return oidc.PrivateKeyJwt(await privateKey(config))
  }
  return oidc.ClientSecretBasic(config.client_secret)
}

async function flow(config, lines) {
  // Discovery: openid-client checks that the document's issuer is the one asked for.
  // Plain HTTP is the test's loopback server; the library refuses it unless told.
  const server = await oidc.discovery(
    new URL(config.issuer),
    config.client_id,
    undefined,
    await clientAuthentication(config),
    { execute: [oidc.allowInsecureRequests] },
  )

  const verifier = oidc.randomPKCECodeVerifier()
  const challenge = await oidc.calculatePKCECodeChallenge(verifier)
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const params = {
    redirect_uri: config.redirect_uri,
    scope: SCOPE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    nonce,
    state,
  }
  if (config.response_mode) params.response_mode = config.response_mode
  // par: the parameters go to the pushed authorization request endpoint (RFC 9126) first;
  // the browser gets only client_id and request_uri.
  // jar: the library signs the parameters into a request object; the URL carries only
  // client_id and request.
  const sent = config.jar
    ? (await oidc.buildAuthorizationUrlWithJAR(server, params, await privateKey(config)))
        .searchParams
    : params
  if (config.jar && (!sent.has('request') || sent.has('scope'))) {
    throw new Error(`not a request object: ${sent}`)
  }
  const url = config.par
    ? await oidc.buildAuthorizationUrlWithPAR(server, sent)
    : oidc.buildAuthorizationUrl(server, sent)
  if (config.par && (!url.searchParams.has('request_uri') || url.searchParams.has('scope'))) {
    throw new Error(`not a pushed authorization URL: ${url.href}`)
  }
  emit({ authorize: url.href })

  // The browser's arrival at the redirect URI: a GET with the query, or (form_post) a POST.
  const arrival = JSON.parse(await lines.next())
  const callback =
    arrival.method === 'POST'
      ? new Request(arrival.url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: arrival.body,
        })
      : new URL(arrival.url)

  // DPoP (RFC 9449): the library signs the proofs, retries on use_dpop_nonce, and sends
  // DPoP-bound tokens with the DPoP scheme.
  const options = config.dpop
    ? { DPoP: oidc.getDPoPHandle(server, await oidc.randomDPoPKeyPair('ES256')) }
    : undefined
  const tokens = await oidc.authorizationCodeGrant(
    server,
    callback,
    {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
      idTokenExpected: true,
    },
    undefined,
    options,
  )
  const claims = tokens.claims()
  // fetchUserInfo checks that the userinfo `sub` is the ID token's.
  const userinfo = await oidc.fetchUserInfo(server, tokens.access_token, claims.sub, options)

  const refreshed = await oidc.refreshTokenGrant(server, tokens.refresh_token, undefined, options)
  const refreshedClaims = refreshed.claims()

  const logoutState = oidc.randomState()
  const logout = oidc.buildEndSessionUrl(server, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
    post_logout_redirect_uri: config.post_logout_redirect_uri,
    state: logoutState,
  })
  emit({
    result: {
      id_token_claims: claims,
      userinfo,
      refreshed_id_token_claims: refreshedClaims ?? null,
      access_token_changed: refreshed.access_token !== tokens.access_token,
      token_type: tokens.token_type,
      refreshed_token_type: refreshed.token_type,
      logout_url: logout.href,
      logout_state: logoutState,
    },
  })
}

// One line at a time from stdin, without buffering past what is asked for.
function lineReader() {
  const rl = createInterface({ input: process.stdin })
  const it = rl[Symbol.asyncIterator]()
  return {
    async next() {
      const { value, done } = await it.next()
      if (done) throw new Error('stdin closed before the test answered')
      return value
    },
    close() {
      rl.close()
    },
  }
}

const arg = process.argv[2]
try {
  if (arg === 'keygen') {
    await keygen()
  } else {
    const lines = lineReader()
    await flow(JSON.parse(arg), lines)
    lines.close()
  }
} catch (err) {
  const cause = err?.cause ? ` (cause: ${JSON.stringify(err.cause)})` : ''
  emit({ error: `${err?.name ?? 'Error'}: ${err?.message ?? err}${err?.code ? ` [${err.code}]` : ''}${cause}` })
  process.exitCode = 1
}
