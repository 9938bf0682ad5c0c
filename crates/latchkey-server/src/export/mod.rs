//! `latchkey export` and `latchkey import`: the durable records of one store in a versioned
//! JSON file, and that file written into another store. This is how an operator outgrows the
//! embedded store: export from SQLite, import into PostgreSQL (with Redis for tokens), and
//! every client, user, consent and signing key keeps working.
//!
//! What goes in: clients (secret digests, never secrets; a `client_secret_jwt` secret stays
//! sealed), OAuth 1.0a consumers, dynamic-registration records and initial access tokens
//! (digests), users (password hashes and claims), consents, and signing keys as stored
//! (sealed under the key-encryption key, so the target needs the same KEK; consumer secrets
//! likewise derive from `oauth1.key`). What stays out: tokens, codes and login sessions
//! (users sign in again, clients get new tokens).
//!
//! Import checks the whole file against the target before it writes anything: the format
//! and version, every record, references between records, and each record's counterpart in
//! the target. A record the target already holds unchanged is skipped, so importing twice is
//! harmless; a record the target holds differently is a conflict, and any conflict refuses
//! the whole import. The store traits have no transaction across records, so a failure while
//! writing (a lost connection) stops with a report of exactly what was written; running the
//! import again completes it.

pub mod records;

use crate::store::AnyStore;
use anyhow::Context;
use base64::Engine;
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::jose::{Kek, SigningKey};
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{ClientStore, ConsentStore, KeyStore, KeyUpdate, UserStore};
use latchkey_core::user::User;
use latchkey_oauth1::store::{Consumer, OAuth1Store};
use records::{
    ClientRecord, ConsentEntry, ConsumerRecord, InitialTokenRecord, KeyRecord, RegistrationRecord,
    UserRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The value of the file's `format` member.
pub const FORMAT: &str = "latchkey-export";
/// The version of the format this code writes and the only one it reads.
pub const VERSION: u64 = 1;

/// The export file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for files this code writes.
    pub version: u64,
    /// When the export was taken, seconds since the epoch.
    pub exported_at: i64,
    /// The program that wrote it (`latchkey <version>`), for the operator's information.
    pub generator: String,
    /// Registered clients.
    pub clients: Vec<ClientRecord>,
    /// OAuth 1.0a registrations of clients.
    pub oauth1_consumers: Vec<ConsumerRecord>,
    /// RFC 7592 registrations of self-registered clients.
    pub client_registrations: Vec<RegistrationRecord>,
    /// RFC 7591 initial access tokens (digests).
    pub initial_access_tokens: Vec<InitialTokenRecord>,
    /// Built-in users.
    pub users: Vec<UserRecord>,
    /// Consents of the users.
    pub consents: Vec<ConsentEntry>,
    /// Signing keys, sealed under the key-encryption key.
    pub signing_keys: Vec<KeyRecord>,
}

/// Reads every exported record from `store`.
pub async fn export(store: &AnyStore, now: UnixTime) -> anyhow::Result<ExportFile> {
    let clients = store.list_clients().await.context("listing clients")?;
    let users = store.list_users().await.context("listing users")?;
    let mut consumers = Vec::new();
    let mut registrations = Vec::new();
    for client in &clients {
        let id = client.id.as_str();
        if let Some(c) = store.get_consumer(id).await.context("reading consumers")? {
            consumers.push(ConsumerRecord::from(&c));
        }
        if let Some(r) = store
            .get_registration(id)
            .await
            .context("reading registrations")?
        {
            registrations.push(RegistrationRecord::from(&r));
        }
    }
    let mut consents = Vec::new();
    for user in &users {
        for c in store
            .list_consents(&user.id)
            .await
            .context("listing consents")?
        {
            consents.push(ConsentEntry {
                subject: user.id.clone(),
                client_id: c.client_id,
                scope: c.scope.to_string(),
                granted_at: c.granted_at.0,
            });
        }
    }
    let initial = store
        .list_initial_tokens()
        .await
        .context("listing initial access tokens")?;
    let keys = store.list_keys().await.context("listing signing keys")?;
    Ok(ExportFile {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: now.0,
        generator: format!("latchkey {}", env!("CARGO_PKG_VERSION")),
        clients: clients.iter().map(ClientRecord::from).collect(),
        oauth1_consumers: consumers,
        client_registrations: registrations,
        initial_access_tokens: initial.iter().map(InitialTokenRecord::from).collect(),
        users: users.iter().map(UserRecord::from).collect(),
        consents,
        signing_keys: keys.keys.iter().map(KeyRecord::from).collect(),
    })
}

