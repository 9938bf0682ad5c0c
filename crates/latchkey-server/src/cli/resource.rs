//! `latchkey resource add|list|show|update|remove`: the run-time resource registry
//! (RFC 8707) from the command line, through the same operations as `/admin/resources`.
//! Resources of the settings' `[[resources]]` are listed and shown, and read-only.

use crate::admin::{ResourceSpec, ResourceUpdate, ResourceView};
use crate::settings::Settings;
use crate::store::AnyStore;
use clap::Subcommand;

/// The resource registry's commands.
#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Add a resource clients may name with `resource`; every node accepts it at once.
    Add {
        /// The identifier: an absolute URI without a fragment, e.g. `https://api.example.com/mcp`.
        id: String,
        /// A human-readable name.
        #[arg(long)]
        name: Option<String>,
        /// A scope a token for it may carry (repeat); without any, every scope.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A client that may ask for it (repeat); without any, every client.
        #[arg(long = "client", value_name = "CLIENT_ID")]
        clients: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the resources: the settings' (read-only) and the stored ones.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one resource.
    Show {
        /// Its identifier.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a stored resource; what no flag names stays as it is.
    Update {
        /// Its identifier.
        id: String,
        /// A new name.
        #[arg(long, conflicts_with = "no_name")]
        name: Option<String>,
        /// Remove the name.
        #[arg(long)]
        no_name: bool,
        /// Replace the scopes a token for it may carry (repeat).
        #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "any_scope")]
        scopes: Vec<String>,
        /// Allow every scope.
        #[arg(long)]
        any_scope: bool,
        /// Replace the clients that may ask for it (repeat).
        #[arg(
            long = "client",
            value_name = "CLIENT_ID",
            conflicts_with = "any_client"
        )]
        clients: Vec<String>,
        /// Allow every client.
        #[arg(long)]
        any_client: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored resource: requests naming it are refused from now on.
    Remove {
        /// Its identifier.
        id: String,
    },
}

/// Some list, or `None` when it is empty (a flag that was not given).
fn given(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

/// A flag pair that sets a value, clears it, or leaves it.
fn change<T>(set: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear { Some(None) } else { set.map(Some) }
}

fn print(view: &ResourceView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(view)?);
        return Ok(());
    }
    let source = match view.source {
        crate::admin::ResourceSource::Settings => "settings",
        crate::admin::ResourceSource::Store => "store",
    };
    println!(
        "{}  [{}]  name: {}  scopes: {}  clients: {}",
        view.id,
        source,
        view.name.as_deref().unwrap_or("-"),
        view.scopes.as_ref().map_or("any".into(), |s| s.join(" ")),
        view.clients.as_ref().map_or("any".into(), |c| c.join(" ")),
    );
    Ok(())
}

/// Runs a `latchkey resource` command.
pub async fn resource(cmd: ResourceCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let admin = super::admin(settings, &store);
    let result = async {
        match cmd {
            ResourceCommand::Add {
                id,
                name,
                scopes,
                clients,
                json,
            } => {
                let spec = ResourceSpec {
                    id,
                    name,
                    scopes: given(scopes),
                    clients: given(clients),
                };
                print(&admin.add_resource(&spec).await?, json)?;
            }
            ResourceCommand::List { json } => {
                let list = admin.list_resources().await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    for view in &list {
                        print(view, false)?;
                    }
                }
            }
            ResourceCommand::Show { id, json } => print(&admin.show_resource(&id).await?, json)?,
            ResourceCommand::Update {
                id,
                name,
                no_name,
                scopes,
                any_scope,
                clients,
                any_client,
                json,
            } => {
                let update = ResourceUpdate {
                    name: change(name, no_name),
                    scopes: change(given(scopes), any_scope),
                    clients: change(given(clients), any_client),
                };
                print(&admin.update_resource(&id, &update).await?, json)?;
            }
            ResourceCommand::Remove { id } => {
                admin.remove_resource(&id).await?;
                println!("removed {id}");
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
