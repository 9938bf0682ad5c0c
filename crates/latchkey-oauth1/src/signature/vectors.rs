//! Published test vectors, reproduced byte for byte.

use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn hmac_sha1(method: &str, url: &str, params: &[(&str, &str)], cs: &str, ts: &str) -> String {
    let base = base_string(method, url, &pairs(params)).expect("valid URI");
    SignatureMethod::HmacSha1
        .sign(&base, &Secrets::new(cs, ts))
        .expect("HMAC signs")
}

#[test]
fn rfc5849_section_1_2_temporary_credentials_request() {
    let sig = hmac_sha1(
        "POST",
        "https://photos.example.net/initiate",
        &[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131200"),
            ("oauth_nonce", "wIjqoS"),
            ("oauth_callback", "http://printer.example.com/ready"),
        ],
        "kd94hf93k423kf44",
        "",
    );
    assert_eq!(sig, "74KNZJeDHnMBp0EMJ9ZHt/XKycU=");
}

#[test]
fn rfc5849_section_1_2_token_credentials_request() {
    let sig = hmac_sha1(
        "POST",
        "https://photos.example.net/token",
        &[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "hh5s93j4hdidpola"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "walatlh"),
            ("oauth_verifier", "hfdp7dh39dks9884"),
        ],
        "kd94hf93k423kf44",
        "hdhd0244k9j7ao03",
    );
    assert_eq!(sig, "gKgrFCywp7rO0OXSjdot/IHF7IU=");
}

