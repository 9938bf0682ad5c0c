//! A user's OpenID Connect claims (issue 16) on the real binary: set with `latchkey user add`
//! and changed with `latchkey user update` (flags, a JSON file, `--unset`), shown by
//! `latchkey user show`, and the same through `GET`/`PATCH /admin/users/{username}`; invalid
//! claims are refused with the claim named and nothing stored, and the audit log names the
//! claims that changed, never their values.

mod common;

use common::{Server, cli, cli_outcome, data_dir};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-claims-tests-0123456789";

/// `latchkey user show USERNAME`, parsed.
fn show(dir: &std::path::Path, username: &str) -> Value {
    serde_json::from_str(&cli(dir, &["user", "show", username], None)).expect("JSON output")
}

#[test]
fn claims_are_set_changed_and_shown_from_the_cli() {
    let dir = data_dir();
    let file = dir.path().join("claims.json");
    std::fs::write(
        &file,
        r#"{"address":{"locality":"Zürich","country":"CH"},"birthdate":"0000-04-01",
            "nickname":"Zo"}"#,
    )
    .expect("write claims file");
    cli(
        dir.path(),
        &[
            "user",
            "add",
            "zoe",
            "--password-stdin",
            "--name",
            "Zoë Müller",
            "--email",
            "zoe@example.com",
            "--email-verified",
            "true",
            "--claims-json",
            file.to_str().expect("utf-8 path"),
        ],
        Some("zoe-password\n"),
    );
    let user = show(dir.path(), "zoe");
    assert_eq!(user["username"], "zoe");
    assert_eq!(
        user["claims"],
        json!({"name": "Zoë Müller", "email": "zoe@example.com", "email_verified": true,
               "nickname": "Zo", "birthdate": "0000-04-01",
               "address": {"locality": "Zürich", "country": "CH"}})
    );

    cli(
        dir.path(),
        &[
            "user",
            "update",
            "zoe",
            "--unset",
            "nickname",
            "--phone",
            "+41 44 668 18 00",
            "--locale",
            "de-CH",
        ],
        None,
    );
    let claims = &show(dir.path(), "zoe")["claims"];
    assert_eq!(claims.get("nickname"), None);
    assert_eq!(claims["phone_number"], "+41 44 668 18 00");
    assert_eq!(claims["locale"], "de-CH");
    assert_eq!(claims["email"], "zoe@example.com", "the others stay");

    // Refusals name the claim and store nothing.
    let before = show(dir.path(), "zoe");
    let cases: [(&[&str], &str); 5] = [
        (&["user", "update", "zoe", "--email", "zoe"], "email"),
        (&["user", "update", "zoe", "--locale", "de CH!"], "locale"),
        (
            &["user", "update", "zoe", "--picture", "file:///etc/passwd"],
            "picture",
        ),
        (&["user", "update", "zoe", "--unset", "sub"], "sub"),
        (&["user", "update", "nobody", "--name", "N"], "nobody"),
    ];
    for (args, named) in cases {
        let (ok, _, stderr) = cli_outcome(dir.path(), args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(show(dir.path(), "zoe"), before);
    let (ok, _, stderr) = cli_outcome(
        dir.path(),
        &["user", "add", "yan", "--password-stdin", "--birthdate-typo"],
    );
    assert!(!ok && stderr.contains("--birthdate-typo"), "{stderr}");
    let listed = cli(dir.path(), &["user", "list"], None);
    assert!(!listed.contains("yan"));
}

/// Calls the admin API; returns the status and the JSON body (`null` when there is none).
async fn admin_call(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn claims_are_set_shown_and_patched_through_the_admin_api() {
    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    use reqwest::Method;

    let (status, created) = admin_call(
        &admin,
        Method::POST,
        "/admin/users",
        Some(json!({"username": "ana", "password": "ana-password",
                    "claims": {"email": "ana@example.com", "email_verified": false,
                               "zoneinfo": "Europe/Lisbon"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["claims"]["zoneinfo"], "Europe/Lisbon");
    let (status, bad) = admin_call(
        &admin,
        Method::POST,
        "/admin/users",
        Some(json!({"username": "bea", "password": "p", "claims": {"email": "bea"}})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = admin_call(&admin, Method::GET, "/admin/users/bea", None).await;
    assert_eq!(status, 404, "an invalid claim adds no user");

    let (status, patched) = admin_call(
        &admin,
        Method::PATCH,
        "/admin/users/ana",
        Some(json!({"claims": {"email_verified": true, "zoneinfo": null,
                               "address": {"country": "PT"}, "name": "Ana Sousa"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let expected = json!({"email": "ana@example.com", "email_verified": true,
                          "address": {"country": "PT"}, "name": "Ana Sousa"});
    assert_eq!(patched["claims"], expected);
    let (status, shown) = admin_call(&admin, Method::GET, "/admin/users/ana", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["claims"], expected);
    assert_eq!(shown["subject"], created["subject"]);

    // Every refusal is a 400 naming what is wrong, and changes nothing.
    let refusals = [
        (json!({"claims": {"sub": "other"}}), "sub"),
        (json!({"claims": {"emial": "a@b.example"}}), "emial"),
        (json!({"claims": {"email": "not an address"}}), "email"),
        (json!({"claims": {"birthdate": "1990-02-30"}}), "birthdate"),
        (
            json!({"claims": {"website": "javascript:alert(1)"}}),
            "website",
        ),
        (
            json!({"claims": {"phone_number_verified": "yes"}}),
            "boolean",
        ),
        (
            json!({"claims": {"address": {"city": "Porto"}}}),
            "address.city",
        ),
        (json!({"claims": ["email"]}), "claims"),
        (json!({"password": "x"}), "password"),
    ];
    for (body, named) in refusals {
        let (status, answer) = admin_call(
            &admin,
            Method::PATCH,
            "/admin/users/ana",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message}");
    }
    let (_, shown) = admin_call(&admin, Method::GET, "/admin/users/ana", None).await;
    assert_eq!(shown["claims"], expected);
    for method in [Method::GET, Method::PATCH] {
        let (status, _) = admin_call(
            &admin,
            method.clone(),
            "/admin/users/nobody",
            Some(json!({"claims": {}})),
        )
        .await;
        assert_eq!(status, 404, "{method}");
    }
    let (status, listed) = admin_call(&admin, Method::GET, "/admin/users", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["claims"], expected);

    let doc: Value = reqwest::get(format!("{admin}/openapi.json"))
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let item = &doc["paths"]["/admin/users/{username}"];
    for method in ["get", "patch", "delete"] {
        assert!(item.get(method).is_some(), "{method} not documented");
    }

    // The audit log names the claims that changed, never their values.
    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let updated = log
        .lines()
        .find(|l| l.contains("user_updated"))
        .expect("update audited");
    assert!(
        updated.contains("email_verified") && updated.contains("zoneinfo"),
        "{updated}"
    );
    for personal in ["ana@example.com", "Ana Sousa", "Europe/Lisbon", "PT\""] {
        assert!(!log.contains(personal), "{personal} reached the log");
    }
}
