//! The `latchkey` command line: `serve`, and the administration of clients and users
//! (the seeds' `create_client_credentials`). Admin commands work on the same store as the
//! server, even while it runs.

use crate::settings::{Overrides, Settings};
use crate::store::AnyStore;
use clap::{Args, Parser, Subcommand};
use latchkey_core::client::{Client, ClientType, GrantType, NewClient};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::password;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::store::{ClientStore, StoreErrorKind, UserStore};
use latchkey_core::user::User;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// Latchkey: an OAuth 2.0 authorization server.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
pub struct Cli {
    /// A TOML settings file (default: ./latchkey.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store (default: ./latchkey-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Bring the store's schema up to date and print its version (the server does this at
    /// start-up too; run it first when several nodes share a database).
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage built-in users (resource owners).
    #[command(subcommand)]
    User(UserCommand),
}

/// Client administration.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its credentials (the secret is shown only once).
    Create(CreateClient),
    /// List registered clients.
    List,
    /// Show one client.
    Show {
        /// The client id.
        id: String,
    },
    /// Delete a client and every token issued to it.
    Delete {
        /// The client id.
        id: String,
    },
}

/// Options of `client create`.
#[derive(Debug, Args)]
pub struct CreateClient {
    /// Display name, shown on consent pages.
    #[arg(long)]
    pub name: String,
    /// A public client (no secret: browser or native apps).
    #[arg(long)]
    pub public: bool,
    /// A grant the client may use (repeatable): authorization_code, client_credentials,
    /// password, refresh_token, implicit. Default: client_credentials, authorization_code
    /// and refresh_token (public clients: authorization_code and refresh_token).
    #[arg(long = "grant-type", value_name = "GRANT")]
    pub grant_types: Vec<String>,
    /// A redirect URI (repeatable), matched exactly.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// The scopes the client may be granted, space-separated (default: the server's).
    #[arg(long)]
    pub scope: Option<String>,
    /// The scopes granted when a request names none (default: the server's).
    #[arg(long)]
    pub default_scope: Option<String>,
    /// Bind the client's tokens to the User-Agent and IP address they were issued to; a token
    /// used from elsewhere is revoked.
    #[arg(long)]
    pub bind_tokens: bool,
    /// Use this client id instead of a generated one.
    #[arg(long)]
    pub id: Option<String>,
    /// Print the credentials as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also an OAuth 1.0a consumer: the client id is its consumer key, and the secret printed
    /// is its consumer secret (also valid as the OAuth 2.0 client secret).
    #[arg(long)]
    pub oauth1: bool,
    /// The PEM RSA public key of an OAuth 1.0a consumer that signs with RSA-SHA1 (implies
    /// `--oauth1`).
    #[arg(long, value_name = "FILE")]
    pub rsa_public_key: Option<PathBuf>,
}

/// User administration.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from the terminal, or from stdin.
    Add(UserPassword),
    /// Change a user's password.
    Passwd(UserPassword),
    /// Delete a user and every token issued for them.
    Delete {
        /// The user name.
        username: String,
    },
    /// List users.
    List,
}

/// A user name and where the password comes from.
#[derive(Debug, Args)]
pub struct UserPassword {
    /// The user name.
    pub username: String,
    /// Read the password from the first line of stdin instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

impl Cli {
    /// Loads settings with this command line's overrides.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let listen = match &self.command {
            Command::Serve { listen } => listen.clone(),
            _ => None,
        };
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
        };
        Settings::load(self.config.as_deref(), &overrides).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Runs a client command against the store.
pub async fn client(cmd: ClientCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let result = client_inner(cmd, &store, settings).await;
    store.close().await;
    result
}

async fn client_inner(
    cmd: ClientCommand,
    store: &AnyStore,
    settings: &Settings,
) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create(args) => create_client(args, store, settings).await,
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                println!("No clients. Create one with: latchkey client create --name NAME");
            }
            for c in clients {
                println!("{}\t{}\t{}\t{}", c.id, kind(&c), grants(&c), c.name);
            }
            Ok(())
        }
        ClientCommand::Show { id } => {
            let Some(c) = store.get_client(&id).await? else {
                anyhow::bail!("no client with id {id:?}");
            };
            println!("client_id:      {}", c.id);
            println!("name:           {}", c.name);
            println!("type:           {}", kind(&c));
            println!("grant_types:    {}", grants(&c));
            println!("redirect_uris:  {}", c.redirect_uris.join(" "));
            let show = |s: &Option<ScopeSet>| {
                s.as_ref()
                    .map_or("(server default)".to_owned(), ToString::to_string)
            };
            println!("scopes:         {}", show(&c.scopes));
            println!("default_scopes: {}", show(&c.default_scopes));
            println!("bind_tokens:    {}", c.bind_tokens);
            println!("created_at:     {}", c.created_at.0);
            Ok(())
        }
        ClientCommand::Delete { id } => {
            if store.delete_client(&id).await? {
                println!("Deleted client {id} and its tokens.");
                Ok(())
            } else {
                anyhow::bail!("no client with id {id:?}")
            }
        }
    }
}

