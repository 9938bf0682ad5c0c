//! `latchkey export` and `latchkey import`: the durable records of one store in a versioned
//! JSON file, and that file written into another store. This is how an operator outgrows the
//! embedded store: export from SQLite, import into PostgreSQL (with Redis for tokens), and
//! every client, user, consent and signing key keeps working.
//!
//! What goes in: clients (secret digests, never secrets; a `client_secret_jwt` secret stays
//! sealed), OAuth 1.0a consumers, dynamic-registration records and initial access tokens
//! (digests), users (password hashes and claims), consents, the resources stored at run time
//! (not the settings' `[[resources]]`), and signing keys as stored (sealed under the
//! key-encryption key, so the target needs the same KEK; consumer secrets likewise derive
//! from `oauth1.key`). What stays out: tokens, codes and login sessions (users sign in again,
//! clients get new tokens).
//!
//! Import checks the whole file against the target before it writes anything: the format
//! and version, every record, references between records, that the target's key-encryption
//! key opens the sealed values ([`Checked::of`], before the target store is even opened), and
//! each record's counterpart in the target. A record the target already holds unchanged is
//! skipped, so importing twice is harmless; a record the target holds differently is a
//! conflict, and any conflict refuses the whole import. The store traits have no transaction
//! across records, so a failure while writing (a lost connection) stops with a report of
//! exactly what was written; running the import again completes it.

pub mod records;

use crate::store::AnyStore;
use anyhow::Context;
use base64::Engine;
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::indicator::{RegisteredResource, Resources};
use latchkey_core::jose::{Kek, SigningKey};
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{
    ClientStore, ConsentStore, KeyStore, KeyUpdate, ResourceStore, UserStore,
};
use latchkey_core::user::User;
use latchkey_oauth1::store::{Consumer, OAuth1Store};
use records::{
    ClientRecord, ConsentEntry, ConsumerRecord, InitialTokenRecord, KeyRecord, RegistrationRecord,
    ResourceRecord, UserRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The value of the file's `format` member.
pub const FORMAT: &str = "latchkey-export";
/// The version of the format this code writes.
pub const VERSION: u64 = 2;
/// The versions this code reads: 1 (before stored resources were exported: a version 1 file
/// has no `resources`) and 2.
pub const READABLE: [u64; 2] = [1, 2];

/// The export file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] for files this code writes.
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
    /// Resources stored at run time (RFC 8707); absent from version 1 files.
    #[serde(default)]
    pub resources: Vec<ResourceRecord>,
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
    let resources = store.list_resources().await.context("listing resources")?;
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
        resources: resources.iter().map(ResourceRecord::from).collect(),
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
        Some(version) if READABLE.contains(&version) => {
            if version == 1 && value.get("resources").is_some() {
                anyhow::bail!("malformed export: a version 1 file has no \"resources\"");
            }
        }
        Some(other) => anyhow::bail!(
            "export format version {other} is not supported: this latchkey reads versions 1 to {VERSION}"
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
    resources: Vec<RegisteredResource>,
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

/// Where to copy `<data_dir>/kek` from, or what to set instead.
const KEK_HINT: &str = "the target must use the source's key-encryption key: copy \
     <data_dir>/kek from the source's data directory, or set LATCHKEY_KEYS__KEK";

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
        unique("resource", file.resources.iter().map(|r| r.id.as_str()))?;
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
            resources: file
                .resources
                .iter()
                .map(ResourceRecord::to_resource)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the file holds values sealed under a key-encryption key: signing keys, or the
    /// sealed secrets of `client_secret_jwt` clients.
    fn has_sealed(&self) -> bool {
        !self.keys.is_empty()
            || self
                .clients
                .iter()
                .any(|c| c.metadata.sealed_secret.is_some())
    }

    /// Checks that `kek` opens every sealed value of the file. Without it they would be
    /// imported unusable.
    fn check_kek(&self, kek: &Kek) -> anyhow::Result<()> {
        for key in &self.keys {
            if kek.open(&key.sealed_private, key.kid.as_bytes()).is_err() {
                anyhow::bail!(
                    "signing key {:?} does not open with this server's key-encryption key; {KEK_HINT}",
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
                        "the sealed secret of client {:?} does not open with this server's key-encryption key; {KEK_HINT}",
                        client.id.as_str()
                    );
                }
            }
        }
        Ok(())
    }
}

/// A file whose records are checked on their own and against the target's key-encryption
/// key: what [`import`] compares with the target and writes.
#[derive(Debug)]
pub struct Checked(Records);