#[test]
fn rfc5849_section_1_2_protected_resource_request() {
    let sig = hmac_sha1(
        "GET",
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
        &[
            ("file", "vacation.jpg"),
            ("size", "original"),
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ],
        "kd94hf93k423kf44",
        "pfkkdhi9sl3r4s00",
    );
    assert_eq!(sig, "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
}

/// RFC 5849 §3.4.1.1: the example request, collected from query, header and body exactly as
/// a provider receives it.
#[test]
fn rfc5849_section_3_4_1_base_string_from_a_whole_request() {
    let header = AuthorizationHeader::parse(
        r#"OAuth realm="Example",
           oauth_consumer_key="9djdj82h48djs9d2",
           oauth_token="kkk9d7dh3k39sjv7",
           oauth_signature_method="HMAC-SHA1",
           oauth_timestamp="137131201",
           oauth_nonce="7d8f3e4a",
           oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#,
    )
    .expect("well-formed")
    .expect("OAuth scheme");
    let params = collect_parameters(
        "b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        Some(&header),
        Some(b"c2&a3=2+q"),
    );
    let base = base_string(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        &params,
    )
    .expect("valid URI");
    assert_eq!(
        base,
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
         %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
         key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
         ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
         9d7dh3k39sjv7"
    );
}

/// RFC 5849 §3.4.1.3.2: the normalised parameters of the same request.
#[test]
fn rfc5849_section_3_4_1_3_2_normalized_parameters() {
    let params = pairs(&[
        ("b5", "=%3D"),
        ("a3", "a"),
        ("c@", ""),
        ("a2", "r b"),
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
        ("c2", ""),
        ("a3", "2 q"),
    ]);
    assert_eq!(
        normalize_parameters(&params),
        "a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9dj\
         dj82h48djs9d2&oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1\
         &oauth_timestamp=137131201&oauth_token=kkk9d7dh3k39sjv7"
    );
}

/// Twitter's "Creating a signature" documentation example.
#[test]
fn twitter_documentation_example() {
    let params = collect_parameters(
        "include_entities=true",
        Some(&AuthorizationHeader {
            realm: None,
            params: pairs(&[
                ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
                ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "1318622958"),
                (
                    "oauth_token",
                    "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
                ),
                ("oauth_version", "1.0"),
            ]),
        }),
        Some(b"status=Hello%20Ladies%20%2b%20Gentlemen%2c%20a%20signed%20OAuth%20request%21"),
    );
    let base = base_string(
        "post",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        &params,
    )
    .expect("valid URI");
    assert_eq!(
        base,
        "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities\
         %3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabx\
         SWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D\
         1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth\
         _version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520sig\
         ned%2520OAuth%2520request%2521"
    );
    let secrets = Secrets::new(
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    );
    let sig = SignatureMethod::HmacSha1
        .sign(&base, &secrets)
        .expect("signs");
    assert_eq!(sig, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    assert!(SignatureMethod::HmacSha1.verify(&base, &sig, &VerifyKey::Secrets(secrets)));
    assert!(!SignatureMethod::HmacSha1.verify(
        &base,
        "hCtSmYh+iHYCEqBWrE7C7hYmtUs=",
        &VerifyKey::Secrets(secrets)
    ));
}

/// The public half of the 1024-bit RSA key in Google's signet test suite
/// (spec/signet/oauth_1/signature_methods/rsa_sha1_spec.rb), derived with `openssl pkey -pubout`.
const SIGNET_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0YjCwIfYoprq/FQO6lb3asXrx
LlJFuCvtinTF5p0GxvQGu5O3gYytUvtC2JlYzypSRjVxwxrsuRcP3e641SdASwfr
mzyvIgP08N4S0IFzEURkV1wp/IpH7kH41EtbmUmrXSwfNZsnQRE5SYSOhh+LcK2w
yQkdgcMv11l4KoBkcwIDAQAB
-----END PUBLIC KEY-----";

fn rsa_verify(url: &str, params: &[(&str, &str)], signature: &str) -> bool {
    let key = RsaPublicKey::from_pem(SIGNET_PUBLIC_KEY).expect("1024-bit key accepted");
    let base = base_string("GET", url, &pairs(params)).expect("valid URI");
    SignatureMethod::RsaSha1.verify(&base, signature, &VerifyKey::Rsa(&key))
}

const PHOTOS_RSA_PARAMS: [(&str, &str); 7] = [
    ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
    ("oauth_signature_method", "RSA-SHA1"),
    ("oauth_timestamp", "1196666512"),
    ("oauth_nonce", "13917289812797014437"),
    ("oauth_version", "1.0"),
    ("file", "vacaction.jpg"),
    ("size", "original"),
];
const PHOTOS_RSA_SIGNATURE: &str = "jvTp/wX1TYtByB1m+Pbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2/9n4s5wUmUl4aCI4BwpraNx4RtEXMe5qg5T1LVTGliMRpKasKsW//e+RinhejgCuzoH26dyF8iY2ZZ/5D1ilgeijhV/vBka5twt399mXwaYdCwFYE=";

#[test]
fn rsa_sha1_signet_vectors_verify_with_a_legacy_1024_bit_key() {
    assert!(rsa_verify(
        "http://photos.example.net/photos",
        &PHOTOS_RSA_PARAMS,
        PHOTOS_RSA_SIGNATURE
    ));
    assert!(rsa_verify(
        "http://term.ie/oauth/example/request_token.php",
        &[
            ("oauth_consumer_key", "key"),
            ("oauth_signature_method", "RSA-SHA1"),
            ("oauth_timestamp", "1377815426"),
            ("oauth_nonce", "c3839c47cb204a20e042b11a5cc9f971"),
            ("oauth_version", "1.0"),
        ],
        "P72T4RS8dVBneQPJSY71D3iLEjge2tiivxEasPVoaoDldDgPdwpQfhS1q0th19jB3B3+9P6tBWjpWaVPxrNZe3ssBCiwS/EmXZ/6VCJGU3YoDHMtz+0jCd36NjHj5I6TpLVQ8/rtfy6+EzpdUMz7ydnhKXYqJFPOWnNv8HM1W7I="
    ));
}

#[test]
fn rsa_sha1_refuses_a_changed_request_or_a_shared_secret() {
    let mut changed = PHOTOS_RSA_PARAMS;
    changed[6] = ("size", "large");
    assert!(!rsa_verify(
        "http://photos.example.net/photos",
        &changed,
        PHOTOS_RSA_SIGNATURE
    ));
    assert!(!rsa_verify(
        "http://photos.example.net/photos",
        &PHOTOS_RSA_PARAMS,
        "not base64!"
    ));
    let base = base_string("GET", "http://photos.example.net/photos", &[]).expect("valid");
    assert!(!SignatureMethod::RsaSha1.verify(
        &base,
        PHOTOS_RSA_SIGNATURE,
        &VerifyKey::Secrets(Secrets::new("a", "b"))
    ));
}

#[test]
fn rsa_keys_that_are_not_public_keys_are_refused() {
    assert_eq!(
        RsaPublicKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
        Err(SignatureError::BadKey)
    );
    assert_eq!(RsaPublicKey::from_der(b"junk"), Err(SignatureError::BadKey));
}

/// HMAC-SHA256 of the RFC 5849 §1.2 resource request, cross-checked with Python's `hmac`.
#[test]
fn hmac_sha256_signs_like_other_implementations() {
    let params = pairs(&[
        ("file", "vacation.jpg"),
        ("size", "original"),
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", "137131202"),
        ("oauth_nonce", "chapoH"),
    ]);
    let base = base_string("GET", "http://photos.example.net/photos", &params).expect("valid");
    let sig = SignatureMethod::HmacSha256
        .sign(&base, &Secrets::new("kd94hf93k423kf44", "pfkkdhi9sl3r4s00"))
        .expect("signs");
    assert_eq!(sig, HMAC_SHA256_EXPECTED);
}
const HMAC_SHA256_EXPECTED: &str = "HtMwoX2zenlFjgGg/SNEoKEQmL7CzxYFEKzs7er044Y=";

#[test]
fn plaintext_is_the_encoded_secrets_joined_by_an_ampersand() {
    let secrets = Secrets::new("kd94hf93k423kf44", "");
    assert_eq!(
        SignatureMethod::Plaintext.sign("ignored", &secrets),
        Ok("kd94hf93k423kf44&".to_owned())
    );
    let secrets = Secrets::new("a b", "c&d");
    assert!(SignatureMethod::Plaintext.verify("x", "a%20b&c%26d", &VerifyKey::Secrets(secrets)));
    assert!(!SignatureMethod::Plaintext.verify("x", "a%20b&c", &VerifyKey::Secrets(secrets)));
}

#[test]
fn base_string_uri_follows_section_3_4_1_2() {
    assert_eq!(
        base_string_uri("https://www.example.net:8080/?q=1").as_deref(),
        Ok("https://www.example.net:8080/")
    );
    assert_eq!(
        base_string_uri("https://example.net:443/a#frag").as_deref(),
        Ok("https://example.net/a")
    );
    assert!(base_string_uri("ftp://example.net/").is_err());
    assert!(base_string_uri("/relative").is_err());
}

#[test]
fn method_names_round_trip() {
    for m in SignatureMethod::ALL {
        assert_eq!(SignatureMethod::parse(m.as_str()), Some(m));
    }
    assert_eq!(SignatureMethod::parse("hmac-sha1"), None);
}
