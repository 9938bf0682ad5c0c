//! `latchkey export` / `latchkey import` on the real binary, and the migration an operator
//! makes when outgrowing the embedded store: start on SQLite, create clients, users, consents
//! and keys through the CLI and use them, export, import into a fresh PostgreSQL database with
//! Redis for tokens (running the commands of the README's "Moving to PostgreSQL" section),
//! start there, and the old client secret, password and signing key keep working.
//!
//! The PostgreSQL test runs when `LATCHKEY_TEST_POSTGRES` and `LATCHKEY_TEST_REDIS` are set,
//! and fails if they are set and the servers are unreachable. Also here: the CLI's first
//! contact (`--create`, completions, man page).

mod common;

use common::agent::Agent;
use common::{PASSWORD_GRANT, Server, add_user, cli, cli_outcome, create_client, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::path::Path;
use std::process::{Command, Stdio};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";
const PASSWORD: &str = "correct horse battery staple";

/// What the source store holds, made and used through the CLI and the server.
struct Source {
    client: common::CliClient,
    consumer: common::CliClient,
    kids: Vec<String>,
}

/// Runs the binary with `--data-dir dir`, in `dir`, with exactly `env` as its `LATCHKEY_*`
/// settings.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut all = vec!["--data-dir", dir.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    run_in(dir, &all, env)
}

/// Runs the binary in `cwd` with `args` and exactly `env` as its `LATCHKEY_*` settings.
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null());
    let out = cmd.output().expect("latchkey runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn token(server: &Server, basic: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .header("authorization", basic)
        .form(form)
        .send()
        .await
        .expect("server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

/// The old credentials work on `server`: the client secret, the user's password, and the
/// tokens it issues are active.
async fn credentials_work(server: &Server, source: &Source) {
    let basic = source.client.basic();
    let (status, cc) = token(server, &basic, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "client secret: {cc}");
    let (status, pw) = token(
        server,
        &basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200, "password: {pw}");
    let (status, _) = token(
        server,
        &basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "not the password"),
        ],
    )
    .await;
    assert_eq!(status, 400, "a wrong password is still refused");
    let active: serde_json::Value = reqwest::Client::new()
        .post(server.url("/introspect"))
        .header("authorization", &basic)
        .form(&[("token", pw["access_token"].as_str().expect("token"))])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(
        server.jwks_kids().await,
        source.kids,
        "the same signing keys"
    );
}