/// Parses an export file: the format and version are checked first, so a file of another
/// version is refused as such rather than as malformed.
pub fn parse(text: &str) -> anyhow::Result<ExportFile> {
    let value: serde_json::Value = serde_json::from_str(text).context("the file is not JSON")?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        anyhow::bail!("not a Latchkey export: \"format\" must be {FORMAT:?}");
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(VERSION) => {}
        Some(other) => anyhow::bail!(
            "export format version {other} is not supported: this latchkey reads version {VERSION}"
        ),
        None => anyhow::bail!("the export has no numeric \"version\""),
    }
    serde_json::from_value(value).context("malformed export")
}

/// The records of a file, parsed and checked, in the order they are written.
#[derive(Debug, Default)]
struct Records {
    keys: Vec<SigningKey>,
    clients: Vec<Client>,
    consumers: Vec<Consumer>,
    registrations: Vec<ClientRegistration>,
    initial_tokens: Vec<InitialAccessToken>,
    users: Vec<User>,
    consents: Vec<(String, String, ScopeSet, UnixTime)>,
}

/// Refuses a second record with the same key.
fn unique<'a>(kind: &str, keys: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            anyhow::bail!("the export holds {kind} {key:?} twice");
        }
    }
    Ok(())
}

impl Records {
    /// Converts and checks every record, and the references between them.
    fn of(file: &ExportFile) -> anyhow::Result<Self> {
        unique("client", file.clients.iter().map(|c| c.id.as_str()))?;
        unique("user", file.users.iter().map(|u| u.username.as_str()))?;
        unique("user id", file.users.iter().map(|u| u.id.as_str()))?;
        unique(
            "signing key",
            file.signing_keys.iter().map(|k| k.kid.as_str()),
        )?;
        unique(
            "consumer",
            file.oauth1_consumers.iter().map(|c| c.client_id.as_str()),
        )?;
        unique(
            "registration",
            file.client_registrations
                .iter()
                .map(|r| r.client_id.as_str()),
        )?;
        unique(
            "initial access token",
            file.initial_access_tokens.iter().map(|t| t.id.as_str()),
        )?;
        let pairs: Vec<String> = file
            .consents
            .iter()
            .map(|c| format!("{} -> {}", c.subject, c.client_id))
            .collect();
        unique("consent", pairs.iter().map(String::as_str))?;
        let client_ids: BTreeSet<&str> = file.clients.iter().map(|c| c.id.as_str()).collect();
        let user_ids: BTreeSet<&str> = file.users.iter().map(|u| u.id.as_str()).collect();
        let known_client = |kind: &str, id: &str| {
            if client_ids.contains(id) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{kind} refers to client {id:?}, which the export does not hold"
                ))
            }
        };
        for c in &file.oauth1_consumers {
            known_client("an OAuth 1.0a consumer", &c.client_id)?;
        }
        for r in &file.client_registrations {
            known_client("a registration", &r.client_id)?;
        }
        let mut consents = Vec::new();
        for c in &file.consents {
            known_client("a consent", &c.client_id)?;
            if !user_ids.contains(c.subject.as_str()) {
                anyhow::bail!(
                    "a consent refers to user id {:?}, which the export does not hold",
                    c.subject
                );
            }
            consents.push((
                c.subject.clone(),
                c.client_id.clone(),
                c.scope_set()?,
                UnixTime(c.granted_at),
            ));
        }
        Ok(Self {
            keys: file
                .signing_keys
                .iter()
                .map(KeyRecord::to_key)
                .collect::<Result<_, _>>()?,
            clients: file
                .clients
                .iter()
                .map(ClientRecord::to_client)
                .collect::<Result<_, _>>()?,
            consumers: file.oauth1_consumers.iter().map(Consumer::from).collect(),
            registrations: file
                .client_registrations
                .iter()
                .map(RegistrationRecord::to_registration)
                .collect::<Result<_, _>>()?,
            initial_tokens: file
                .initial_access_tokens
                .iter()
                .map(InitialTokenRecord::to_token)
                .collect::<Result<_, _>>()?,
            users: file
                .users
                .iter()
                .map(UserRecord::to_user)
                .collect::<Result<_, _>>()?,
            consents,
        })
    }

    /// Checks that `kek` opens every sealed value of the file: signing keys and the sealed
    /// secrets of `client_secret_jwt` clients. Without it they would be imported unusable.
    fn check_kek(&self, kek: &Kek) -> anyhow::Result<()> {
        const HINT: &str = "the target must use the source's key-encryption key: copy \
             <data_dir>/kek from the source's data directory, or set LATCHKEY_KEYS__KEK";
        for key in &self.keys {
            if kek.open(&key.sealed_private, key.kid.as_bytes()).is_err() {
                anyhow::bail!(
                    "signing key {:?} does not open with this server's key-encryption key; {HINT}",
                    key.kid
                );
            }
        }
        for client in &self.clients {
            if let Some(sealed) = &client.metadata.sealed_secret {
                let opens = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(sealed)
                    .ok()
                    .is_some_and(|b| kek.open(&b, client.id.as_str().as_bytes()).is_ok());
                if !opens {
                    anyhow::bail!(
                        "the sealed secret of client {:?} does not open with this server's key-encryption key; {HINT}",
                        client.id.as_str()
                    );
                }
            }
        }
        Ok(())
    }
}

