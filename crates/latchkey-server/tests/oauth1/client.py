"""A third-party OAuth 1.0a consumer (requests-oauthlib) against a running Latchkey.

Runs the three-legged flow (the resource owner's part through the login and consent
pages), calls the protected resource, then tries what must be refused. Prints one JSON
object of observations for the Rust test to check. When a step fails, the object also has
`failed_step`, `error` and `last_response` (method, URL, status, headers and body of the
last answer seen), and the exit status is 1.

usage: client.py BASE CONSUMER_KEY CONSUMER_SECRET USERNAME PASSWORD CALLBACK
                 RSA_CONSUMER_KEY RSA_PRIVATE_KEY_FILE
"""

import json
import re
import sys
import urllib.parse

import requests
from oauthlib.oauth1 import SIGNATURE_PLAINTEXT, SIGNATURE_RSA
from requests_oauthlib import OAuth1, OAuth1Session

base, key, secret, username, password, callback, rsa_key_id, rsa_key_file = sys.argv[1:9]
out = {}
current = {"step": "start"}
last = {}
# Generous: no request here takes more than a fraction of a second on an idle machine; a
# server that stops answering fails the step that waited instead of hanging the test.
TIMEOUT = 120
_send = requests.Session.send


def send(session, request, **kwargs):
    """Every request (sessions and requests.get alike): a timeout, and the answer kept."""
    kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT
    last.clear()
    last.update(step=current["step"], method=request.method, url=request.url)
    response = _send(session, request, **kwargs)
    last.update(
        status=response.status_code,
        headers=dict(response.headers),
        body=response.text[:2000],
    )
    return response


requests.Session.send = send


def step(name):
    current["step"] = name


def field(html, name):
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not match:
        raise SystemExit("no field %s in page: %s" % (name, html[:500]))
    return (
        match.group(1)
        .replace("&amp;", "&")
        .replace("&quot;", '"')
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )


def problem(response):
    return dict(urllib.parse.parse_qsl(response.text)).get("oauth_problem")


# Leg 2: the resource owner logs in and approves, in a browser-like session.
def approve(consumer, note):
    step(note + "leg 2: authorization page")
    browser = requests.Session()
    page = browser.get(consumer.authorization_url(base + "/oauth1/authorize"))
    out[note + "login_status"] = page.status_code
    step(note + "leg 2: login")
    answer = browser.post(
        base + "/oauth1/login",
        data={
            "csrf_token": field(page.text, "csrf_token"),
            "request": field(page.text, "request"),
            "username": username,
            "password": password,
        },
        allow_redirects=False,
    )
    step(note + "leg 2: consent page")
    page = browser.get(base + answer.headers["location"])
    out[note + "consent_status"] = page.status_code
    out[note + "consent_shows_realm"] = "<code>photos</code>" in page.text
    step(note + "leg 2: approve")
    answer = browser.post(
        base + "/oauth1/authorize",
        data={
            "csrf_token": field(page.text, "csrf_token"),
            "request": field(page.text, "request"),
            "decision": "allow",
        },
        allow_redirects=False,
    )
    redirect = answer.headers["location"]
    out[note + "redirected_to_callback"] = redirect.startswith(callback)
    consumer.parse_authorization_response(redirect)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["oauth_verifier"]



