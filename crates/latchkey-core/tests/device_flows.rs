//! The device authorization grant (RFC 8628) on the memory store with a manual clock: the
//! endpoint's response, every poll answer, the user's side with its rate limit, and single
//! issuance under concurrent polling; `resource` (RFC 8707) at the device request and at the
//! poll.

use latchkey_core::client::{Client, GrantType, NewClient};
use latchkey_core::clock::{ManualClock, UnixTime};
use latchkey_core::device::verify::{self, Answer, Decided, Lookup};
use latchkey_core::error::ErrorCode;
use latchkey_core::grant::device_code;
use latchkey_core::http::HttpRequest;
use latchkey_core::indicator::{AudienceSet, RegisteredResource, ResourceUri, Resources};
use latchkey_core::limits::{Limits, MemoryCounters, Rate, UserCodeGuesses};
use latchkey_core::oidc::AuthContext;
use latchkey_core::provider::Provider;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::store::{ClientStore, TokenStore as _};
use latchkey_core::user::{AuthenticatedUser, NoUsers};
use std::net::IpAddr;
use std::sync::Arc;

struct Kit {
    p: Provider<MemoryStore, NoUsers>,
    clock: Arc<ManualClock>,
    device: Client,
    events: Arc<Recorder>,
}

/// Keeps every audit event.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<latchkey_core::events::Event>>);

impl latchkey_core::events::EventSink for Recorder {
    fn emit(&self, event: &latchkey_core::events::Event) {
        self.0.lock().expect("lock").push(event.clone());
    }
}

async fn kit() -> Kit {
    let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
    let mut limits = Limits::new(Arc::new(MemoryCounters::new()));
    limits.user_code_guesses = Some(UserCodeGuesses {
        per_ip: Rate {
            requests: 3,
            window: 600,
        },
        global: Rate {
            requests: 100,
            window: 600,
        },
    });
    let events = Arc::new(Recorder::default());
    let config = latchkey_core::config::Config {
        resources: Resources::new(vec![
            RegisteredResource {
                scopes: Some(ScopeSet::parse("read").expect("scope")),
                ..RegisteredResource::new(ResourceUri::parse(API).expect("uri"))
            },
            RegisteredResource::new(ResourceUri::parse(MCP).expect("uri")),
            RegisteredResource {
                clients: Some(vec!["another-client".into()]),
                ..RegisteredResource::new(ResourceUri::parse(PRIVATE).expect("uri"))
            },
        ]),
        ..Default::default()
    };
    let p = Provider::builder(MemoryStore::new(), NoUsers)
        .config(config)
        .events(events.clone())
        .clock(clock.clone())
        .limits(limits)
        .available_scopes(ScopeSet::parse("read write").expect("scopes"))
        .build()
        .expect("valid");
    let (device, _) = NewClient::public("TV")
        .grant_types([GrantType::DeviceCode, GrantType::RefreshToken])
        .build(p.entropy(), UnixTime(1_000_000));
    p.store().put_client(&device).await.expect("client");
    Kit {
        p,
        clock,
        device,
        events,
    }
}

/// Registered resources: one accepting only `read`, one any scope, one for another client.
const API: &str = "https://api.example.test/v1";
const MCP: &str = "https://mcp.example.test/mcp";
const PRIVATE: &str = "https://private.example.test/";

fn ip() -> Option<IpAddr> {
    Some("203.0.113.7".parse().expect("ip"))
}

