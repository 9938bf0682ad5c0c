//! Tests of [`UserClaims`]: what is accepted, what is refused and why, merge patches.

use super::*;
use serde_json::json;

fn patch(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(members) => members,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn valid_claims_are_accepted_as_given() {
    let text = r#"{
        "name": "Jane Q. Doe", "given_name": "Jane", "family_name": "Doe",
        "middle_name": "Quinn", "nickname": "JD", "preferred_username": "j.doe",
        "profile": "https://example.com/jane", "picture": "http://img.example.com/j.png",
        "website": "https://jane.example", "email": "jane.doe+id@mail.example.co.uk",
        "email_verified": true, "gender": "female", "birthdate": "0000-02-29",
        "zoneinfo": "America/Los_Angeles", "locale": "en-US",
        "phone_number": "+1 (425) 555-1212;ext=5678", "phone_number_verified": false,
        "address": {"formatted": "1 Main St\nAnytown", "street_address": "1 Main St",
                    "locality": "Anytown", "region": "CA", "postal_code": "90210",
                    "country": "US"},
        "updated_at": 1311280970
    }"#;
    let claims = UserClaims::from_json(text).expect("valid");
    assert_eq!(claims.birthdate.as_deref(), Some("0000-02-29"));
    assert_eq!(claims.phone_number_verified, Some(false));
    assert_eq!(
        claims.address.as_ref().and_then(|a| a.locality.as_deref()),
        Some("Anytown")
    );
    // Every standard claim is set, and released as given.
    assert_eq!(
        Value::Object(claims.to_map()),
        serde_json::from_str::<Value>(text).expect("json")
    );
    for ok in ["1987", "2000-02-29", "1999-12-31"] {
        UserClaims::from_json(&json!({ "birthdate": ok }).to_string()).expect(ok);
    }
    for ok in ["UTC", "Etc/GMT+2", "America/Argentina/Buenos_Aires"] {
        UserClaims::from_json(&json!({ "zoneinfo": ok }).to_string()).expect(ok);
    }
    for ok in ["fr", "en_US", "zh-Hant-TW", "sr-Latn-RS"] {
        UserClaims::from_json(&json!({ "locale": ok }).to_string()).expect(ok);
    }
}

#[test]
fn invalid_claims_are_refused_naming_the_claim() {
    let long = "x".repeat(257);
    let long_url = format!("https://example.com/{}", "p".repeat(2048));
    let cases: [(Value, &str); 30] = [
        (json!({"name": ""}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"nickname": long}), "nickname"),
        (json!({"given_name": "Bob\u{7}"}), "given_name"),
        (json!({"family_name": "a\nb"}), "family_name"),
        (json!({"profile": "example.com/jane"}), "profile"),
        (json!({"picture": "javascript:alert(1)"}), "picture"),
        (json!({"website": "ftp://example.com/"}), "website"),
        (json!({"website": long_url}), "website"),
        (json!({"email": "jane"}), "email"),
        (json!({"email": "jane@localhost"}), "email"),
        (json!({"email": "ja ne@example.com"}), "email"),
        (json!({"email": "a@b@example.com"}), "email"),
        (json!({"email": ".jane@example.com"}), "email"),
        (json!({"email": "jane@-example.com"}), "email"),
        (json!({"birthdate": "1990-13-01"}), "birthdate"),
        (json!({"birthdate": "1990-02-29"}), "birthdate"),
        (json!({"birthdate": "1990-04-31"}), "birthdate"),
        (json!({"birthdate": "90-01-01"}), "birthdate"),
        (json!({"birthdate": "0000"}), "birthdate"),
        (json!({"birthdate": "1990/01/01"}), "birthdate"),
        (json!({"zoneinfo": "Europe/../etc"}), "zoneinfo"),
        (json!({"zoneinfo": "Paris Time"}), "zoneinfo"),
        (json!({"locale": "english!"}), "locale"),
        (json!({"locale": "e-US"}), "locale"),
        (json!({"phone_number": "call me"}), "phone_number"),
        (json!({"phone_number": "+1 555;ext=abc"}), "phone_number"),
        (json!({"phone_number": "555 +1"}), "phone_number"),
        (json!({"address": {"locality": "A\nB"}}), "address.locality"),
        (json!({"updated_at": -1}), "updated_at"),
    ];
    for (value, claim) in cases {
        match UserClaims::from_json(&value.to_string()) {
            Err(ClaimsError::Invalid { claim: named, .. }) => assert_eq!(named, claim, "{value}"),
            other => panic!("{value}: expected Invalid({claim}), got {other:?}"),
        }
    }
}

