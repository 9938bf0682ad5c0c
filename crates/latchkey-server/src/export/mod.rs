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

mod import;
pub mod records;

pub use import::{Counts, ImportReport, import};

use crate::store::AnyStore;
use anyhow::Context;
use base64::Engine;
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::indicator::RegisteredResource;
use latchkey_core::jose::{Kek, SigningKey};
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{ClientStore, ConsentStore, KeyStore, ResourceStore, UserStore};
use latchkey_core::user::User;
use latchkey_oauth1::store::{Consumer, OAuth1Store};
use records::{
    ClientRecord, ConsentEntry, ConsumerRecord, InitialTokenRecord, KeyRecord, RegistrationRecord,
    ResourceRecord, UserRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