impl Kit {
    async fn start(&self, scope: Option<&str>) -> serde_json::Value {
        let mut body = format!("client_id={}", self.device.id);
        if let Some(scope) = scope {
            body.push_str(&format!("&scope={scope}"));
        }
        let res = self
            .p
            .device_authorization(&HttpRequest::post_form("/device_authorization", body))
            .await;
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.header("cache-control"), Some("no-store"));
        res.json_body()
    }

    /// The device authorization endpoint's answer to `extra` after the client's id.
    async fn request(&self, extra: &str) -> (u16, serde_json::Value) {
        let res = self
            .p
            .device_authorization(&HttpRequest::post_form(
                "/device_authorization",
                format!("client_id={}{extra}", self.device.id),
            ))
            .await;
        (res.status, res.json_body())
    }

    /// A poll naming `resources`: the audience of the access token it gets.
    async fn poll_for(&self, code: &str, resources: &[&str]) -> Result<AudienceSet, ErrorCode> {
        let resources: Vec<ResourceUri> = resources
            .iter()
            .map(|r| ResourceUri::parse(r).expect("uri"))
            .collect();
        let response = device_code::exchange(
            &self.p,
            &self.device,
            &Secret::new(code),
            &resources,
            None,
            None,
        )
        .await
        .map_err(|e| e.code())?;
        let record = self
            .p
            .store()
            .find_token(&response.access_token.digest())
            .await
            .expect("store")
            .expect("the token is stored");
        Ok(record.audience)
    }

    async fn poll(&self, code: &str) -> Result<String, ErrorCode> {
        device_code::exchange(&self.p, &self.device, &Secret::new(code), &[], None, None)
            .await
            .map(|r| r.access_token.expose().to_owned())
            .map_err(|e| e.code())
    }

    async fn answer(&self, user_code: &str, allow: bool) -> Decided {
        let Lookup::Found(request) = verify::find(&self.p, ip(), user_code).await.expect("find")
        else {
            panic!("user code {user_code} not found");
        };
        let answer = if allow {
            Answer::Allow {
                user: AuthenticatedUser::new("u-alice", "alice"),
                auth: Box::new(AuthContext::login(None, &["pwd"], None, None)),
            }
        } else {
            Answer::DenyAs {
                user: AuthenticatedUser::new("u-alice", "alice"),
            }
        };
        verify::decide(&self.p, &request, answer)
            .await
            .expect("decide")
    }
}

