//! Every malformed token request gets its RFC 6749 error and status over real HTTP; none
//! gets a 500 or kills the server.

mod common;

use common::{PASSWORD_GRANT, Server, add_user, create_client, data_dir};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    auth: Auth,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
}

enum Auth {
    None,
    Good,
    Raw(&'static str),
    WrongSecret,
    UnknownClient,
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn case(name: &'static str, auth: Auth, body: &str, status: u16, error: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: "/token",
        content_type: FORM,
        auth,
        body: body.as_bytes().to_vec(),
        status,
        error,
    }
}

fn cases() -> Vec<Case> {
    let pw = "grant_type=password&username=erin&password=pw-of-erin";
    vec![
        Case {
            method: "GET",
            ..case("wrong method", Auth::Good, "", 405, "invalid_request")
        },
        Case {
            method: "PUT",
            ..case("PUT method", Auth::Good, pw, 405, "invalid_request")
        },
        Case {
            content_type: Some("application/json"),
            ..case(
                "JSON body",
                Auth::Good,
                "{\"grant_type\":\"password\"}",
                400,
                "invalid_request",
            )
        },
        Case {
            content_type: None,
            ..case("no content type", Auth::Good, pw, 400, "invalid_request")
        },
        case(
            "missing grant_type",
            Auth::Good,
            "username=erin&password=pw-of-erin",
            400,
            "invalid_request",
        ),
        case(
            "duplicated grant_type",
            Auth::Good,
            "grant_type=password&grant_type=password&username=erin&password=pw-of-erin",
            400,
            "invalid_request",
        ),
        case(
            "duplicated username",
            Auth::Good,
            "grant_type=password&username=erin&username=erin&password=pw-of-erin",
            400,
            "invalid_request",
        ),
        case(
            "missing username",
            Auth::Good,
            "grant_type=password&password=pw-of-erin",
            400,
            "invalid_request",
        ),
        case(
            "missing password",
            Auth::Good,
            "grant_type=password&username=erin",
            400,
            "invalid_request",
        ),
        case(
            "empty password counts as missing",
            Auth::Good,
            "grant_type=password&username=erin&password=",
            400,
            "invalid_request",
        ),
        case(
            "missing refresh_token",
            Auth::Good,
            "grant_type=refresh_token",
            400,
            "invalid_request",
        ),
        case(
            "unknown grant type",
            Auth::Good,
            "grant_type=urn:example:magic",
            400,
            "unsupported_grant_type",
        ),
        case(
            "undecodable Basic header",
            Auth::Raw("Basic %%%not-base64"),
            pw,
            401,
            "invalid_client",
        ),
        case(
            "Basic without colon",
            Auth::Raw("Basic YWJj"),
            pw,
            401,
            "invalid_client",
        ),
        case(
            "non-Basic scheme",
            Auth::Raw("Digest username=x"),
            pw,
            401,
            "invalid_client",
        ),
        case(
            "unknown client",
            Auth::UnknownClient,
            pw,
            401,
            "invalid_client",
        ),
        case("wrong secret", Auth::WrongSecret, pw, 401, "invalid_client"),
        case(
            "no client authentication",
            Auth::None,
            pw,
            401,
            "invalid_client",
        ),
        case(
            "unknown client by post",
            Auth::None,
            "grant_type=client_credentials&client_id=nobody&client_secret=x",
            401,
            "invalid_client",
        ),
        case(
            "secret without client_id",
            Auth::None,
            "grant_type=client_credentials&client_secret=x",
            400,
            "invalid_request",
        ),
        case(
            "two authentication methods",
            Auth::Good,
            "grant_type=client_credentials&client_secret=x",
            400,
            "invalid_request",
        ),
        case(
            "wrong password",
            Auth::Good,
            "grant_type=password&username=erin&password=wrong",
            400,
            "invalid_grant",
        ),
        case(
            "unknown user",
            Auth::Good,
            "grant_type=password&username=mallory&password=x",
            400,
            "invalid_grant",
        ),
        case(
            "unknown scope",
            Auth::Good,
            "grant_type=client_credentials&scope=read+superuser",
            400,
            "invalid_scope",
        ),
        case(
            "malformed scope",
            Auth::Good,
            "grant_type=client_credentials&scope=%22quoted%22",
            400,
            "invalid_scope",
        ),
        case(
            "bogus refresh token",
            Auth::Good,
            "grant_type=refresh_token&refresh_token=not-a-token",
            400,
            "invalid_grant",
        ),
        case(
            "implicit is not a token grant",
            Auth::Good,
            "grant_type=implicit",
            400,
            "unsupported_grant_type",
        ),
        Case {
            body: vec![b'g', b'=', 0xff, 0xfe],
            ..case("body not UTF-8", Auth::Good, "", 400, "invalid_request")
        },
        Case {
            body: vec![b'a'; 200 * 1024],
            ..case("oversized body", Auth::Good, "", 413, "invalid_request")
        },
        Case {
            path: "/token?client_secret=leak",
            ..case(
                "secret in query",
                Auth::None,
                "grant_type=client_credentials",
                400,
                "invalid_request",
            )
        },
    ]
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_errors_never_500() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read write",
        ],
    );
    add_user(dir.path(), "erin", "pw-of-erin");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let wrong = common::CliClient {
        id: client.id.clone(),
        secret: "wrong-secret".into(),
    };
    let unknown = common::CliClient {
        id: "no-such-client".into(),
        secret: client.secret.clone(),
    };
    let mut failures = Vec::new();
    for c in cases() {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut req = http
            .request(method, server.url(c.path))
            .body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let auth = match &c.auth {
            Auth::None => None,
            Auth::Good => Some(client.basic()),
            Auth::Raw(raw) => Some((*raw).to_owned()),
            Auth::WrongSecret => Some(wrong.basic()),
            Auth::UnknownClient => Some(unknown.basic()),
        };
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("server answers");
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").cloned();
        let no_store = resp
            .headers()
            .get("cache-control")
            .is_some_and(|v| v == "no-store");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status != c.status || body["error"] != c.error {
            failures.push(format!(
                "{}: expected {} {}, got {status} {body}",
                c.name, c.status, c.error
            ));
        }
        if status == 401 && challenge.is_none() {
            failures.push(format!("{}: 401 without WWW-Authenticate", c.name));
        }
        if !no_store {
            failures.push(format!(
                "{}: error response without Cache-Control: no-store",
                c.name
            ));
        }
        if !body["error_description"].is_string() {
            failures.push(format!("{}: no error_description", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // After all of that, the server still serves.
    let (status, _, _) = common::post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200);
}