impl Checked {
    /// Checks `file` (see the module documentation). `kek` is the target's key-encryption key,
    /// `None` when the target has none yet: then a file with sealed values is refused, since a
    /// key made for the target could not open them. Reads and writes nothing, so a refusal
    /// leaves the target as it was.
    pub fn of(file: &ExportFile, kek: Option<&Kek>) -> anyhow::Result<Self> {
        let records = Records::of(file)?;
        match kek {
            Some(kek) => records.check_kek(kek)?,
            None if records.has_sealed() => anyhow::bail!(
                "the export holds values sealed under a key-encryption key and the target has none; {KEK_HINT}"
            ),
            None => {}
        }
        Ok(Self(records))
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
const KINDS: [&str; 8] = [
    "signing keys",
    "clients",
    "oauth1 consumers",
    "client registrations",
    "initial access tokens",
    "users",
    "consents",
    "resources",
];

/// Which records of the file the target lacks.
#[derive(Default)]
struct Plan {
    keys: Vec<SigningKey>,
    clients: Vec<Client>,
    consumers: Vec<Consumer>,
    registrations: Vec<ClientRegistration>,
    initial_tokens: Vec<InitialAccessToken>,
    users: Vec<User>,
    consents: Vec<(String, String, ScopeSet, UnixTime)>,
    resources: Vec<RegisteredResource>,
    counts: Counts,
}

/// The verdicts of [`plan`] as they are reached: the counts and the conflicts.
#[derive(Default)]
struct Verdicts {
    counts: Counts,
    conflicts: Vec<String>,
}

impl Verdicts {
    /// The one rule for every record of the file: written (into `to_write`) when the target
    /// holds nothing under its key, skipped when it holds it unchanged, a conflict (`differs`
    /// says which) when it holds it otherwise.
    fn sort<T: PartialEq>(
        &mut self,
        kind: &'static str,
        to_write: &mut Vec<T>,
        record: T,
        held: Option<&T>,
        differs: impl FnOnce(&T) -> String,
    ) {
        match held {
            None => {
                self.counts.add(kind, true);
                to_write.push(record);
            }
            Some(held) if *held == record => self.counts.add(kind, false),
            Some(_) => self.conflicts.push(differs(&record)),
        }
    }
}

/// Compares each record with its counterpart in the target; a different counterpart is a
/// conflict, and all conflicts are reported together. A resource the target's settings
/// (`configured`) define is a conflict too: the settings would hide it.
async fn plan(store: &AnyStore, records: Records, configured: &Resources) -> anyhow::Result<Plan> {
    let mut v = Verdicts::default();
    let mut plan = Plan::default();
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
        v.conflicts.push(format!(
            "the target already has signing keys of its own ({}): import into a store no server has started on",
            own.join(", ")
        ));
    }
    for key in records.keys {
        let held = held_keys.get(key.kid.as_str()).copied();
        v.sort("signing keys", &mut plan.keys, key, held, |k| {
            format!("signing key {:?} differs in the target", k.kid)
        });
    }
    for client in records.clients {
        let held = store.get_client(client.id.as_str()).await?;
        v.sort("clients", &mut plan.clients, client, held.as_ref(), |c| {
            format!(
                "client {:?} exists in the target with other settings",
                c.id.as_str()
            )
        });
    }
    for consumer in records.consumers {
        let held = store.get_consumer(&consumer.client_id).await?;
        v.sort(
            "oauth1 consumers",
            &mut plan.consumers,
            consumer,
            held.as_ref(),
            |c| {
                format!(
                    "OAuth 1.0a consumer {:?} differs in the target",
                    c.client_id
                )
            },
        );
    }
    for reg in records.registrations {
        let held = store.get_registration(&reg.client_id).await?;
        v.sort(
            "client registrations",
            &mut plan.registrations,
            reg,
            held.as_ref(),
            |r| {
                format!(
                    "the registration of client {:?} differs in the target",
                    r.client_id
                )
            },
        );
    }
    let held_tokens = store.list_initial_tokens().await?;
    for token in records.initial_tokens {
        let held = held_tokens.iter().find(|t| t.id == token.id);
        v.sort(
            "initial access tokens",
            &mut plan.initial_tokens,
            token,
            held,
            |t| format!("initial access token {:?} differs in the target", t.id),
        );
    }
    for user in records.users {
        let by_name = store.get_user(&user.username).await?;
        if by_name.is_none()
            && let Some(held) = store.get_user_by_id(&user.id).await?
        {
            v.conflicts.push(format!(
                "user id {:?} belongs to {:?} in the target, not {:?}",
                user.id, held.username, user.username
            ));
            continue;
        }
        v.sort("users", &mut plan.users, user, by_name.as_ref(), |u| {
            format!(
                "user {:?} exists in the target with another id, password or claims",
                u.username
            )
        });
    }
    for consent in records.consents {
        let (subject, client_id, _, at) = &consent;
        // Consents compare by scope: when the target's was granted does not matter.
        let held = store
            .get_consent(subject, client_id)
            .await?
            .map(|scope| (subject.clone(), client_id.clone(), scope, *at));
        v.sort(
            "consents",
            &mut plan.consents,
            consent,
            held.as_ref(),
            |(subject, client_id, ..)| {
                format!(
                    "the consent of user id {subject:?} to client {client_id:?} differs in the target"
                )
            },
        );
    }
    for resource in records.resources {
        if configured.get(resource.id.as_str()).is_some() {
            v.conflicts.push(format!(
                "resource {:?} is defined in the target's settings ([[resources]]), which would hide it",
                resource.id.as_str()
            ));
            continue;
        }
        let held = store.get_resource(resource.id.as_str()).await?;
        v.sort(
            "resources",
            &mut plan.resources,
            resource,
            held.as_ref(),
            |r| format!("resource {:?} differs in the target", r.id.as_str()),
        );
    }
    if !v.conflicts.is_empty() {
        anyhow::bail!(
            "nothing was imported: {} conflict(s) with the target:\n  {}",
            v.conflicts.len(),
            v.conflicts.join("\n  ")
        );
    }
    plan.counts = v.counts;
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

/// Imports the checked file into `store`: compares it with the target (see the module
/// documentation), then, unless `dry_run`, writes the records the target lacks.
/// `configured` is the target's `[[resources]]` registry.
pub async fn import(
    store: &AnyStore,
    checked: Checked,
    configured: &Resources,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    let plan = plan(store, checked.0, configured).await?;
    let counts = plan.counts.clone();
    if !dry_run {
        write(store, plan).await?;
    }
    Ok(ImportReport { dry_run, counts })
}

/// Writes `records` of `kind` one by one with `put`, counting each in `done`; an error names
/// the record (`what`).
async fn write_each<'a, T, R, E, Fut>(
    done: &mut Counts,
    kind: &'static str,
    records: &'a [T],
    what: impl Fn(&T) -> String,
    put: impl Fn(&'a T) -> Fut,
) -> anyhow::Result<()>
where
    Fut: Future<Output = Result<R, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    for record in records {
        put(record)
            .await
            .with_context(|| format!("writing {}", what(record)))?;
        done.add(kind, true);
    }
    Ok(())
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
        let d = &mut done;
        write_each(d, "clients", &plan.clients, |c| format!("client {:?}", c.id.as_str()), |c| store.put_client(c)).await?;
        write_each(d, "oauth1 consumers", &plan.consumers, |c| format!("consumer {:?}", c.client_id), |c| store.put_consumer(c)).await?;
        write_each(d, "client registrations", &plan.registrations, |r| format!("the registration of {:?}", r.client_id), |r| store.put_registration(r)).await?;
        write_each(d, "initial access tokens", &plan.initial_tokens, |t| format!("initial access token {:?}", t.id), |t| store.save_initial_token(t)).await?;
        write_each(d, "users", &plan.users, |u| format!("user {:?}", u.username), |u| store.put_user(u)).await?;
        write_each(d, "consents", &plan.consents, |(s, c, ..)| format!("the consent of {s:?} to {c:?}"), |(s, c, scope, at)| store.put_consent(s, c, scope, *at)).await?;
        write_each(d, "resources", &plan.resources, |r| format!("resource {:?}", r.id.as_str()), |r| store.create_resource(r)).await?;
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
            "signing_keys": [],
            "resources": [{
                "id": "https://api.example/mcp", "name": "Tools", "scopes": ["read"],
                "clients": ["c1"]
            }]
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
    fn version_1_files_without_resources_still_read() {
        let mut f = file();
        f["version"] = 1.into();
        assert!(records(&f).is_err(), "version 1 had no resources");
        f.as_object_mut().expect("object").remove("resources");
        let r = records(&f).expect("version 1 reads");
        assert!(r.resources.is_empty());
        assert_eq!(r.clients.len(), 1);
        let r = records(&file()).expect("version 2 reads");
        assert_eq!(r.resources[0].id.as_str(), "https://api.example/mcp");
        assert_eq!(r.resources[0].clients, Some(vec!["c1".to_owned()]));
    }

    #[test]
    fn sealed_values_need_the_targets_key_encryption_key() {
        let plain = parse(&file().to_string()).expect("file");
        assert!(
            Checked::of(&plain, None).is_ok(),
            "nothing sealed: no key needed"
        );
        let mut sealed = file();
        sealed["clients"][0]["metadata"]["sealed_secret"] = "AAAA".into();
        let sealed = parse(&sealed.to_string()).expect("file");
        let err = Checked::of(&sealed, None).expect_err("refused").to_string();
        assert!(err.contains("LATCHKEY_KEYS__KEK"), "{err}");
    }

    #[test]
    fn malformed_or_inconsistent_records_are_refused() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 9] = [
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
            ("resource twice", |f| {
                let r = f["resources"][0].clone();
                f["resources"].as_array_mut().expect("array").push(r);
            }),
            ("resource id", |f| {
                f["resources"][0]["id"] = "https://api.example/#frag".into()
            }),
            ("resource scope", |f| {
                f["resources"][0]["scopes"][0] = "two words".into()
            }),
        ];
        for (name, change) in cases {
            let mut f = file();
            change(&mut f);
            assert!(records(&f).is_err(), "{name} is refused");
        }
    }
}