#[tokio::test]
async fn the_device_authorization_response_has_every_rfc_8628_member() {
    let kit = kit().await;
    let body = kit.start(Some("read")).await;
    let user_code = body["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    assert_eq!(user_code.as_bytes()[4], b'-');
    assert!(body["device_code"].as_str().expect("device_code").len() >= 43);
    assert_eq!(body["verification_uri"], "http://127.0.0.1:8080/device");
    assert_eq!(
        body["verification_uri_complete"],
        format!("http://127.0.0.1:8080/device?user_code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
}

#[tokio::test]
async fn a_client_without_the_grant_or_asking_for_a_foreign_scope_is_refused() {
    let kit = kit().await;
    let (web, _) = NewClient::public("web")
        .redirect_uris(["https://app.example/cb".to_owned()])
        .build(kit.p.entropy(), UnixTime(0));
    kit.p.store().put_client(&web).await.expect("client");
    let res = kit
        .p
        .device_authorization(&HttpRequest::post_form(
            "/device_authorization",
            format!("client_id={}", web.id),
        ))
        .await;
    assert_eq!(res.json_body()["error"], "unauthorized_client");
    let res = kit
        .p
        .device_authorization(&HttpRequest::post_form(
            "/device_authorization",
            format!("client_id={}&scope=admin", kit.device.id),
        ))
        .await;
    assert_eq!(res.json_body()["error"], "invalid_scope");
}

#[tokio::test]
async fn polls_are_pending_then_slow_down_then_tokens_once() {
    let kit = kit().await;
    let body = kit.start(Some("read")).await;
    let code = body["device_code"].as_str().expect("code");
    let user_code = body["user_code"].as_str().expect("user code");
    assert_eq!(kit.poll(code).await, Err(ErrorCode::AuthorizationPending));
    kit.clock.advance(2);
    assert_eq!(kit.poll(code).await, Err(ErrorCode::SlowDown));
    // The interval is now 10 s: 6 s later is still too soon.
    kit.clock.advance(6);
    assert_eq!(kit.poll(code).await, Err(ErrorCode::SlowDown));
    kit.clock.advance(15);
    assert_eq!(kit.poll(code).await, Err(ErrorCode::AuthorizationPending));
    assert_eq!(kit.answer(user_code, true).await, Decided::Recorded);
    let token = kit.poll(code).await.expect("tokens");
    assert!(!token.is_empty());
    assert_eq!(kit.poll(code).await, Err(ErrorCode::InvalidGrant), "reuse");
    // The user code is spent with it.
    assert!(matches!(
        verify::find(&kit.p, ip(), user_code).await.expect("find"),
        Lookup::NotFound
    ));
}

#[tokio::test]
async fn a_denied_request_answers_access_denied_once() {
    let kit = kit().await;
    let body = kit.start(None).await;
    let code = body["device_code"].as_str().expect("code");
    assert_eq!(
        kit.answer(body["user_code"].as_str().expect("uc"), false)
            .await,
        Decided::Recorded
    );
    let err = device_code::exchange(&kit.p, &kit.device, &Secret::new(code), &[], None, None)
        .await
        .expect_err("denied");
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    assert_eq!(err.status(), 400);
    assert_eq!(kit.poll(code).await, Err(ErrorCode::InvalidGrant));
}

#[tokio::test]
async fn an_expired_code_answers_expired_token_and_cannot_be_approved() {
    let kit = kit().await;
    let body = kit.start(None).await;
    let code = body["device_code"].as_str().expect("code");
    let user_code = body["user_code"].as_str().expect("uc");
    kit.clock.advance(600);
    assert!(matches!(
        verify::find(&kit.p, ip(), user_code).await.expect("find"),
        Lookup::NotFound
    ));
    assert_eq!(kit.poll(code).await, Err(ErrorCode::ExpiredToken));
}

#[tokio::test]
async fn another_client_cannot_poll_or_burn_a_device_code() {
    let kit = kit().await;
    let body = kit.start(None).await;
    let code = body["device_code"].as_str().expect("code");
    let (other, _) = NewClient::public("other")
        .grant_types([GrantType::DeviceCode])
        .build(kit.p.entropy(), UnixTime(0));
    let err = device_code::exchange(&kit.p, &other, &Secret::new(code), &[], None, None)
        .await
        .expect_err("foreign");
    assert_eq!(err.code(), ErrorCode::InvalidGrant);
    kit.answer(body["user_code"].as_str().expect("uc"), true)
        .await;
    assert!(kit.poll(code).await.is_ok());
}

#[tokio::test]
async fn user_codes_are_found_in_any_case_without_dashes_and_wrong_ones_are_limited() {
    let kit = kit().await;
    let body = kit.start(None).await;
    let user_code = body["user_code"].as_str().expect("uc");
    let typed = user_code.replace('-', "").to_lowercase();
    assert!(matches!(
        verify::find(&kit.p, ip(), &typed).await.expect("find"),
        Lookup::Found(_)
    ));
    // Three wrong codes from one address, then even the right code is refused there.
    for wrong in ["BBBB-BBBB", "nonsense", "CCCC-CCCC"] {
        assert!(matches!(
            verify::find(&kit.p, ip(), wrong).await.expect("find"),
            Lookup::NotFound
        ));
    }
    let err = verify::find(&kit.p, ip(), user_code)
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), ErrorCode::TemporarilyUnavailable);
    assert_eq!(err.status(), 429);
    // Another address is not affected.
    let elsewhere = Some("198.51.100.1".parse().expect("ip"));
    assert!(matches!(
        verify::find(&kit.p, elsewhere, user_code)
            .await
            .expect("find"),
        Lookup::Found(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_polls_of_an_approved_code_get_tokens_exactly_once() {
    let kit = Arc::new(kit().await);
    for _ in 0..5 {
        let body = kit.start(None).await;
        let code = body["device_code"].as_str().expect("code").to_owned();
        kit.answer(body["user_code"].as_str().expect("uc"), true)
            .await;
        let polls: Vec<_> = (0..16)
            .map(|_| {
                let kit = Arc::clone(&kit);
                let code = code.clone();
                tokio::spawn(async move { kit.poll(&code).await })
            })
            .collect();
        let mut tokens = 0;
        for poll in polls {
            match poll.await.expect("task") {
                Ok(_) => tokens += 1,
                Err(code) => assert!(
                    matches!(code, ErrorCode::InvalidGrant | ErrorCode::SlowDown),
                    "{code:?}"
                ),
            }
        }
        assert_eq!(tokens, 1);
    }
}

#[tokio::test]
async fn metadata_advertises_the_endpoint_and_the_grant() {
    let kit = kit().await;
    let doc = kit.p.metadata().json_body();
    assert_eq!(
        doc["device_authorization_endpoint"],
        "http://127.0.0.1:8080/device_authorization"
    );
    let grants = doc["grant_types_supported"].as_array().expect("grants");
    assert!(
        grants
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:device_code")
    );
}

#[tokio::test]
async fn the_poll_that_gets_the_tokens_binds_them_to_its_dpop_key() {
    use latchkey_core::proto::TokenType;
    use latchkey_core::token::Confirmation;
    let kit = kit().await;
    let body = kit.start(Some("read")).await;
    let code = body["device_code"].as_str().expect("code");
    kit.answer(body["user_code"].as_str().expect("uc"), true)
        .await;
    let jkt = Confirmation::Jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
    let response = device_code::exchange(
        &kit.p,
        &kit.device,
        &Secret::new(code),
        &[],
        None,
        Some(jkt.clone()),
    )
    .await
    .expect("tokens");
    assert_eq!(response.token_type, TokenType::Dpop);
    let record = kit
        .p
        .store()
        .find_token(&response.access_token.digest())
        .await
        .expect("store")
        .expect("the token is stored");
    assert_eq!(record.cnf, Some(jkt));
}

#[tokio::test]
async fn approvals_and_denials_are_audited_as_consent_events() {
    use latchkey_core::events::Event;
    let kit = kit().await;
    let first = kit.start(Some("read")).await;
    let second = kit.start(Some("write")).await;
    kit.answer(first["user_code"].as_str().expect("uc"), true)
        .await;
    kit.answer(second["user_code"].as_str().expect("uc"), false)
        .await;
    let events = kit.events.0.lock().expect("lock").clone();
    let id = kit.device.id.to_string();
    assert!(events.contains(&Event::ConsentGranted {
        client_id: id.clone(),
        subject: "u-alice".into(),
        scope: "read".into(),
    }));
    assert!(events.contains(&Event::ConsentDenied {
        client_id: id,
        subject: "u-alice".into(),
    }));
}

#[tokio::test]
async fn resources_named_at_the_device_request_are_the_audience_of_its_tokens() {
    let kit = kit().await;
    let (status, body) = kit
        .request(&format!(
            "&scope=read&resource={}&resource={}",
            form_urlencoded::byte_serialize(API.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(MCP.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let code = body["device_code"].as_str().expect("code").to_owned();
    assert_eq!(
        kit.poll_for(&code, &[]).await,
        Err(ErrorCode::AuthorizationPending)
    );
    kit.answer(body["user_code"].as_str().expect("uc"), true)
        .await;
    // RFC 8707 §2.2: the poll may name a subset; a resource not asked for is refused and the
    // approval stays for a correct poll.
    assert_eq!(
        kit.poll_for(&code, &[PRIVATE]).await,
        Err(ErrorCode::InvalidTarget)
    );
    assert_eq!(
        kit.poll_for(&code, &[API]).await,
        Ok(AudienceSet::of([API]))
    );
    assert_eq!(
        kit.poll_for(&code, &[API]).await,
        Err(ErrorCode::InvalidGrant),
        "tokens once"
    );

    // Without `resource` at the poll, the tokens are for every resource asked for.
    let (_, body) = kit
        .request(&format!(
            "&resource={}&resource={}",
            form_urlencoded::byte_serialize(API.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(MCP.as_bytes()).collect::<String>()
        ))
        .await;
    let code = body["device_code"].as_str().expect("code").to_owned();
    kit.answer(body["user_code"].as_str().expect("uc"), true)
        .await;
    assert_eq!(
        kit.poll_for(&code, &[]).await,
        Ok(AudienceSet::of([API, MCP]))
    );

    // A request that named none may name resources at the poll, as a code's exchange may.
    let (_, body) = kit.request("").await;
    let code = body["device_code"].as_str().expect("code").to_owned();
    kit.answer(body["user_code"].as_str().expect("uc"), true)
        .await;
    assert_eq!(
        kit.poll_for(&code, &[PRIVATE]).await,
        Err(ErrorCode::InvalidTarget),
        "not allowed to this client"
    );
    assert_eq!(
        kit.poll_for(&code, &[MCP]).await,
        Ok(AudienceSet::of([MCP]))
    );
}

#[tokio::test]
async fn bad_resources_at_the_device_request_are_refused_with_rfc_errors() {
    let kit = kit().await;
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    for (why, extra, error) in [
        (
            "unknown",
            format!("&resource={}", enc("https://unknown.example/")),
            "invalid_target",
        ),
        (
            "another client's",
            format!("&resource={}", enc(PRIVATE)),
            "invalid_target",
        ),
        (
            "a fragment",
            format!("&resource={}", enc("https://api.example.test/v1#x")),
            "invalid_target",
        ),
        ("relative", "&resource=%2Fv1".to_owned(), "invalid_target"),
        (
            "too many",
            format!("&resource={}", enc(API)).repeat(17),
            "invalid_target",
        ),
        (
            "a scope the resource does not accept",
            format!("&scope=write&resource={}", enc(API)),
            "invalid_scope",
        ),
    ] {
        let (status, body) = kit.request(&extra).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{why}: {body}"
        );
    }
    // Without an explicit scope, the default one is cut down to what the resource accepts.
    let (status, body) = kit.request(&format!("&resource={}", enc(API))).await;
    assert_eq!(status, 200, "{body}");
}