/// What an import does with each kind of record: how many are new, and how many the target
/// already holds unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records to write (or written).
    pub new: BTreeMap<&'static str, usize>,
    /// Records the target already holds exactly so.
    pub unchanged: BTreeMap<&'static str, usize>,
}

impl Counts {
    fn add(&mut self, kind: &'static str, new: bool) {
        let map = if new {
            &mut self.new
        } else {
            &mut self.unchanged
        };
        *map.entry(kind).or_default() += 1;
    }

    /// One line per kind: `clients: 3 new, 1 unchanged`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for kind in KINDS {
            let new = self.new.get(kind).copied().unwrap_or(0);
            let same = self.unchanged.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "{kind}: {new} new, {same} unchanged");
        }
        out
    }
}

/// The kinds of record, in the order they are written.
const KINDS: [&str; 7] = [
    "signing keys",
    "clients",
    "oauth1 consumers",
    "client registrations",
    "initial access tokens",
    "users",
    "consents",
];

/// Which records of the file the target lacks.
struct Plan {
    keys: Vec<SigningKey>,
    clients: Vec<Client>,
    consumers: Vec<Consumer>,
    registrations: Vec<ClientRegistration>,
    initial_tokens: Vec<InitialAccessToken>,
    users: Vec<User>,
    consents: Vec<(String, String, ScopeSet, UnixTime)>,
    counts: Counts,
}