def flow():
    """The whole run; `step` names the part under way."""
    # Leg 1: temporary credentials.
    step("leg 1: request token")
    consumer = OAuth1Session(key, client_secret=secret, callback_uri=callback)
    request_token = consumer.fetch_request_token(base + "/oauth1/request_token", realm=["photos"])
    out["callback_confirmed"] = request_token.get("oauth_callback_confirmed")

    verifier = approve(consumer, "")

    # Leg 3: token credentials.
    step("leg 3: access token")
    access = consumer.fetch_access_token(base + "/oauth1/access_token")
    token, token_secret = access["oauth_token"], access["oauth_token_secret"]

    # The protected resource, with a signed query and a signed form body.
    step("resource: signed query")
    resource = consumer.get(base + "/api/photos?size=original")
    out["resource_status"] = resource.status_code
    out["resource"] = resource.json() if resource.status_code == 200 else resource.text
    step("resource: signed form body")
    posted = consumer.post(base + "/api/photos", data={"caption": "a b+c & ünïcode"})
    out["form_post_status"] = posted.status_code

    # Refusals.
    step("refusal: reused verifier")
    reuse = requests.post(
        base + "/oauth1/access_token",
        auth=OAuth1(
            key,
            secret,
            request_token["oauth_token"],
            request_token["oauth_token_secret"],
            verifier=verifier,
        ),
    )
    out["reused_verifier"] = [reuse.status_code, problem(reuse)]

    step("refusal: replayed nonce")
    signed = requests.Request(
        "GET", base + "/api/photos", auth=OAuth1(key, secret, token, token_secret)
    ).prepare()
    first = requests.Session().send(signed)
    replay = requests.Session().send(signed)
    out["replay"] = [first.status_code, replay.status_code, problem(replay)]

    step("refusal: bad signature")
    forged = requests.get(base + "/api/photos", auth=OAuth1(key, "wrong-secret", token, token_secret))
    out["bad_signature"] = [forged.status_code, problem(forged), forged.headers.get("www-authenticate")]

    step("refusal: PLAINTEXT over HTTP")
    plain = requests.get(
        base + "/api/photos",
        auth=OAuth1(key, secret, token, token_secret, signature_method=SIGNATURE_PLAINTEXT),
    )
    out["plaintext_over_http"] = [plain.status_code, problem(plain)]

    step("refusal: unknown consumer")
    unknown = requests.get(base + "/api/photos", auth=OAuth1("nobody", secret, token, token_secret))
    out["unknown_consumer"] = [unknown.status_code, problem(unknown)]

    step("refusal: missing realm")
    other_realm = consumer.get(base + "/api/profile")
    out["missing_realm"] = [other_realm.status_code, problem(other_realm)]

    step("refusal: revoked token")
    revoked = requests.post(base + "/oauth1/revoke", auth=OAuth1(key, secret, token, token_secret))
    after = consumer.get(base + "/api/photos")
    out["revoked"] = [revoked.status_code, after.status_code, problem(after)]

    # The same flow for a consumer that signs with RSA-SHA1 under a legacy 1024-bit key.
    with open(rsa_key_file) as f:
        rsa_private_key = f.read()
    rsa = OAuth1Session(
        rsa_key_id,
        signature_method=SIGNATURE_RSA,
        rsa_key=rsa_private_key,
        callback_uri=callback,
    )
    step("rsa_leg 1: request token")
    rsa.fetch_request_token(base + "/oauth1/request_token?scope=photos")
    approve(rsa, "rsa_")
    step("rsa_leg 3: access token")
    rsa.fetch_access_token(base + "/oauth1/access_token")
    step("rsa_resource")
    rsa_resource = rsa.get(base + "/api/photos")
    out["rsa_resource_status"] = rsa_resource.status_code
    # Handed to the test, which revokes it with `latchkey token revoke` (a throwaway test token).
    out["rsa_access_token"] = rsa.token["oauth_token"]
    # An HMAC signature from the RSA consumer is refused: it signs with its key.
    rsa_token = rsa.token
    step("rsa_refusal: HMAC from an RSA consumer")
    hmac_from_rsa = requests.get(
        base + "/api/photos",
        auth=OAuth1(rsa_key_id, "", rsa_token["oauth_token"], rsa_token["oauth_token_secret"]),
    )
    out["rsa_consumer_hmac"] = [hmac_from_rsa.status_code, problem(hmac_from_rsa)]


try:
    flow()
except BaseException as err:  # SystemExit from field() too: report, then fail
    out["failed_step"] = current["step"]
    out["error"] = "%s: %s" % (type(err).__name__, err)
    out["last_response"] = last
    print(json.dumps(out))
    sys.exit(1)
print(json.dumps(out))