#[test]
fn malformed_or_unknown_claims_are_refused() {
    let too_long = format!(r#"{{"name":"{}"}}"#, " ".repeat(MAX_JSON_BYTES));
    let cases: [(&str, ClaimsError); 7] = [
        ("{", ClaimsError::Malformed(String::new())),
        ("[]", ClaimsError::NotAnObject),
        (r#"{"sub":"u-1"}"#, ClaimsError::Unknown("sub".into())),
        (
            r#"{"e_mail":"a@b.c"}"#,
            ClaimsError::Unknown("e_mail".into()),
        ),
        (
            r#"{"address":{"city":"Paris"}}"#,
            ClaimsError::Unknown("address.city".into()),
        ),
        (
            r#"{"email_verified":"yes"}"#,
            ClaimsError::Malformed(String::new()),
        ),
        (
            &too_long,
            ClaimsError::TooLarge {
                bytes: too_long.len(),
            },
        ),
    ];
    for (text, expected) in cases {
        let err = UserClaims::from_json(text).expect_err(text);
        match (&err, &expected) {
            (ClaimsError::Malformed(_), ClaimsError::Malformed(_)) => {}
            _ => assert_eq!(err, expected, "{text}"),
        }
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn a_merge_patch_sets_replaces_and_removes_claims() {
    let claims = UserClaims::from_json(
        r#"{"name":"Jane","email":"jane@example.com","email_verified":true,
            "address":{"locality":"Paris","country":"FR"}}"#,
    )
    .expect("valid");
    let changed = claims
        .merge(&patch(json!({
            "name": "Jane Doe",
            "email_verified": null,
            "locale": "fr-FR",
            "address": {"locality": null, "postal_code": "75001"}
        })))
        .expect("valid patch");
    assert_eq!(
        Value::Object(changed.to_map()),
        json!({"name": "Jane Doe", "email": "jane@example.com", "locale": "fr-FR",
               "address": {"country": "FR", "postal_code": "75001"}})
    );
    // An address left with no member is no address.
    let cleared = changed
        .merge(&patch(
            json!({"address": {"country": null, "postal_code": null}}),
        ))
        .expect("valid");
    assert_eq!(cleared.get("address"), None);
    // An invalid patch changes nothing and says why.
    let err = claims
        .merge(&patch(json!({"email": "not-an-address"})))
        .expect_err("invalid");
    assert!(matches!(err, ClaimsError::Invalid { ref claim, .. } if claim == "email"));
    assert_eq!(claims.email.as_deref(), Some("jane@example.com"));
    // Removing everything leaves nothing to store.
    let empty = claims
        .merge(&patch(
            json!({"name": null, "email": null, "email_verified": null,
                             "address": null}),
        ))
        .expect("valid");
    assert!(empty.is_empty());
}

#[test]
fn release_returns_only_the_named_claims_that_are_set() {
    let claims =
        UserClaims::from_json(r#"{"email":"a@b.example","email_verified":false,"locale":"de"}"#)
            .expect("valid");
    let released = claims.release(["email", "email_verified", "name", "sub", "groups"]);
    assert_eq!(
        Value::Object(released),
        json!({"email": "a@b.example", "email_verified": false})
    );
}

#[test]
fn debug_names_claims_but_never_shows_their_values() {
    let claims =
        UserClaims::from_json(r#"{"email":"secret.person@example.com","birthdate":"1970"}"#)
            .expect("valid");
    let shown = format!("{claims:?}");
    assert!(
        shown.contains("email") && shown.contains("birthdate"),
        "{shown}"
    );
    assert!(
        !shown.contains("secret.person") && !shown.contains("1970"),
        "{shown}"
    );
}

#[test]
fn language_tagged_claims_are_kept_validated_and_patched() {
    let claims = UserClaims::from_json(
        r#"{"name":"John Smith","name#fr":"Jean Dupont","family_name#ja-Kana-JP":"スミス",
            "website#de":"https://example.de/"}"#,
    )
    .expect("valid");
    assert_eq!(claims.localized.len(), 3);
    assert_eq!(claims.get("name#FR"), Some(json!("Jean Dupont")));
    assert_eq!(claims.get("name#de"), None);
    assert_eq!(
        Value::Object(claims.to_map()),
        json!({"name":"John Smith","name#fr":"Jean Dupont",
               "family_name#ja-Kana-JP":"スミス","website#de":"https://example.de/"})
    );
    // Stored as one JSON object, read back the same.
    let stored = serde_json::to_string(&claims).expect("serializes");
    assert_eq!(
        serde_json::from_str::<UserClaims>(&stored).expect("reads"),
        claims
    );
    let patched = claims
        .merge(&patch(json!({"name#fr": null, "name#it": "Giovanni"})))
        .expect("valid");
    assert_eq!(patched.get("name#fr"), None);
    assert_eq!(patched.get("name#it"), Some(json!("Giovanni")));
    assert!(!format!("{patched:?}").contains("Giovanni"));
    let cases: [(Value, &str); 6] = [
        (json!({"email#fr": "a@b.example"}), "not localizable"),
        (json!({"address#fr": "x"}), "not localizable"),
        (json!({"name#": "x"}), "empty tag"),
        (json!({"name#f!": "x"}), "bad tag"),
        (json!({"name#fr": 1}), "not a string"),
        (json!({"website#de": "not a url"}), "bad url"),
    ];
    for (value, what) in cases {
        assert!(
            UserClaims::from_json(&value.to_string()).is_err(),
            "{what}: {value}"
        );
    }
    let many: Map<String, Value> = (0..=MAX_LOCALIZED)
        .map(|i| (format!("name#x-{i}"), json!("n")))
        .collect();
    assert!(UserClaims::new().merge(&many).is_err(), "too many variants");
}

#[test]
fn claims_locales_choose_the_variant_released_under_the_plain_name() {
    let claims = UserClaims::from_json(
        r#"{"name":"John Smith","name#fr":"Jean Dupont","name#fr-CA":"Jean Tremblay",
            "given_name#de":"Johann","nickname":"JS"}"#,
    )
    .expect("valid");
    let locales = |list: &[&str]| list.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    let cases: [(&[&str], &[&str], Value); 8] = [
        (&[], &["name"], json!({"name": "John Smith"})),
        (&["fr"], &["name"], json!({"name": "Jean Dupont"})),
        (
            &["fr-CA", "fr"],
            &["name"],
            json!({"name": "Jean Tremblay"}),
        ),
        // No fr-BE variant: its language, fr, is next best.
        (&["fr-BE"], &["name"], json!({"name": "Jean Dupont"})),
        // The first locale the record holds wins; an unknown one is skipped.
        (
            &["es", "de", "fr"],
            &["name", "given_name"],
            json!({"name": "Jean Dupont", "given_name": "Johann"}),
        ),
        // A claim with no variant in any locale: its plain value, or nothing.
        (
            &["de"],
            &["name", "nickname", "family_name"],
            json!({"name": "John Smith", "given_name": null, "nickname": "JS"}),
        ),
        // A tagged name asked for is released as it is.
        (
            &["de"],
            &["name#fr", "name#it"],
            json!({"name#fr": "Jean Dupont"}),
        ),
        (&["FR"], &["name"], json!({"name": "Jean Dupont"})),
    ];
    for (prefs, names, expected) in cases {
        let mut expected = expected;
        if let Value::Object(map) = &mut expected {
            map.retain(|_, v| !v.is_null());
        }
        assert_eq!(
            Value::Object(claims.release_localized(names.iter().copied(), &locales(prefs))),
            expected,
            "{prefs:?} {names:?}"
        );
    }
}
