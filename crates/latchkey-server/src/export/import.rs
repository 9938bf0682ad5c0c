//! The import's second half: each checked record compared with its counterpart in the target
//! (new, unchanged, or a conflict; all conflicts refuse the whole file), then the new ones
//! written kind by kind, with a report of what was written if a write fails.

use super::{Checked, Records};
use crate::store::AnyStore;
use anyhow::Context;
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::indicator::{RegisteredResource, Resources};
use latchkey_core::jose::SigningKey;
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{
    ClientStore, ConsentStore, KeyStore, KeyUpdate, ResourceStore, UserStore,
};
use latchkey_core::user::User;
use latchkey_oauth1::store::{Consumer, OAuth1Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

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