/// Compares each record with its counterpart in the target; a different counterpart is a
/// conflict, and all conflicts are reported together.
async fn plan(store: &AnyStore, records: Records) -> anyhow::Result<Plan> {
    let mut conflicts = Vec::new();
    let mut plan = Plan {
        keys: Vec::new(),
        clients: Vec::new(),
        consumers: Vec::new(),
        registrations: Vec::new(),
        initial_tokens: Vec::new(),
        users: Vec::new(),
        consents: Vec::new(),
        counts: Counts::default(),
    };
    let held = store.list_keys().await?;
    let held_keys: BTreeMap<&str, &SigningKey> =
        held.keys.iter().map(|k| (k.kid.as_str(), k)).collect();
    let file_kids: BTreeSet<&str> = records.keys.iter().map(|k| k.kid.as_str()).collect();
    let own: Vec<&str> = held_keys
        .keys()
        .copied()
        .filter(|kid| !file_kids.contains(kid))
        .collect();
    if !records.keys.is_empty() && !own.is_empty() {
        conflicts.push(format!(
            "the target already has signing keys of its own ({}): import into a store no server has started on",
            own.join(", ")
        ));
    }
    for key in records.keys {
        match held_keys.get(key.kid.as_str()) {
            None => {
                plan.counts.add("signing keys", true);
                plan.keys.push(key);
            }
            Some(held) if **held == key => plan.counts.add("signing keys", false),
            Some(_) => conflicts.push(format!("signing key {:?} differs in the target", key.kid)),
        }
    }
    for client in records.clients {
        match store.get_client(client.id.as_str()).await? {
            None => {
                plan.counts.add("clients", true);
                plan.clients.push(client);
            }
            Some(held) if held == client => plan.counts.add("clients", false),
            Some(_) => conflicts.push(format!(
                "client {:?} exists in the target with other settings",
                client.id.as_str()
            )),
        }
    }
    for consumer in records.consumers {
        match store.get_consumer(&consumer.client_id).await? {
            None => {
                plan.counts.add("oauth1 consumers", true);
                plan.consumers.push(consumer);
            }
            Some(held) if held == consumer => plan.counts.add("oauth1 consumers", false),
            Some(_) => conflicts.push(format!(
                "OAuth 1.0a consumer {:?} differs in the target",
                consumer.client_id
            )),
        }
    }
    for reg in records.registrations {
        match store.get_registration(&reg.client_id).await? {
            None => {
                plan.counts.add("client registrations", true);
                plan.registrations.push(reg);
            }
            Some(held) if held == reg => plan.counts.add("client registrations", false),
            Some(_) => conflicts.push(format!(
                "the registration of client {:?} differs in the target",
                reg.client_id
            )),
        }
    }
    let held_tokens = store.list_initial_tokens().await?;
    for token in records.initial_tokens {
        match held_tokens.iter().find(|t| t.id == token.id) {
            None => {
                plan.counts.add("initial access tokens", true);
                plan.initial_tokens.push(token);
            }
            Some(held) if *held == token => plan.counts.add("initial access tokens", false),
            Some(_) => conflicts.push(format!(
                "initial access token {:?} differs in the target",
                token.id
            )),
        }
    }
    for user in records.users {
        let by_name = store.get_user(&user.username).await?;
        let by_id = store.get_user_by_id(&user.id).await?;
        match (by_name, by_id) {
            (None, None) => {
                plan.counts.add("users", true);
                plan.users.push(user);
            }
            (Some(held), _) if held == user => plan.counts.add("users", false),
            (Some(_), _) => conflicts.push(format!(
                "user {:?} exists in the target with another id, password or claims",
                user.username
            )),
            (None, Some(held)) => conflicts.push(format!(
                "user id {:?} belongs to {:?} in the target, not {:?}",
                user.id, held.username, user.username
            )),
        }
    }
    for (subject, client_id, scope, at) in records.consents {
        match store.get_consent(&subject, &client_id).await? {
            None => {
                plan.counts.add("consents", true);
                plan.consents.push((subject, client_id, scope, at));
            }
            Some(held) if held == scope => plan.counts.add("consents", false),
            Some(_) => conflicts.push(format!(
                "the consent of user id {subject:?} to client {client_id:?} differs in the target"
            )),
        }
    }
    if !conflicts.is_empty() {
        anyhow::bail!(
            "nothing was imported: {} conflict(s) with the target:\n  {}",
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }
    Ok(plan)
}

/// The outcome of [`import`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// What was (or would be) written, and what was already there.
    pub counts: Counts,
}

/// Imports `file` into `store`: checks everything (see the module documentation), then, unless
/// `dry_run`, writes the records the target lacks. `kek` is the target's key-encryption key,
/// which must open the file's sealed values.
pub async fn import(
    store: &AnyStore,
    file: &ExportFile,
    kek: &Kek,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    let records = Records::of(file)?;
    records.check_kek(kek)?;
    let plan = plan(store, records).await?;
    let counts = plan.counts.clone();
    if !dry_run {
        write(store, plan).await?;
    }
    Ok(ImportReport { dry_run, counts })
}