/// Logs alice in and approves `scope` for the client: a remembered consent.
async fn consent(server: &Server, client_id: &str) {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("state", "s")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut agent = Agent::new();
    let login = agent.get(&server.url(&format!("/authorize?{query}"))).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let after = agent
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &login.field("request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(after.status, 303, "{}", after.body);
    let page = agent.get(&server.url(after.location())).await;
    let done = agent
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("request", &page.field("request")),
                ("decision", "allow"),
                ("remember", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().starts_with(REDIRECT), "{}", done.location());
}

/// A resource the source stores (`latchkey resource add`).
const STORED_RESOURCE: &str = "https://api.example.test/mcp";

/// Makes the source store through the CLI, uses it through the server, and stops the server.
async fn make_source(dir: &Path) -> Source {
    let client = create_client(
        dir,
        &[
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "password",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--introspect",
        ],
    );
    let consumer = common::create_consumer(dir, &["--oauth1", "--redirect-uri", REDIRECT]);
    add_user(dir, "alice", PASSWORD);
    cli(
        dir,
        &["user", "update", "alice", "--email", "alice@example.com"],
        None,
    );
    cli(
        dir,
        &[
            "registration",
            "token",
            "create",
            "--description",
            "partners",
        ],
        None,
    );
    cli(
        dir,
        &[
            "resource",
            "add",
            STORED_RESOURCE,
            "--name",
            "Tools",
            "--scope",
            "read",
        ],
        None,
    );
    let server = Server::start_with(dir, &[PASSWORD_GRANT]);
    let kids = server.jwks_kids().await;
    assert!(!kids.is_empty());
    let mut source = Source {
        client,
        consumer,
        kids,
    };
    consent(&server, &source.client.id).await;
    credentials_work(&server, &source).await;
    server.terminate();
    source.kids.sort();
    source
}

/// The names in `dir`, sorted.
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The export of `dir` with its timestamp removed, to compare two stores.
fn records_of(dir: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let (ok, out, err) = run(dir, &["export", "-"], env);
    assert!(ok, "{err}");
    let mut json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    json.as_object_mut().expect("object").remove("exported_at");
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imported_into_a_new_store_keeps_every_credential_working() {
    let src = data_dir();
    let source = make_source(src.path()).await;

    // The export: created private, never overwritten, no secret in it.
    let said = cli(src.path(), &["export", "out.json"], None);
    assert!(said.is_empty(), "the file, not stdout: {said}");
    let file = src.path().join("out.json");
    let text = std::fs::read_to_string(&file).expect("export file");
    assert!(!text.contains(&source.client.secret), "no client secret");
    assert!(
        !text.contains(&source.consumer.secret),
        "no consumer secret"
    );
    assert!(!text.contains(PASSWORD), "no password");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(json["format"], "latchkey-export");
    assert_eq!(json["version"], 2);
    assert_eq!(
        json["resources"],
        serde_json::json!([{"id": STORED_RESOURCE, "name": "Tools", "scopes": ["read"], "clients": null}])
    );
    assert_eq!(json["clients"].as_array().expect("clients").len(), 2);
    assert_eq!(json["users"][0]["claims"]["email"], "alice@example.com");
    assert_eq!(json["consents"][0]["client_id"], source.client.id.as_str());
    assert_eq!(
        json["oauth1_consumers"][0]["client_id"],
        source.consumer.id.as_str()
    );
    assert_eq!(json["initial_access_tokens"][0]["description"], "partners");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the export is private");
    }
    let (ok, _, err) = cli_outcome(src.path(), &["export", "out.json"]);
    assert!(!ok && err.contains("never overwritten"), "{err}");

    // A new store whose data directory has the source's key files.
    let dst = data_dir();
    for name in ["kek", "oauth1.key"] {
        std::fs::copy(src.path().join(name), dst.path().join(name)).expect("copy key file");
    }
    let path = file.to_str().expect("utf-8");
    let dry = cli(dst.path(), &["import", "--dry-run", path], None);
    assert!(
        dry.contains("Dry run") && dry.contains("clients: 2 new"),
        "{dry}"
    );
    assert_eq!(
        records_of(dst.path(), &[])["clients"],
        serde_json::json!([]),
        "a dry run writes nothing"
    );
    let done = cli(dst.path(), &["import", "--json", path], None);
    let report: serde_json::Value = serde_json::from_str(done.trim()).expect("JSON");
    assert_eq!(report["counts"]["new"]["users"], 1, "{report}");
    assert_eq!(report["counts"]["new"]["consents"], 1, "{report}");
    assert_eq!(report["counts"]["new"]["resources"], 1, "{report}");
    assert_eq!(
        records_of(dst.path(), &[]),
        records_of(src.path(), &[]),
        "the new store holds exactly the old records"
    );

    // Importing again changes nothing; a conflicting record refuses the whole file.
    let again = cli(dst.path(), &["import", "--json", path], None);
    let report: serde_json::Value = serde_json::from_str(again.trim()).expect("JSON");
    assert_eq!(report["counts"]["new"], serde_json::json!({}), "{report}");
    let mut altered = json.clone();
    altered["clients"][0]["name"] = "Renamed".into();
    altered["users"][0]["username"] = "bob".into();
    let altered_path = dst.path().join("altered.json");
    std::fs::write(&altered_path, altered.to_string()).expect("write");
    let (ok, _, err) = cli_outcome(
        dst.path(),
        &["import", altered_path.to_str().expect("utf-8")],
    );
    assert!(!ok && err.contains("nothing was imported"), "{err}");
    assert!(
        err.contains("exists in the target with other settings"),
        "{err}"
    );
    assert!(err.contains("belongs to \"alice\""), "{err}");
    assert_eq!(records_of(dst.path(), &[]), records_of(src.path(), &[]));

    // A stored resource that differs is a conflict too.
    let mut altered = json.clone();
    altered["resources"][0]["scopes"] = serde_json::json!(["read", "write"]);
    std::fs::write(&altered_path, altered.to_string()).expect("write");
    let (ok, _, err) = cli_outcome(
        dst.path(),
        &["import", altered_path.to_str().expect("utf-8")],
    );
    assert!(!ok && err.contains("differs in the target"), "{err}");

    // A version 1 file (before resources were exported) still imports.
    let mut old = json.clone();
    old["version"] = 1.into();
    old.as_object_mut().expect("object").remove("resources");
    std::fs::write(&altered_path, old.to_string()).expect("write");
    let again = cli(
        dst.path(),
        &["import", "--json", altered_path.to_str().expect("utf-8")],
        None,
    );
    let report: serde_json::Value = serde_json::from_str(again.trim()).expect("JSON");
    assert_eq!(report["counts"]["unchanged"]["clients"], 2, "{report}");

    // Another version of the format is refused as such.
    let mut future = json.clone();
    future["version"] = 3.into();
    std::fs::write(&altered_path, future.to_string()).expect("write");
    let (ok, _, err) = cli_outcome(
        dst.path(),
        &["import", altered_path.to_str().expect("utf-8")],
    );
    assert!(!ok && err.contains("version 3 is not supported"), "{err}");

    // A fresh target has no key-encryption key to open the signing keys: refused before
    // anything is written (no key made, no store created).
    let stranger = data_dir();
    let before = dir_entries(stranger.path());
    let (ok, _, err) = cli_outcome(stranger.path(), &["import", path]);
    assert!(!ok && err.contains("key-encryption key"), "{err}");
    assert!(err.contains("LATCHKEY_KEYS__KEK"), "{err}");
    assert_eq!(
        dir_entries(stranger.path()),
        before,
        "the refusal wrote nothing"
    );
    // A target with another key-encryption key cannot open them either.
    std::fs::write(
        stranger.path().join("kek"),
        latchkey_core::jose::Kek::generate(&latchkey_core::entropy::OsEntropy).to_base64(),
    )
    .expect("another kek");
    let (ok, _, err) = cli_outcome(stranger.path(), &["import", path]);
    assert!(!ok && err.contains("does not open"), "{err}");
    assert_eq!(
        records_of(stranger.path(), &[])["clients"],
        serde_json::json!([])
    );

    let server = Server::start_with(dst.path(), &[PASSWORD_GRANT]);
    credentials_work(&server, &source).await;
    server.terminate();
    let consents = cli(dst.path(), &["consent", "list", "alice"], None);
    assert!(consents.contains(&source.client.id), "{consents}");
}

/// The `sh` block of the README section `heading`, as lines.
fn readme_block(heading: &str) -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split_once(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a section {heading:?}"))
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("a sh block")
        .1
        .split_once("```")
        .expect("the block ends")
        .0;
    block.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_from_sqlite_to_postgres_and_redis_as_the_readme_says() {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("LATCHKEY_TEST_POSTGRES"),
        std::env::var("LATCHKEY_TEST_REDIS"),
    ) else {
        eprintln!(
            "SKIPPED moving_from_sqlite_to_postgres_and_redis_as_the_readme_says: set \
             LATCHKEY_TEST_POSTGRES and LATCHKEY_TEST_REDIS to run it"
        );
        return;
    };
    let dir = data_dir();
    let source = make_source(dir.path()).await;
    let database = common::databases::fresh_database(&pg, "lk_export").await;
    let prefix = format!("lk-export-{}", std::process::id());

    // The README's commands, in order, with this test's database and Redis.
    let mut env: Vec<(String, String)> = vec![("LATCHKEY_STORE__KEY_PREFIX".into(), prefix)];
    let mut ran = Vec::new();
    let mut server = None;
    for line in readme_block("Moving to PostgreSQL") {
        let line = line.trim();
        if let Some(assignment) = line.strip_prefix("export ") {
            let (key, _) = assignment.split_once('=').expect("VAR=value");
            let value = match key {
                "LATCHKEY_STORE__URL" => database.clone(),
                "LATCHKEY_STORE__TOKENS_URL" => redis.clone(),
                other => panic!("the test does not know README variable {other}"),
            };
            env.push((key.to_owned(), value));
            ran.push(format!("export {key}"));
        } else if let Some(command) = line.strip_prefix("latchkey ") {
            ran.push(command.to_owned());
            let args: Vec<&str> = command.split_whitespace().collect();
            let mut pairs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if args == ["serve"] {
                pairs.push(PASSWORD_GRANT);
                server = Some(Server::start_with(dir.path(), &pairs));
            } else {
                let (ok, out, err) = run(dir.path(), &args, &pairs);
                assert!(ok, "latchkey {command}: {out}{err}");
            }
        } else {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "unknown line {line:?}"
            );
        }
    }
    assert_eq!(
        ran,
        [
            "export latchkey-export.json",
            "export LATCHKEY_STORE__URL",
            "export LATCHKEY_STORE__TOKENS_URL",
            "migrate",
            "import --dry-run latchkey-export.json",
            "import latchkey-export.json",
            "serve",
        ],
        "the README's steps"
    );
    let server = server.expect("the README starts the server");
    credentials_work(&server, &source).await;
    server.terminate();

    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (ok, out, err) = run(dir.path(), &["consent", "list", "alice"], &pairs);
    assert!(ok && out.contains(&source.client.id), "{out}{err}");
    // The PostgreSQL store now holds what the SQLite one held.
    let moved = records_of(dir.path(), &pairs);
    let old = records_of(dir.path(), &[]);
    assert_eq!(moved, old, "every record moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_moves_into_mysql_and_works_there() {
    let Ok(url) = std::env::var("LATCHKEY_TEST_MYSQL") else {
        eprintln!(
            "SKIPPED an_export_moves_into_mysql_and_works_there: set LATCHKEY_TEST_MYSQL to run it"
        );
        return;
    };
    let database = common::databases::fresh_database(&url, "lk_export").await;

    let dir = data_dir();
    let source = make_source(dir.path()).await;
    cli(dir.path(), &["export", "moved.json"], None);
    let env = [("LATCHKEY_STORE__URL", database.as_str())];
    let (ok, out, err) = run(dir.path(), &["import", "moved.json"], &env);
    assert!(ok && out.contains("users: 1 new"), "{out}{err}");
    assert_eq!(records_of(dir.path(), &env), records_of(dir.path(), &[]));
    let server = Server::start_with(dir.path(), &[env[0], PASSWORD_GRANT]);
    credentials_work(&server, &source).await;
    server.terminate();
}

#[test]
fn a_mistyped_data_dir_is_refused_unless_create_is_given() {
    let root = data_dir();
    let typo = root.path().join("latchky-data");
    let typo_str = typo.to_str().expect("utf-8");
    let (ok, _, err) = run_in(
        root.path(),
        &["--data-dir", typo_str, "client", "list"],
        &[],
    );
    assert!(!ok, "refused");
    assert!(
        err.contains("does not exist") && err.contains("--create"),
        "{err}"
    );
    assert!(!typo.exists(), "nothing was created");

    // A sqlite:// store.url naming a file that does not exist is refused the same way.
    let url = format!("sqlite://{}/latchkye.db", root.path().display());
    let (ok, _, err) = run(
        root.path(),
        &["client", "list"],
        &[("LATCHKEY_STORE__URL", &url)],
    );
    assert!(!ok && err.contains("store.url"), "{err}");

    let (ok, _, err) = run_in(
        root.path(),
        &["--data-dir", typo_str, "--create", "client", "list"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(err.contains("creating a new store"), "{err}");
    assert!(typo.join("latchkey.db").exists());
}

#[test]
fn the_default_data_dir_is_created_on_first_start_with_a_message() {
    let root = data_dir();
    let (ok, _, err) = run_in(root.path(), &["client", "list"], &[]);
    assert!(ok, "{err}");
    assert!(err.contains("first start"), "{err}");
    assert!(root.path().join("latchkey-data/latchkey.db").exists());
}

#[test]
fn the_server_logs_where_its_store_is() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let db = dir.path().join("latchkey.db");
    let line = log
        .lines()
        .find(|l| l.contains("\"store\""))
        .unwrap_or_else(|| panic!("a store line in {log}"));
    assert!(line.contains(db.to_str().expect("utf-8")), "{line}");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let dir = data_dir();
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = run(dir.path(), &["completions", shell], &[]);
        assert!(ok, "{err}");
        for word in ["export", "import", "serve", "data-dir"] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
        assert!(
            out.contains("--create") || out.contains("-l create"),
            "{shell} completion lacks --create"
        );
    }
    let (ok, _, _) = run(dir.path(), &["completions", "tcsh"], &[]);
    assert!(!ok, "an unknown shell is refused");
    let (ok, man, err) = run(dir.path(), &["man"], &[]);
    assert!(ok, "{err}");
    assert!(
        man.starts_with(".ie") || man.contains(".TH latchkey"),
        "{man}"
    );
    assert!(
        man.contains("LATCHKEY_STORE__URL"),
        "the environment is in the page"
    );
    let pages = dir.path().join("man");
    let (ok, _, err) = run(
        dir.path(),
        &["man", "--out-dir", pages.to_str().expect("utf-8")],
        &[],
    );
    assert!(ok, "{err}");
    assert!(pages.join("latchkey.1").exists());
    assert!(pages.join("latchkey-export.1").exists());
    let (ok, help, _) = run(dir.path(), &["--help"], &[]);
    assert!(ok);
    assert!(
        help.contains("LATCHKEY_DATA_DIR") && help.contains("latchkey.toml"),
        "{help}"
    );
    assert!(
        !dir.path().join("latchkey.db").exists(),
        "help opens no store"
    );
}
