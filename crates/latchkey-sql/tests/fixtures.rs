//! Databases written by an earlier Latchkey open and work: one fixture per SQL backend under
//! `tests/fixtures/`, each holding one record of every kind (see [`Fixture`]).
//!
//! The files were written by the stores as they were before the SQL crate was rebuilt (the
//! `write_fixtures` test below, then `pg_dump`/`mysqldump`; see `tests/fixtures/README.md`).
//! Each test loads its fixture into a fresh database, opens it with today's store (which runs
//! any pending migration), reads every record back field for field, and uses them: the
//! unused code is taken once and then is a replay, the refresh token rotates, the rotated one
//! is detected as reuse, the OAuth 1.0a request token is taken once, the nonce is a replay.
//! A change that stops reading an existing database, or writes a different format without a
//! migration, fails here.

mod common;

use latchkey_core::client::{Client, ClientId, ClientMetadata, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::{Digest, Secret};
use latchkey_core::session::SessionRecord;
use latchkey_core::store::oauth1::{AccessToken, Consumer, OAuth1Store, RequestToken};
use latchkey_core::store::{CodeTake, Rotation, Store};
use latchkey_core::token::{Binding, CodeRecord, FamilyId, NewTokens, TokenKind, TokenRecord};
use latchkey_core::user::User;

/// When the fixtures were filled (the `now` of every write).
const FILLED_AT: UnixTime = UnixTime(1_750_000_000);
/// When the checks run: later than the fill, earlier than any expiry.
const NOW: UnixTime = UnixTime(1_760_000_000);
/// When every fixture record expires: 2100-01-01.
const FAR: UnixTime = UnixTime(4_102_444_800);

/// The digest a fixture record is stored under: SHA-256 of its name.
fn digest(name: &str) -> Digest {
    Secret::new(name).digest()
}

fn scope(text: &str) -> ScopeSet {
    ScopeSet::parse(text).expect("valid scope")
}

fn client_id() -> ClientId {
    ClientId::parse("fixture-client").expect("valid client id")
}

/// One record of every kind a SQL store keeps, with fixed values, as the fixtures hold them.
struct Fixture {
    client: Client,
    user: User,
    /// The first issuance of the code grant; its refresh token is rotated during the fill.
    first: NewTokens,
    /// What the rotation of `first`'s refresh token issued.
    second: NewTokens,
    /// A `client_credentials` token of a client that binds its tokens.
    machine: TokenRecord,
    /// An unused code with a PKCE challenge and a nonce.
    code: CodeRecord,
    /// A code taken during the fill.
    used_code: CodeRecord,
    consent: ScopeSet,
    session: SessionRecord,
    consumer: Consumer,
    /// Approved during the fill, not yet exchanged.
    request: RequestToken,
    access: AccessToken,
    nonce: Digest,
}

fn token(name: &str, kind: TokenKind, family: &FamilyId, grant: GrantType) -> TokenRecord {
    TokenRecord {
        attached: latchkey_core::attached::Attached::new(),
        auth: None,
        cnf: None,
        digest: digest(name),
        kind,
        client_id: client_id(),
        subject: Some("fixture-user-id".into()),
        username: Some("fixtüre".into()),
        scope: scope("read write"),
        grant_type: grant,
        family: family.clone(),
        family_issued_at: UnixTime(FILLED_AT.0 - 100),
        issued_at: FILLED_AT,
        expires_at: FAR,
        revoked: false,
        rotated: false,
        binding: None,
        audience: Default::default(),
        actor: None,
    }
}

fn pair(access: &str, refresh: &str, family: &FamilyId) -> NewTokens {
    NewTokens {
        access: token(
            access,
            TokenKind::Access,
            family,
            GrantType::AuthorizationCode,
        ),
        refresh: Some(token(
            refresh,
            TokenKind::Refresh,
            family,
            GrantType::AuthorizationCode,
        )),
    }
}

fn code(name: &str, family: &str) -> CodeRecord {
    CodeRecord {
        attached: latchkey_core::attached::Attached::new(),
        auth: None,
        cnf: None,
        digest: digest(name),
        client_id: client_id(),
        redirect_uri: "https://app.example/cb?x=ü".into(),
        redirect_uri_sent: true,
        subject: "fixture-user-id".into(),
        username: "fixtüre".into(),
        scope: scope("read"),
        challenge: Some(Challenge {
            method: Method::S256,
            value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        }),
        nonce: Some("n-0S6_WzA2Mj".into()),
        family: FamilyId(family.into()),
        issued_at: FILLED_AT,
        expires_at: FAR,
        audience: Default::default(),
    }
}

impl Fixture {
    fn new() -> Self {
        let family = FamilyId("fixture-family-code".into());
        let mut machine = token(
            "machine-access",
            TokenKind::Access,
            &FamilyId("fixture-family-machine".into()),
            GrantType::ClientCredentials,
        );
        machine.subject = None;
        machine.username = None;
        machine.binding = Some(Binding {
            user_agent: Digest::of(b"fixture-agent/1.0").to_hex(),
            ip: "192.0.2.7".into(),
        });
        Self {
            client: Client {
                id: client_id(),
                name: "Fixture Client ü".into(),
                secret_digest: Some(Secret::new("fixture-client-secret").digest()),
                redirect_uris: vec![
                    "https://app.example/cb?x=ü".into(),
                    "http://127.0.0.1/cb".into(),
                ],
                grant_types: [
                    GrantType::AuthorizationCode,
                    GrantType::ClientCredentials,
                    GrantType::RefreshToken,
                ]
                .into_iter()
                .collect(),
                scopes: Some(scope("read write")),
                default_scopes: Some(scope("read")),
                access_token_ttl: Some(600),
                refresh_token_ttl: Some(86_400),
                // Written before the column existed: a fixture row reads back as "either".
                token_endpoint_auth_method: None,
                bind_tokens: true,
                introspect: true,
                created_at: UnixTime(FILLED_AT.0 - 1000),
                // Written before the `ext` column existed: no metadata.
                metadata: ClientMetadata::default(),
            },
            user: User {
                id: "fixture-user-id".into(),
                username: "fixtüre".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                created_at: UnixTime(FILLED_AT.0 - 900),
                claims: Default::default(),
            },
            first: pair("first-access", "first-refresh", &family),
            second: pair("second-access", "second-refresh", &family),
            machine,
            code: code("unused-code", "fixture-family-unused"),
            used_code: code("used-code", "fixture-family-used"),
            consent: scope("read write"),
            session: SessionRecord {
                digest: digest("session"),
                subject: "fixture-user-id".into(),
                username: "fixtüre".into(),
                auth_time: FILLED_AT,
                expires_at: FAR,
                // Written before the sid column existed: the migration gives it a random one,
                // which the check below compares apart.
                sid: String::new(),
                clients: Vec::new(),
            },
            consumer: Consumer {
                client_id: "fixture-client".into(),
                rsa_public_key: None,
                created_at: UnixTime(FILLED_AT.0 - 800),
                secret_salt: Some("fixture-salt".into()),
            },
            request: RequestToken {
                digest: digest("request-token"),
                client_id: "fixture-client".into(),
                callback: "https://app.example/oauth1/cb".into(),
                realms: scope("photos"),
                subject: Some("fixture-user-id".into()),
                username: Some("fixtüre".into()),
                verifier: Some(digest("verifier")),
                expires_at: FAR,
            },
            access: AccessToken {
                digest: digest("oauth1-access"),
                client_id: "fixture-client".into(),
                subject: "fixture-user-id".into(),
                username: Some("fixtüre".into()),
                realms: scope("photos"),
                issued_at: FILLED_AT,
                expires_at: Some(FAR),
                revoked: false,
            },
            nonce: digest("nonce"),
        }
    }

    /// Writes every record through `store`'s traits, as the server would have.
    async fn fill<S: Store + OAuth1Store>(&self, store: &S) {
        store.put_client(&self.client).await.expect("put client");
        store.put_user(&self.user).await.expect("put user");
        store
            .save_tokens(&self.first, FILLED_AT)
            .await
            .expect("save tokens");
        let old = self.first.refresh.as_ref().expect("refresh").digest;
        assert_eq!(
            store
                .rotate_refresh(&old, &self.second, FILLED_AT)
                .await
                .expect("rotate"),
            Rotation::Rotated
        );
        let machine = NewTokens {
            access: self.machine.clone(),
            refresh: None,
        };
        store
            .save_tokens(&machine, FILLED_AT)
            .await
            .expect("save machine token");
        for code in [&self.code, &self.used_code] {
            store.save_code(code, FILLED_AT).await.expect("save code");
        }
        assert_eq!(
            store
                .take_code(&self.used_code.digest, &client_id(), FILLED_AT)
                .await
                .expect("take"),
            CodeTake::Taken(self.used_code.clone())
        );
        store
            .put_consent(
                &self.user.id,
                self.client.id.as_str(),
                &self.consent,
                FILLED_AT,
            )
            .await
            .expect("put consent");
        store
            .save_session(&self.session, FILLED_AT)
            .await
            .expect("save session");
        store
            .put_consumer(&self.consumer)
            .await
            .expect("put consumer");
        let unapproved = RequestToken {
            subject: None,
            username: None,
            verifier: None,
            ..self.request.clone()
        };
        store
            .save_request_token(&unapproved, FILLED_AT)
            .await
            .expect("save request token");
        assert!(
            store
                .authorize_request_token(
                    &self.request.digest,
                    "fixture-user-id",
                    "fixtüre",
                    &digest("verifier"),
                    FILLED_AT,
                )
                .await
                .expect("authorize")
        );
        store
            .save_access_token(&self.access, FILLED_AT)
            .await
            .expect("save access token");
        assert!(
            store
                .insert_nonce(&self.nonce, FAR, FILLED_AT)
                .await
                .expect("nonce")
        );
    }

    /// Reads every record back from `store` and uses each once.
    async fn check<S: Store + OAuth1Store>(&self, store: &S) {
        // Clients and users, and the client's secret still verifies.
        let client = store
            .get_client("fixture-client")
            .await
            .expect("get client")
            .expect("client kept");
        assert_eq!(client, self.client);
        assert!(
            client
                .secret_digest
                .expect("confidential")
                .matches(&Secret::new("fixture-client-secret"))
        );
        assert_eq!(store.list_clients().await.expect("list"), vec![client]);
        assert_eq!(
            store.get_user("fixtüre").await.expect("get user"),
            Some(self.user.clone())
        );
        assert_eq!(
            store
                .get_user_by_id("fixture-user-id")
                .await
                .expect("get user by id"),
            Some(self.user.clone())
        );

        // Tokens, field for field; the first refresh token is marked rotated.
        let mut rotated = self.first.refresh.clone().expect("refresh");
        rotated.rotated = true;
        for expected in [
            &self.first.access,
            &rotated,
            &self.second.access,
            self.second.refresh.as_ref().expect("refresh"),
            &self.machine,
        ] {
            assert_eq!(
                store.find_token(&expected.digest).await.expect("find"),
                Some(expected.clone())
            );
        }

        assert_eq!(
            store
                .get_consent("fixture-user-id", "fixture-client")
                .await
                .expect("consent"),
            Some(self.consent.clone())
        );
        let session = store
            .find_session(&self.session.digest, NOW)
            .await
            .expect("session")
            .expect("the session survives the migrations");
        assert_eq!(
            session.sid.len(),
            32,
            "a migrated session gets a random sid"
        );
        assert_eq!(
            SessionRecord {
                sid: String::new(),
                ..session
            },
            self.session
        );
        assert_eq!(
            store
                .get_consumer("fixture-client")
                .await
                .expect("consumer"),
            Some(self.consumer.clone())
        );
        assert_eq!(
            store
                .find_request_token(&self.request.digest, NOW)
                .await
                .expect("request token"),
            Some(self.request.clone())
        );
        assert_eq!(
            store
                .find_access_token(&self.access.digest)
                .await
                .expect("access token"),
            Some(self.access.clone())
        );

        // The unused code is taken once, then is a replay; the used one is a replay already.
        assert_eq!(
            store
                .take_code(&self.code.digest, &client_id(), NOW)
                .await
                .expect("take"),
            CodeTake::Taken(self.code.clone())
        );
        for code in [&self.code, &self.used_code] {
            assert_eq!(
                store
                    .take_code(&code.digest, &client_id(), NOW)
                    .await
                    .expect("take again"),
                CodeTake::Replayed {
                    family: code.family.clone()
                }
            );
        }

        // The live refresh token rotates; the one rotated during the fill is a reuse, which
        // revokes the family, including what was just issued.
        let family = self.first.access.family.clone();
        let third = pair("third-access", "third-refresh", &family);
        let live = self.second.refresh.as_ref().expect("refresh").digest;
        assert_eq!(
            store
                .rotate_refresh(&live, &third, NOW)
                .await
                .expect("rotate"),
            Rotation::Rotated
        );
        let reused = self.first.refresh.as_ref().expect("refresh").digest;
        assert_eq!(
            store
                .rotate_refresh(&reused, &pair("x-access", "x-refresh", &family), NOW)
                .await
                .expect("rotate a rotated token"),
            Rotation::Reused {
                family: family.clone()
            }
        );
        for record in third.records() {
            let found = store.find_token(&record.digest).await.expect("find");
            assert!(found.expect("kept").revoked, "the reused family is revoked");
        }
        assert!(
            !store
                .find_token(&self.machine.digest)
                .await
                .expect("find")
                .expect("kept")
                .revoked,
            "another family is untouched"
        );

        // OAuth 1.0a: the request token is taken once, the nonce is a replay, a new one is not.
        assert_eq!(
            store
                .take_request_token(&self.request.digest, NOW)
                .await
                .expect("take request token"),
            Some(self.request.clone())
        );
        assert_eq!(
            store
                .take_request_token(&self.request.digest, NOW)
                .await
                .expect("take request token again"),
            None
        );
        assert!(
            !store
                .insert_nonce(&self.nonce, FAR, NOW)
                .await
                .expect("nonce")
        );
        assert!(
            store
                .insert_nonce(&digest("new nonce"), FAR, NOW)
                .await
                .expect("new nonce")
        );
        assert!(
            store
                .revoke_access_token(&self.access.digest)
                .await
                .expect("revoke")
        );

        // Deleting the user takes their session with them.
        assert!(store.delete_user("fixtüre").await.expect("delete user"));
        assert_eq!(
            store
                .load_session(&self.session.digest)
                .await
                .expect("session"),
            None
        );
    }
}

/// The directory holding the fixture files.
fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_from_before_opens_and_works() {
    use latchkey_sql::SqliteStore;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("latchkey-sql-fixtures");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join(format!("sqlite-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(fixture_dir().join("sqlite.db"), &path).expect("copy the fixture");
    let store = SqliteStore::open(&path).await.expect("open the fixture");
    Fixture::new().check(&store).await;
    store.close().await;
}

/// `dump` without the lines `psql` itself interprets (`\restrict` and the like), which are no
/// SQL.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn statements(dump: &str) -> sqlx::AssertSqlSafe<String> {
    let sql: Vec<&str> = dump
        .lines()
        .filter(|line| !line.starts_with('\\'))
        .collect();
    sqlx::AssertSqlSafe(sql.join("\n"))
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_from_before_opens_and_works() {
    use latchkey_sql::PgStore;
    use sqlx::Connection;
    let Some((server, db)) = common::postgres::fresh_database().await else {
        return;
    };
    let dump = std::fs::read_to_string(fixture_dir().join("postgres.sql")).expect("read dump");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(statements(&dump))
        .execute(&mut conn)
        .await
        .expect("load the fixture");
    conn.close().await.expect("close");
    let store = PgStore::open(&db.url).await.expect("open the fixture");
    Fixture::new().check(&store).await;
    store.close().await;
    common::postgres::drop_database(&server, &db).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_database_from_before_opens_and_works() {
    use latchkey_sql::MySqlStore;
    use sqlx::Connection;
    let Some((server, db)) = common::mysql::fresh_database().await else {
        return;
    };
    let dump = std::fs::read_to_string(fixture_dir().join("mysql.sql")).expect("read dump");
    let mut conn = sqlx::MySqlConnection::connect(&db.url)
        .await
        .expect("connect");
    sqlx::raw_sql(statements(&dump))
        .execute(&mut conn)
        .await
        .expect("load the fixture");
    conn.close().await.expect("close");
    let store = MySqlStore::open(&db.url).await.expect("open the fixture");
    Fixture::new().check(&store).await;
    store.close().await;
    common::mysql::drop_database(&server, &db).await;
}

/// Writes the fixtures with the stores of this build: `LATCHKEY_FIXTURE_SQLITE` names a new
/// SQLite file, `LATCHKEY_FIXTURE_POSTGRES` and `LATCHKEY_FIXTURE_MYSQL` name empty databases
/// to dump afterwards. Run by hand only (see `tests/fixtures/README.md`): the committed
/// fixtures must stay what an earlier build wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fixture databases; run by hand"]
async fn write_fixtures() {
    let fixture = Fixture::new();
    #[cfg(feature = "sqlite")]
    if let Ok(path) = std::env::var("LATCHKEY_FIXTURE_SQLITE") {
        let store = latchkey_sql::SqliteStore::open(&path).await.expect("open");
        fixture.fill(&store).await;
        store.close().await;
    }
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("LATCHKEY_FIXTURE_POSTGRES") {
        let store = latchkey_sql::PgStore::open(&url).await.expect("open");
        fixture.fill(&store).await;
        store.close().await;
    }
    #[cfg(feature = "mysql")]
    if let Ok(url) = std::env::var("LATCHKEY_FIXTURE_MYSQL") {
        let store = latchkey_sql::MySqlStore::open(&url).await.expect("open");
        fixture.fill(&store).await;
        store.close().await;
    }
}
