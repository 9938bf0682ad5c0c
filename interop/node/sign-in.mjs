// Sign in with Latchkey: the smallest OpenID Connect web app, on openid-client.
//   ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... node sign-in.mjs
// then open http://127.0.0.1:3000/ (the README's "Sign in with Latchkey"; run by
// crates/latchkey-server/tests/oidc_interop_node.rs).
import * as oidc from 'openid-client'
import { createServer } from 'node:http'

const issuer = new URL(process.env.ISSUER ?? 'http://127.0.0.1:8080')
const insecure = issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}
const config = await oidc.discovery(issuer, process.env.CLIENT_ID, process.env.CLIENT_SECRET, undefined, insecure)
const logins = new Map() // state -> what this login must come back with

const app = createServer(async (req, res) => {
  const base = `http://127.0.0.1:${app.address().port}`
  const url = new URL(req.url, base)
  try {
    if (url.pathname === '/') {
      const login = { verifier: oidc.randomPKCECodeVerifier(), nonce: oidc.randomNonce(), state: oidc.randomState() }
      logins.set(login.state, login)
      const to = oidc.buildAuthorizationUrl(config, {
        redirect_uri: `${base}/callback`, scope: 'openid profile email', state: login.state, nonce: login.nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(login.verifier), code_challenge_method: 'S256',
      })
      res.writeHead(303, { location: to.href }).end()
    } else if (url.pathname === '/callback' && logins.has(url.searchParams.get('state'))) {
      const login = logins.get(url.searchParams.get('state'))
      logins.delete(login.state)
      const tokens = await oidc.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state,
      })
      const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id_token: tokens.claims(), userinfo }, null, 2))
    } else {
      res.writeHead(404).end('not found\n')
    }
  } catch (err) {
    res.writeHead(502, { 'content-type': 'text/plain' }).end(`sign-in failed: ${err}\n`)
  }
})
app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`Open http://127.0.0.1:${app.address().port}/ in a browser.`)
})