/// Writes the plan in the order of [`KINDS`]; on an error, says what was written before it.
async fn write(store: &AnyStore, plan: Plan) -> anyhow::Result<()> {
    let mut done = Counts::default();
    let result = async {
        if !plan.keys.is_empty() {
            let generation = store.list_keys().await?.generation;
            let update = KeyUpdate {
                put: plan.keys.clone(),
                delete: Vec::new(),
            };
            if !store.update_keys_if_current(generation, &update).await? {
                anyhow::bail!("the target's signing keys changed during the import (is a server running on it?)");
            }
            for _ in &plan.keys {
                done.add("signing keys", true);
            }
        }
        for client in &plan.clients {
            store
                .put_client(client)
                .await
                .with_context(|| format!("writing client {:?}", client.id.as_str()))?;
            done.add("clients", true);
        }
        for consumer in &plan.consumers {
            store
                .put_consumer(consumer)
                .await
                .with_context(|| format!("writing consumer {:?}", consumer.client_id))?;
            done.add("oauth1 consumers", true);
        }
        for reg in &plan.registrations {
            store
                .put_registration(reg)
                .await
                .with_context(|| format!("writing the registration of {:?}", reg.client_id))?;
            done.add("client registrations", true);
        }
        for token in &plan.initial_tokens {
            store
                .save_initial_token(token)
                .await
                .with_context(|| format!("writing initial access token {:?}", token.id))?;
            done.add("initial access tokens", true);
        }
        for user in &plan.users {
            store
                .put_user(user)
                .await
                .with_context(|| format!("writing user {:?}", user.username))?;
            done.add("users", true);
        }
        for (subject, client_id, scope, at) in &plan.consents {
            store
                .put_consent(subject, client_id, scope, *at)
                .await
                .with_context(|| format!("writing the consent of {subject:?} to {client_id:?}"))?;
            done.add("consents", true);
        }
        anyhow::Ok(())
    }
    .await;
    result.map_err(|e| {
        anyhow::anyhow!(
            "import stopped: {e:#}\nwritten before the error:\n{}run the same import again to complete it (records already written are recognized as unchanged)",
            done.summary()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> serde_json::Value {
        serde_json::json!({
            "format": FORMAT,
            "version": VERSION,
            "exported_at": 1,
            "generator": "test",
            "clients": [{
                "id": "c1", "name": "App", "secret_digest": "ab".repeat(32),
                "redirect_uris": ["https://app.example/cb"],
                "grant_types": ["authorization_code"], "scopes": null, "default_scopes": null,
                "access_token_ttl": null, "refresh_token_ttl": null, "bind_tokens": false,
                "introspect": false, "token_endpoint_auth_method": null, "created_at": 1,
                "metadata": {}
            }],
            "oauth1_consumers": [],
            "client_registrations": [],
            "initial_access_tokens": [],
            "users": [{
                "id": "u1", "username": "alice", "password_hash": "$argon2id$v=19$x",
                "created_at": 1, "claims": {}
            }],
            "consents": [{"subject": "u1", "client_id": "c1", "scope": "openid", "granted_at": 1}],
            "signing_keys": []
        })
    }

    fn records(value: &serde_json::Value) -> anyhow::Result<Records> {
        Records::of(&parse(&value.to_string())?)
    }

    #[test]
    fn a_sound_file_parses_into_records() {
        let r = records(&file()).expect("sound");
        assert_eq!(r.clients.len(), 1);
        assert_eq!(r.users[0].username, "alice");
        assert_eq!(r.consents[0].2.to_string(), "openid");
    }

    #[test]
    fn other_formats_and_versions_are_refused_before_the_records_are_read() {
        let mut f = file();
        f["format"] = "something-else".into();
        assert!(records(&f).is_err());
        let mut f = file();
        f["version"] = 7.into();
        f["unknown_member"] = true.into();
        let err = records(&f).expect_err("refused").to_string();
        assert!(err.contains("version 7"), "{err}");
        let mut f = file();
        f["surprise"] = true.into();
        assert!(records(&f).is_err(), "unknown members are refused");
    }

    #[test]
    fn malformed_or_inconsistent_records_are_refused() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 6] = [
            ("digest", |f| {
                f["clients"][0]["secret_digest"] = "xyz".into()
            }),
            ("grant", |f| {
                f["clients"][0]["grant_types"][0] = "magic".into()
            }),
            ("redirect", |f| {
                f["clients"][0]["redirect_uris"][0] = "javascript:x".into()
            }),
            ("hash", |f| f["users"][0]["password_hash"] = "plain".into()),
            ("consent", |f| f["consents"][0]["client_id"] = "c2".into()),
            ("twice", |f| {
                let c = f["clients"][0].clone();
                f["clients"].as_array_mut().expect("array").push(c);
            }),
        ];
        for (name, change) in cases {
            let mut f = file();
            change(&mut f);
            assert!(records(&f).is_err(), "{name} is refused");
        }
    }
}