async fn create_client(
    args: CreateClient,
    store: &AnyStore,
    settings: &Settings,
) -> anyhow::Result<()> {
    let oauth1 = args.oauth1 || args.rsa_public_key.is_some();
    if oauth1 && args.public {
        anyhow::bail!("an OAuth 1.0a consumer holds a secret: drop --public");
    }
    let rsa_public_key = match &args.rsa_public_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            latchkey_oauth1::signature::RsaPublicKey::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("{}: {e} (expected a PEM RSA public key)", path.display())
            })?;
            Some(pem)
        }
        None => None,
    };
    let mut new = if args.public {
        NewClient::public(&args.name)
    } else {
        NewClient::confidential(&args.name)
    };
    if !args.grant_types.is_empty() {
        let grants = args
            .grant_types
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| anyhow::anyhow!("unknown grant type {g:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if args.public && grants.contains(&GrantType::ClientCredentials) {
            anyhow::bail!("public clients cannot use client_credentials (RFC 6749 §4.4)");
        }
        new = new.grant_types(grants);
    }
    for uri in &args.redirect_uris {
        if !latchkey_core::redirect::is_registrable(uri) {
            anyhow::bail!(
                "redirect URI {uri:?} must be absolute, without a fragment, and not javascript:/data:"
            );
        }
    }
    new = new
        .redirect_uris(args.redirect_uris.clone())
        .bind_tokens(args.bind_tokens);
    if let Some(scope) = &args.scope {
        new = new.scopes(ScopeSet::parse(scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?);
    }
    if let Some(scope) = &args.default_scope {
        new = new.default_scopes(
            ScopeSet::parse(scope).map_err(|e| anyhow::anyhow!("--default-scope: {e}"))?,
        );
    }
    if let Some(id) = &args.id {
        latchkey_core::client::ClientId::parse(id)
            .map_err(|_| anyhow::anyhow!("--id must be 1-255 printable ASCII characters"))?;
        if store.get_client(id).await?.is_some() {
            anyhow::bail!("a client with id {id:?} already exists");
        }
        new = new.id(id);
    }
    let (mut client, mut secret) = new.build(&OsEntropy, SystemClock.now());
    if oauth1 {
        // OAuth 1.0a needs the secret itself at every request (HMAC); it is derived from the
        // server's key rather than stored, and serves as the OAuth 2.0 secret too.
        let derived = crate::app::oauth1_key(settings)?.consumer_secret(client.id.as_str());
        client.secret_digest = Some(derived.digest());
        secret = Some(derived);
    }
    store.put_client(&client).await?;
    if oauth1 {
        use latchkey_oauth1::store::OAuth1Store;
        store
            .put_consumer(&latchkey_oauth1::store::Consumer {
                client_id: client.id.to_string(),
                rsa_public_key: rsa_public_key.map(|pem| pem.trim().to_owned()),
                created_at: SystemClock.now(),
            })
            .await?;
    }
    if args.json {
        let out = serde_json::json!({
            "client_id": client.id.as_str(),
            "client_secret": secret.as_ref().map(Secret::expose),
            "client_type": kind(&client),
            "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "oauth1": oauth1,
        });
        println!("{out}");
    } else {
        println!("Created {} client {:?}.", kind(&client), client.name);
        println!("client_id:     {}", client.id);
        if let Some(secret) = &secret {
            println!("client_secret: {}", secret.expose());
            println!("The secret is shown only this once; only its hash is stored.");
        }
        if oauth1 {
            println!("OAuth 1.0a consumer key: {} (same secret)", client.id);
        }
    }
    Ok(())
}

fn kind(c: &Client) -> &'static str {
    match c.client_type() {
        ClientType::Confidential => "confidential",
        ClientType::Public => "public",
    }
}

fn grants(c: &Client) -> String {
    c.grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a user command against the store.
pub async fn user(cmd: UserCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let result = user_inner(cmd, &store).await;
    store.close().await;
    result
}

async fn user_inner(cmd: UserCommand, store: &AnyStore) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(args) => {
            if args.username.is_empty() || args.username.len() > 255 {
                anyhow::bail!("user names are 1 to 255 bytes");
            }
            if store.get_user(&args.username).await?.is_some() {
                anyhow::bail!(
                    "user {:?} exists; use `latchkey user passwd`",
                    args.username
                );
            }
            let password = read_password(args.password_stdin)?;
            let user = User {
                id: random_hex(&OsEntropy, 16),
                username: args.username.clone(),
                password_hash: hash(password).await?,
                created_at: SystemClock.now(),
            };
            match store.put_user(&user).await {
                Err(e) if e.kind() == StoreErrorKind::Conflict => {
                    anyhow::bail!("user {:?} exists", args.username)
                }
                other => other?,
            }
            println!("Added user {:?} (subject {}).", user.username, user.id);
            Ok(())
        }
        UserCommand::Passwd(args) => {
            let Some(mut user) = store.get_user(&args.username).await? else {
                anyhow::bail!("no user {:?}", args.username);
            };
            user.password_hash = hash(read_password(args.password_stdin)?).await?;
            store.put_user(&user).await?;
            println!("Changed the password of {:?}.", user.username);
            Ok(())
        }
        UserCommand::Delete { username } => {
            if store.delete_user(&username).await? {
                println!("Deleted user {username:?} and their tokens.");
                Ok(())
            } else {
                anyhow::bail!("no user {username:?}")
            }
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                println!("{}\t{}", u.id, u.username);
            }
            Ok(())
        }
    }
}

async fn hash(password: Secret) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || password::hash(&password, &OsEntropy)).await??)
}

fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            anyhow::bail!("the passwords differ");
        }
        first
    };
    if password.is_empty() {
        anyhow::bail!("the password must not be empty");
    }
    Ok(Secret::new(password))
}

/// Opens the store, which runs its pending migrations, and closes it again.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    store.close().await;
    println!("The store's schema is up to date.");
    Ok(())
}
