//! The `latchkey` command line: `serve`, and the administration of clients and users
//! (the seeds' `create_client_credentials`). Admin commands work on the same store as the
//! server, even while it runs.

use crate::admin::{Admin, AdminError, ClientSpec, ClientUpdate, ClientView};
use crate::settings::{Overrides, Settings};
use crate::store::AnyStore;
use clap::{Args, Parser, Subcommand};
use latchkey_core::secret::Secret;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

mod claims;
pub mod first_contact;
mod logout;
mod resource;
pub mod transfer;

pub use claims::ClaimArgs;
pub use resource::{ResourceCommand, resource};

/// Latchkey: an OAuth 2.0 authorization server.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about, after_help = first_contact::ENVIRONMENT_HELP)]
pub struct Cli {
    /// A TOML settings file (default: ./latchkey.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store (default: ./latchkey-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Create the store if it does not exist yet. Without it, only the default data
    /// directory (on first start) or an existing directory gets a new store, so a mistyped
    /// `--data-dir` or `store.url` is refused instead of starting empty.
    #[arg(long, global = true)]
    pub create: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[allow(clippy::large_enum_variant)] // parsed once per process, never stored in bulk
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
    /// Revoke or inspect issued tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List or revoke the consents users have given to clients.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Inspect the settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List, rotate or retire the signing keys of ID tokens and JWT access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy the embedded store and its key files into a new directory, consistently, while
    /// the server runs (SQLite's `VACUUM INTO`; every file's SHA-256 in a manifest).
    Backup {
        /// The directory to create (or an empty one). Everything in it is secret.
        dir: PathBuf,
    },
    /// Put a backup into the data directory (which must hold no store yet) and open it,
    /// bringing its schema up to date. `--check` only verifies the backup.
    Restore {
        /// The backup directory.
        dir: PathBuf,
        /// Verify the backup (digests, SQLite integrity) without restoring it.
        #[arg(long)]
        check: bool,
    },
    /// Ask a running server whether it is alive (its `/healthz`): exit status 0 if it answers
    /// `ok`, 1 otherwise. For container health checks and scripts.
    Health {
        /// The URL to ask (default: `/healthz` on the `listen` address of the settings, with
        /// a wildcard address asked on loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        timeout: u64,
    },
    /// Dynamic client registration: initial access tokens.
    #[command(subcommand)]
    Registration(RegistrationCommand),
    /// Write clients, users, consents, signing keys, OAuth 1.0a consumers and registration
    /// records to a versioned JSON file, to move them to another store (tokens and sessions
    /// are left out). The file holds password hashes and secret digests: keep it secret.
    Export {
        /// The file to create (never overwritten), or `-` for stdout (the default).
        file: Option<PathBuf>,
    },
    /// Read a `latchkey export` file into this store. Everything is checked first; records
    /// already there unchanged are skipped, and any conflicting record refuses the import.
    /// The target must use the source's key-encryption key (and `oauth1.key`).
    Import {
        /// The export file, or `-` for stdin.
        file: PathBuf,
        /// Check the file against the store and print what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `latchkey completions bash >
    /// /etc/bash_completion.d/latchkey`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write `latchkey.1`, `latchkey-serve.1`, … into this directory.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// The resources clients may name with `resource` (RFC 8707): add, list, show, update,
    /// remove. Those of the settings' `[[resources]]` are read-only.
    #[command(subcommand)]
    Resource(ResourceCommand),
}

impl Command {
    /// Whether the command opens the store (and so is subject to
    /// [`first_contact::check_store`]). `restore` makes a store on purpose and checks its own
    /// target; the others read no store.
    pub fn opens_store(&self) -> bool {
        !matches!(
            self,
            Command::Config(_)
                | Command::Health { .. }
                | Command::Restore { .. }
                | Command::Completions { .. }
                | Command::Man { .. }
        )
    }
}

/// Dynamic client registration administration (RFC 7591).
#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Initial access tokens: what a developer needs to register a client at `/register`
    /// when registration is not open.
    #[command(subcommand)]
    Token(InitialTokenCommand),
}

/// Initial access tokens (RFC 7591 §3).
#[derive(Debug, Subcommand)]
pub enum InitialTokenCommand {
    /// Make a token; it is printed once and only its digest is stored.
    Create {
        /// Who or what it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime in seconds; without it, valid until revoked.
        #[arg(long)]
        ttl: Option<u64>,
        /// How many registrations it allows; without it, any number.
        #[arg(long)]
        uses: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (never their values).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id; clients it registered stay.
    Revoke {
        /// The token's id, from `list`.
        id: String,
    },
}

/// Runs a `latchkey registration` command.
pub async fn registration(cmd: RegistrationCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let admin = admin(settings, &store);
    let RegistrationCommand::Token(cmd) = cmd;
    let result = async {
        match cmd {
            InitialTokenCommand::Create {
                description,
                ttl,
                uses,
                json,
            } => {
                let new = crate::admin::NewInitialToken {
                    description,
                    ttl,
                    uses,
                };
                let created = admin.create_initial_token(&new).await?;
                if json {
                    println!("{}", serde_json::to_string(&created)?);
                } else {
                    println!("id:    {}", created.view.id);
                    println!("token: {}", created.token);
                    eprintln!("The token is shown only now; send it as `Authorization: Bearer` to /register.");
                }
            }
            InitialTokenCommand::List { json } => {
                let tokens = admin.list_initial_tokens().await?;
                if json {
                    println!("{}", serde_json::to_string(&tokens)?);
                } else {
                    for t in tokens {
                        println!(
                            "{}  uses left: {}  expires: {}  {}",
                            t.id,
                            t.uses_left.map_or("any".into(), |n| n.to_string()),
                            t.expires_at.map_or("never".into(), |at| at.to_string()),
                            t.description,
                        );
                    }
                }
            }
            InitialTokenCommand::Revoke { id } => {
                admin.revoke_initial_token(&id).await?;
                println!("revoked {id}");
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Signing-key administration. Running servers pick changes up within a minute.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys with their state (next, active, retiring) and times.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate an algorithm's key: the new key is published now and signs after the
    /// publish-ahead time; the old one stays published until what it signed has expired.
    Rotate {
        /// ES256, RS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Sign with the new key at once (a compromised key): relying parties that cached the
        /// JWKS may reject its first tokens until they fetch it again.
        #[arg(long)]
        immediate: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retire a key now: it stops signing (a successor takes over) and stays published until
    /// what it signed has expired.
    Retire {
        /// The key id (`kid`).
        kid: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `latchkey keys` command.
pub async fn keys(cmd: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let admin = admin(settings, &store);
    let result = async {
        let (keys, json) = match cmd {
            KeysCommand::List { json } => (admin.list_keys().await?, json),
            KeysCommand::Rotate {
                alg,
                immediate,
                json,
            } => {
                let alg = crate::admin::signing_alg(Some(&alg))?;
                (admin.rotate_keys(alg, immediate).await?, json)
            }
            KeysCommand::Retire { kid, json } => (admin.retire_key(&kid).await?, json),
        };
        if json {
            println!("{}", serde_json::to_string(&keys)?);
        } else {
            for key in keys {
                println!(
                    "{}  {:<5}  {:<8}  signs from {}{}",
                    key.kid,
                    key.alg,
                    key.state,
                    key.activates_at,
                    key.retires_at
                        .map(|t| format!(" until {t}"))
                        .unwrap_or_default(),
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Token administration.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke a token read from stdin (a refresh token takes every token of its grant).
    Revoke {
        /// Refused: a token on the command line is visible in the process list and the shell
        /// history. Kept only to answer with a message that says to use stdin.
        #[arg(hide = true)]
        token: Option<String>,
    },
    /// Show what a token read from stdin is (RFC 7662 introspection, without client
    /// authentication).
    Introspect {
        /// Refused, as for `revoke`.
        #[arg(hide = true)]
        token: Option<String>,
    },
}

/// Consent administration.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// List the clients a user has allowed, with the scopes and when.
    List {
        /// The user name.
        username: String,
    },
    /// Revoke a user's consent to a client: every token the client holds for the user is
    /// revoked, and the next authorization asks the user again.
    Revoke {
        /// The user name.
        username: String,
        /// The client id.
        client_id: String,
    },
}

/// Settings commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (defaults, file, environment, flags) with secrets redacted.
    Show,
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
    /// Change a client's settings (never its secret: see `rotate-secret`); what is not named
    /// stays as it is.
    Update(UpdateClient),
    /// Delete a client and every token issued to it.
    Delete {
        /// The client id.
        id: String,
    },
    /// Give a confidential client a new secret (and an OAuth 1.0a consumer a new consumer
    /// secret, revoking its OAuth 1.0a tokens); prints them once. The old ones stop working.
    RotateSecret {
        /// The client id.
        id: String,
        /// Print the new secrets as JSON.
        #[arg(long)]
        json: bool,
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
    /// password, refresh_token, implicit, device_code (RFC 8628; a TV or a CLI: usually
    /// with --public). Default: client_credentials, authorization_code and refresh_token
    /// (public clients: authorization_code and refresh_token).
    #[arg(long = "grant-type", alias = "grant", value_name = "GRANT")]
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
    /// Let the client introspect tokens issued to other clients (a resource server).
    #[arg(long)]
    pub introspect: bool,
    /// Lifetime of the client's access tokens in seconds (default: the server's).
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<u64>,
    /// Lifetime of the client's refresh tokens in seconds (default: the server's).
    #[arg(long, value_name = "SECONDS")]
    pub refresh_token_ttl: Option<u64>,
    /// The one way the client must authenticate: client_secret_basic, client_secret_post,
    /// none, private_key_jwt (with --jwks-file or --jwks-uri), client_secret_jwt,
    /// tls_client_auth (with one --tls-subject-dn/--tls-san-*) or self_signed_tls_client_auth
    /// (with --jwks-file holding the certificate as x5c) (default: either secret method for a
    /// confidential client, none for a public one).
    #[arg(long, alias = "auth-method", value_name = "METHOD")]
    pub token_endpoint_auth_method: Option<String>,
    /// Use this client id instead of a generated one.
    #[arg(long)]
    pub id: Option<String>,
    /// Print the credentials as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also an OAuth 1.0a consumer: the client id is its consumer key, and a consumer secret
    /// is printed beside the OAuth 2.0 client secret (the two differ).
    #[arg(long)]
    pub oauth1: bool,
    /// The PEM RSA public key of an OAuth 1.0a consumer that signs with RSA-SHA1 (implies
    /// `--oauth1`).
    #[arg(long, value_name = "FILE")]
    pub rsa_public_key: Option<PathBuf>,
    /// The format of the client's access tokens: opaque (default) or jwt (RFC 9068, verified
    /// by resource servers from the server's JWKS).
    #[arg(long, value_name = "FORMAT", value_parser = ["opaque", "jwt"])]
    pub access_token_format: Option<String>,
    /// Require a DPoP proof on every token request of the client, so all its access tokens
    /// are bound to its key (RFC 9449 §5.2).
    #[arg(long)]
    pub dpop_bound_access_tokens: bool,
    /// The client's public keys as a JWK Set file, for `private_key_jwt` (RFC 7523).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks_file: Option<PathBuf>,
    /// Where the client publishes its JWK Set, for `private_key_jwt` (RFC 7523).
    #[arg(long, value_name = "URI")]
    pub jwks_uri: Option<String>,
    /// The OpenID Connect logout registration.
    #[command(flatten)]
    pub logout: LogoutFlags,
    /// The OpenID Connect subject registration.
    #[command(flatten)]
    pub subject: SubjectFlags,
    /// The mutual-TLS registration (RFC 8705).
    #[command(flatten)]
    pub tls: TlsClientFlags,
    /// A JSON file with the client's token exchange policy (RFC 8693, see the README).
    #[arg(long, value_name = "FILE")]
    pub token_exchange_policy: Option<PathBuf>,
    /// Accept only pushed authorization requests from the client (RFC 9126 §6).
    #[arg(long = "require-par", alias = "require-pushed-authorization-requests")]
    pub require_pushed_authorization_requests: bool,
    /// Accept only signed request objects from the client (JAR, RFC 9101 §10.5; needs
    /// --jwks-file or --jwks-uri).
    #[arg(long)]
    pub require_signed_request_object: bool,
    /// The one JWS alg the client signs request objects with (e.g. ES256, RS256, EdDSA).
    #[arg(long, value_name = "ALG")]
    pub request_object_signing_alg: Option<String>,
}

/// The OpenID Connect subject registration of `client create` and `client update`.
#[derive(Debug, Default, Args)]
pub struct SubjectFlags {
    /// `public` (every client sees a user's stable id) or `pairwise` (each sector sees its
    /// own, OpenID Connect Core §8.1).
    #[arg(long, value_name = "TYPE", value_parser = ["public", "pairwise"])]
    pub subject_type: Option<String>,
    /// An https URL of a JSON array listing every redirect URI of the client; fetched and
    /// checked now, its host becomes the pairwise sector.
    #[arg(long, value_name = "URL")]
    pub sector_identifier_uri: Option<String>,
}

/// The certificate rule of a `tls_client_auth` client (RFC 8705 §2.1.2): which one of the
/// certificate's names identifies the client. Shared by `client create` and `client update`
/// (where setting one replaces the registered rule).
#[derive(Debug, Default, Args)]
pub struct TlsRuleFlags {
    /// tls_client_auth: the certificate's subject DN (RFC 4514, e.g. "CN=svc,O=Example").
    #[arg(long = "tls-subject-dn", value_name = "DN")]
    pub subject_dn: Option<String>,
    /// tls_client_auth: a DNS name in the certificate's subject alternative names.
    #[arg(long = "tls-san-dns", value_name = "NAME")]
    pub san_dns: Option<String>,
    /// tls_client_auth: a URI in the certificate's subject alternative names.
    #[arg(long = "tls-san-uri", value_name = "URI")]
    pub san_uri: Option<String>,
    /// tls_client_auth: an IP address in the certificate's subject alternative names.
    #[arg(long = "tls-san-ip", value_name = "ADDRESS")]
    pub san_ip: Option<String>,
    /// tls_client_auth: an email address in the certificate's subject alternative names.
    #[arg(long = "tls-san-email", value_name = "EMAIL")]
    pub san_email: Option<String>,
}

/// The mutual-TLS registration of `client create` (RFC 8705): the certificate rule of a
/// `tls_client_auth` client (one of them), and certificate-bound tokens. A
/// `self_signed_tls_client_auth` client registers its certificate in `--jwks-file` (`x5c`).
#[derive(Debug, Default, Args)]
pub struct TlsClientFlags {
    /// The certificate rule of a `tls_client_auth` client.
    #[command(flatten)]
    pub rule: TlsRuleFlags,
    /// Bind the client's access tokens to its TLS client certificate (RFC 8705 §3).
    #[arg(long = "tls-bound-tokens")]
    pub bound_tokens: bool,
}

/// Reads a token exchange policy file (JSON).
fn policy_file(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))
}

/// The OpenID Connect logout registration of `client create` and `client update`.
#[derive(Debug, Default, Args)]
pub struct LogoutFlags {
    /// Where users may be sent after logging out, matched exactly (repeatable; on update,
    /// replaces the list).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session the client got tokens in ends.
    #[arg(long, value_name = "URI")]
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens must carry the session id (`sid`).
    #[arg(long, value_name = "BOOL")]
    pub backchannel_logout_session_required: Option<bool>,
}

/// Options of `client update`.
#[derive(Debug, Args)]
pub struct UpdateClient {
    /// The client id.
    pub id: String,
    /// A new display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the redirect URIs with these (repeatable).
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Register one more redirect URI (repeatable).
    #[arg(long = "add-redirect-uri", value_name = "URI")]
    pub add_redirect_uris: Vec<String>,
    /// Remove a registered redirect URI (repeatable).
    #[arg(long = "remove-redirect-uri", value_name = "URI")]
    pub remove_redirect_uris: Vec<String>,
    /// Replace the grants the client may use with these (repeatable).
    #[arg(long = "grant-type", alias = "grant", value_name = "GRANT")]
    pub grant_types: Vec<String>,
    /// The scopes the client may be granted, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// The scopes granted when a request names none.
    #[arg(long)]
    pub default_scope: Option<String>,
    /// Lifetime of access tokens in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<u64>,
    /// Lifetime of refresh tokens in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub refresh_token_ttl: Option<u64>,
    /// client_secret_basic, client_secret_post or none.
    #[arg(long, value_name = "METHOD")]
    pub token_endpoint_auth_method: Option<String>,
    /// Return a setting to the server's default (repeatable): scope, default-scope,
    /// access-token-ttl, refresh-token-ttl, token-endpoint-auth-method, sector-identifier-uri,
    /// tls-client-auth (removes the certificate rule), request-object-signing-alg.
    #[arg(long, value_name = "SETTING", value_parser = ["scope", "default-scope", "access-token-ttl", "refresh-token-ttl", "token-endpoint-auth-method", "sector-identifier-uri", "tls-client-auth", "request-object-signing-alg"])]
    pub reset: Vec<String>,
    /// Bind tokens to the User-Agent and IP address they were issued to.
    #[arg(long, value_name = "BOOL")]
    pub bind_tokens: Option<bool>,
    /// Let the client introspect tokens issued to other clients.
    #[arg(long, value_name = "BOOL")]
    pub introspect: Option<bool>,
    /// The OpenID Connect logout registration.
    #[command(flatten)]
    pub logout: LogoutFlags,
    /// The OpenID Connect subject registration.
    #[command(flatten)]
    pub subject: SubjectFlags,
    /// The format of access tokens: opaque or jwt (RFC 9068).
    #[arg(long, value_name = "FORMAT", value_parser = ["opaque", "jwt"])]
    pub access_token_format: Option<String>,
    /// A JSON file with the token exchange policy (RFC 8693) replacing the current one.
    #[arg(long, value_name = "FILE")]
    pub token_exchange_policy: Option<PathBuf>,
    /// Print the client as JSON.
    #[arg(long)]
    pub json: bool,
    /// The protocol switches (mutual TLS, DPoP, PAR, JAR).
    #[command(flatten)]
    pub protocol: ProtocolUpdateFlags,
}

/// The protocol switches of `client update`: the `tls_client_auth` certificate rule (setting
/// one replaces the registered one), certificate- and DPoP-bound tokens, pushed requests and
/// signed request objects.
#[derive(Debug, Default, Args)]
pub struct ProtocolUpdateFlags {
    /// The `tls_client_auth` certificate rule.
    #[command(flatten)]
    pub rule: TlsRuleFlags,
    /// Bind access tokens to the TLS client certificate (RFC 8705 §3).
    #[arg(long = "tls-bound-tokens", value_name = "BOOL")]
    pub bound_tokens: Option<bool>,
    /// Require a DPoP proof on every token request (RFC 9449 §5.2).
    #[arg(long, value_name = "BOOL")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// Accept only pushed authorization requests (RFC 9126 §6).
    #[arg(
        long = "require-par",
        alias = "require-pushed-authorization-requests",
        value_name = "BOOL"
    )]
    pub require_pushed_authorization_requests: Option<bool>,
    /// Accept only signed request objects (RFC 9101 §10.5).
    #[arg(long, value_name = "BOOL")]
    pub require_signed_request_object: Option<bool>,
    /// The one JWS alg request objects may be signed with.
    #[arg(long, value_name = "ALG")]
    pub request_object_signing_alg: Option<String>,
}

impl UpdateClient {
    /// The change these flags describe; setting and resetting the same thing is refused.
    pub fn into_update(self) -> anyhow::Result<ClientUpdate> {
        let reset = |name: &str| self.reset.iter().any(|r| r == name);
        fn either<T>(
            name: &str,
            value: Option<T>,
            reset: bool,
        ) -> anyhow::Result<Option<Option<T>>> {
            match (value, reset) {
                (Some(_), true) => anyhow::bail!("--{name} and --reset {name} contradict"),
                (Some(v), false) => Ok(Some(Some(v))),
                (None, true) => Ok(Some(None)),
                (None, false) => Ok(None),
            }
        }
        Ok(ClientUpdate {
            scope: either("scope", self.scope.clone(), reset("scope"))?,
            default_scope: either(
                "default-scope",
                self.default_scope.clone(),
                reset("default-scope"),
            )?,
            access_token_ttl: either(
                "access-token-ttl",
                self.access_token_ttl,
                reset("access-token-ttl"),
            )?,
            refresh_token_ttl: either(
                "refresh-token-ttl",
                self.refresh_token_ttl,
                reset("refresh-token-ttl"),
            )?,
            token_endpoint_auth_method: either(
                "token-endpoint-auth-method",
                self.token_endpoint_auth_method.clone(),
                reset("token-endpoint-auth-method"),
            )?,
            name: self.name,
            redirect_uris: (!self.redirect_uris.is_empty()).then_some(self.redirect_uris),
            add_redirect_uris: self.add_redirect_uris,
            remove_redirect_uris: self.remove_redirect_uris,
            grant_types: (!self.grant_types.is_empty()).then_some(self.grant_types),
            bind_tokens: self.bind_tokens,
            introspect: self.introspect,
            post_logout_redirect_uris: (!self.logout.post_logout_redirect_uris.is_empty())
                .then_some(self.logout.post_logout_redirect_uris),
            backchannel_logout_uri: self.logout.backchannel_logout_uri.map(Some),
            backchannel_logout_session_required: self.logout.backchannel_logout_session_required,
            access_token_format: self.access_token_format,
            subject_type: self.subject.subject_type.clone().map(Some),
            sector_identifier_uri: either(
                "sector-identifier-uri",
                self.subject.sector_identifier_uri.clone(),
                reset("sector-identifier-uri"),
            )?,
            token_exchange: self
                .token_exchange_policy
                .as_deref()
                .map(policy_file)
                .transpose()?
                .map(Some),
            tls_client_auth_subject_dn: either(
                "tls-client-auth",
                self.protocol.rule.subject_dn.clone(),
                reset("tls-client-auth"),
            )?,
            tls_client_auth_san_dns: either(
                "tls-client-auth",
                self.protocol.rule.san_dns.clone(),
                reset("tls-client-auth"),
            )?,
            tls_client_auth_san_uri: either(
                "tls-client-auth",
                self.protocol.rule.san_uri.clone(),
                reset("tls-client-auth"),
            )?,
            tls_client_auth_san_ip: either(
                "tls-client-auth",
                self.protocol.rule.san_ip.clone(),
                reset("tls-client-auth"),
            )?,
            tls_client_auth_san_email: either(
                "tls-client-auth",
                self.protocol.rule.san_email.clone(),
                reset("tls-client-auth"),
            )?,
            tls_client_certificate_bound_access_tokens: self.protocol.bound_tokens,
            dpop_bound_access_tokens: self.protocol.dpop_bound_access_tokens,
            require_pushed_authorization_requests: self
                .protocol
                .require_pushed_authorization_requests,
            require_signed_request_object: self.protocol.require_signed_request_object,
            request_object_signing_alg: either(
                "request-object-signing-alg",
                self.protocol.request_object_signing_alg.clone(),
                reset("request-object-signing-alg"),
            )?,
        })
    }
}

/// User administration.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from the terminal, or from stdin. Claim options set
    /// what OpenID Connect tells clients about the user.
    Add(UserAdd),
    /// Change a user's OpenID Connect claims: the options given replace those claims,
    /// `--unset` removes one, the others stay.
    Update {
        /// The user name.
        username: String,
        /// The claims to change.
        #[command(flatten)]
        claims: ClaimArgs,
    },
    /// Show a user and their claims, as JSON.
    Show {
        /// The user name.
        username: String,
    },
    /// Change a user's password (ends every login session of the user).
    Passwd(UserPassword),
    /// Delete a user, every token issued for them and their login sessions.
    Delete {
        /// The user name.
        username: String,
    },
    /// Log a user out everywhere: end every login session of the user.
    Logout {
        /// The user name.
        username: String,
    },
    /// List users.
    List,
}

/// A new user: name, where the password comes from, claims.
#[derive(Debug, Args)]
pub struct UserAdd {
    /// The user name and the password's source.
    #[command(flatten)]
    pub user: UserPassword,
    /// The user's claims.
    #[command(flatten)]
    pub claims: ClaimArgs,
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
    let result = match crate::app::oauth1_key(settings) {
        Ok(key) => client_inner(cmd, &admin(settings, &store).with_oauth1_key(key)).await,
        Err(err) => Err(err),
    };
    store.close().await;
    result
}

/// The shared administrative operations, on behalf of the CLI.
fn admin(settings: &Settings, store: &AnyStore) -> Admin {
    let issuer = settings
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    let mut admin = Admin::new(store.clone(), issuer, "cli")
        .with_http_sector_fetch(settings.oidc.allow_http_sector_identifier_uri);
    match crate::outbound::TrustedRoots::load(&settings.outbound) {
        Ok(roots) => admin = admin.with_outbound_roots(roots),
        Err(err) => {
            tracing::warn!(error = %err, "only the system's CA certificates are trusted for sector_identifier_uri");
        }
    }
    if let Ok(resources) = crate::settings::resources::registry(&settings.resources) {
        admin = admin.with_configured_resources(resources);
    }
    if let Ok(policy) = crate::signing_keys::policy(settings) {
        admin = admin.with_key_policy(policy);
    }
    match crate::signing_keys::load_kek(settings) {
        Ok(kek) => admin.with_kek(kek),
        Err(err) => {
            tracing::warn!(error = %err, "no key-encryption key: client_secret_jwt clients cannot be created");
            admin
        }
    }
}

async fn client_inner(cmd: ClientCommand, admin: &Admin) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create(args) => {
            let json = args.json;
            let rsa_public_key = match &args.rsa_public_key {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let jwks = match &args.jwks_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    Some(
                        serde_json::from_str(&text)
                            .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?,
                    )
                }
                None => None,
            };
            let token_exchange = args
                .token_exchange_policy
                .as_deref()
                .map(policy_file)
                .transpose()?;
            let mut spec = args.into_spec();
            spec.token_exchange = token_exchange;
            spec.rsa_public_key = rsa_public_key;
            spec.jwks = jwks;
            let created = admin.create_client(spec).await?;
            if json {
                let out = serde_json::json!({
                    "client_id": created.client.client_id,
                    "client_secret": created.client_secret,
                    "client_type": created.client.client_type,
                    "grant_types": created.client.grant_types,
                    "oauth1": created.oauth1,
                    "oauth1_consumer_secret": created.oauth1_consumer_secret,
                });
                println!("{out}");
            } else {
                let c = &created.client;
                println!("Created {} client {:?}.", c.client_type, c.name);
                println!("client_id:     {}", c.client_id);
                if let Some(secret) = &created.client_secret {
                    println!("client_secret: {secret}");
                }
                if created.oauth1 {
                    println!("OAuth 1.0a consumer key:    {}", c.client_id);
                }
                if let Some(secret) = &created.oauth1_consumer_secret {
                    println!("OAuth 1.0a consumer secret: {secret}");
                }
                if created.client_secret.is_some() {
                    println!("Secrets are shown only this once; they are not stored.");
                }
            }
            Ok(())
        }
        ClientCommand::RotateSecret { id, json } => {
            let rotated = admin.rotate_secret(&id).await?;
            if json {
                println!("{}", serde_json::to_string(&rotated)?);
            } else {
                println!("New secrets of client {}.", rotated.client_id);
                println!("client_secret: {}", rotated.client_secret);
                if let Some(secret) = &rotated.oauth1_consumer_secret {
                    println!("OAuth 1.0a consumer secret: {secret}");
                    println!("The consumer's OAuth 1.0a tokens were revoked.");
                }
                println!("The old secrets no longer work; the new ones are shown only this once.");
            }
            Ok(())
        }
        ClientCommand::List => {
            let clients = admin.list_clients().await?;
            if clients.is_empty() {
                println!("No clients. Create one with: latchkey client create --name NAME");
            }
            for c in clients {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.client_id,
                    c.client_type,
                    c.grant_types.join(","),
                    c.name
                );
            }
            Ok(())
        }
        ClientCommand::Update(args) => {
            let id = args.id.clone();
            let json = args.json;
            let c = admin.update_client(&id, args.into_update()?).await?;
            if json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                println!("Updated client {id}.");
                print_client(&c);
            }
            Ok(())
        }
        ClientCommand::Show { id } => {
            let c = admin.get_client(&id).await?;
            print_client(&c);
            Ok(())
        }
        ClientCommand::Delete { id } => {
            admin.delete_client(&id).await?;
            println!("Deleted client {id} and its tokens.");
            Ok(())
        }
    }
}

/// Prints a client as `client show` does.
fn print_client(c: &ClientView) {
    let or_default = |s: &Option<String>| s.clone().unwrap_or("(server default)".into());
    println!("client_id:      {}", c.client_id);
    println!("name:           {}", c.name);
    println!("type:           {}", c.client_type);
    println!("grant_types:    {}", c.grant_types.join(","));
    println!("redirect_uris:  {}", c.redirect_uris.join(" "));
    println!("scopes:         {}", or_default(&c.scope));
    println!("default_scopes: {}", or_default(&c.default_scope));
    println!("bind_tokens:    {}", c.bind_tokens);
    println!("introspect:     {}", c.introspect);
    let ttl = |t: Option<u64>| t.map_or("(server default)".into(), |t| format!("{t}s"));
    println!("access_ttl:     {}", ttl(c.access_token_ttl));
    println!("refresh_ttl:    {}", ttl(c.refresh_token_ttl));
    println!(
        "auth_method:    {}",
        c.token_endpoint_auth_method
            .unwrap_or(if c.client_type == "public" {
                "none"
            } else {
                "client_secret_basic or client_secret_post"
            })
    );
    println!("created_at:     {}", c.created_at);
}

impl CreateClient {
    /// The registration these flags describe.
    pub fn into_spec(self) -> ClientSpec {
        ClientSpec {
            name: self.name,
            public: self.public,
            grant_types: self.grant_types,
            redirect_uris: self.redirect_uris,
            scope: self.scope,
            default_scope: self.default_scope,
            bind_tokens: self.bind_tokens,
            introspect: self.introspect,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            id: self.id,
            oauth1: self.oauth1,
            rsa_public_key: None,
            jwks: None,
            jwks_uri: self.jwks_uri,
            post_logout_redirect_uris: self.logout.post_logout_redirect_uris,
            backchannel_logout_uri: self.logout.backchannel_logout_uri,
            backchannel_logout_session_required: self
                .logout
                .backchannel_logout_session_required
                .unwrap_or(false),
            access_token_format: self.access_token_format,
            subject_type: self.subject.subject_type,
            sector_identifier_uri: self.subject.sector_identifier_uri,
            tls_client_auth_subject_dn: self.tls.rule.subject_dn,
            tls_client_auth_san_dns: self.tls.rule.san_dns,
            tls_client_auth_san_uri: self.tls.rule.san_uri,
            tls_client_auth_san_ip: self.tls.rule.san_ip,
            tls_client_auth_san_email: self.tls.rule.san_email,
            tls_client_certificate_bound_access_tokens: self.tls.bound_tokens,
            token_exchange: None,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            require_signed_request_object: self.require_signed_request_object,
            request_object_signing_alg: self.request_object_signing_alg,
        }
    }
}

/// Runs a user command against the store.
///
/// `passwd`, `delete` and `logout` end the user's login sessions, whose clients are owed a
/// back-channel logout token each (OpenID Connect Back-Channel Logout 1.0). This process
/// delivers them itself, through a provider built from the same settings as the server's
/// (same issuer, keys and pairwise salt) and the server's delivery code and retry policy; it
/// waits for them before exiting, at most the policy's worst case (40 s), and says how many
/// were delivered. Should that provider not build, the sessions end all the same, and the
/// command says that no logout token was sent.
pub async fn user(cmd: UserCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let result = async {
        let ends_sessions = matches!(
            cmd,
            UserCommand::Passwd(_) | UserCommand::Delete { .. } | UserCommand::Logout { .. }
        );
        if !ends_sessions {
            return user_inner(cmd, &admin(settings, &store)).await;
        }
        // Ending the sessions matters more than telling the clients: if the provider cannot
        // be built (say, the stored keys do not open), the sessions still end, loudly.
        match logout::admin_with_logout(admin(settings, &store), settings, &store).await {
            Ok((admin, delivery)) => {
                let result = user_inner(cmd, &admin).await;
                logout::report(delivery.finish_within_policy().await);
                result
            }
            Err(err) => {
                eprintln!("latchkey: no back-channel logout will be sent: {err:#}");
                user_inner(cmd, &admin(settings, &store)).await
            }
        }
    }
    .await;
    store.close().await;
    result
}

async fn user_inner(cmd: UserCommand, admin: &Admin) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(UserAdd { user: args, claims }) => {
            let claims = claims.patch()?;
            let user = admin
                .add_user_with_claims(&args.username, read_password(args.password_stdin)?, &claims)
                .await
                .map_err(|e| match e {
                    AdminError::Conflict(_) => anyhow::anyhow!(
                        "user {:?} exists; use `latchkey user passwd`",
                        args.username
                    ),
                    other => other.into(),
                })?;
            println!("Added user {:?} (subject {}).", user.username, user.subject);
            Ok(())
        }
        UserCommand::Passwd(args) => {
            admin
                .set_password(&args.username, read_password(args.password_stdin)?)
                .await?;
            println!("Changed the password of {:?}.", args.username);
            Ok(())
        }
        UserCommand::Update { username, claims } => {
            let update = crate::admin::UserUpdate {
                claims: claims.patch()?,
            };
            let user = admin.update_user(&username, update).await?;
            println!("Updated {username:?}.");
            println!("{}", serde_json::to_string_pretty(&user.claims)?);
            Ok(())
        }
        UserCommand::Show { username } => {
            let user = admin.get_user(&username).await?;
            println!("{}", serde_json::to_string_pretty(&user)?);
            Ok(())
        }
        UserCommand::Delete { username } => {
            admin.delete_user(&username).await?;
            println!("Deleted user {username:?} and their tokens.");
            Ok(())
        }
        UserCommand::Logout { username } => {
            let ended = admin.logout_user(&username).await?;
            println!("Logged {username:?} out everywhere ({ended} sessions ended).");
            Ok(())
        }
        UserCommand::List => {
            for u in admin.list_users().await? {
                println!("{}\t{}", u.subject, u.username);
            }
            Ok(())
        }
    }
}

/// Runs a consent command against the store.
pub async fn consent(cmd: ConsentCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let admin = admin(settings, &store);
    let result = async {
        match cmd {
            ConsentCommand::List { username } => {
                let consents = admin.list_consents(&username).await?;
                if consents.is_empty() {
                    println!("{username:?} has allowed no clients.");
                }
                for c in consents {
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.client_id,
                        c.scope,
                        c.granted_at,
                        c.client_name.as_deref().unwrap_or("(deleted client)")
                    );
                }
            }
            ConsentCommand::Revoke {
                username,
                client_id,
            } => {
                let revoked = admin.revoke_consent(&username, &client_id).await?;
                println!(
                    "Revoked the consent of {username:?} to client {client_id} and {} token(s).",
                    revoked.tokens_revoked
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Runs a token command against the store.
pub async fn token(cmd: TokenCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let admin = admin(settings, &store);
    let result = async {
        match cmd {
            TokenCommand::Revoke { token } => {
                let revoked = admin.revoke(&read_token(token)?).await?;
                println!("Revoked {revoked} token(s).");
            }
            TokenCommand::Introspect { token } => {
                let described = admin.introspect(&read_token(token)?).await?;
                println!("{described}");
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// A token from the first line of stdin, which keeps it out of the shell history and the
/// process list; one given as an argument is refused, never used.
fn read_token(arg: Option<String>) -> anyhow::Result<Secret> {
    if arg.is_some() {
        anyhow::bail!(
            "a token on the command line is visible to other users (process list, shell history): \
             give it on stdin instead, e.g. `latchkey token revoke < token.txt`, or paste it at the prompt"
        );
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Token (one line):");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("no token given");
    }
    Ok(Secret::new(token))
}

/// Prints the effective settings as TOML, with every secret replaced by `"<redacted>"`.
pub fn config_show(settings: &Settings) -> anyhow::Result<()> {
    print!("{}", settings.redacted_toml()?);
    Ok(())
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

/// The `/healthz` URL of the server `settings` describe: its `listen` address, a wildcard
/// address replaced by loopback, `https` when the settings serve TLS.
pub fn health_url(settings: &Settings) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = settings.listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "listen = {:?} is not an address and port; pass --url",
            settings.listen
        )
    })?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if settings.tls.cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!(
        "{scheme}://{}/healthz",
        std::net::SocketAddr::new(ip, addr.port())
    ))
}

/// Runs `latchkey health`: GET `url` (default [`health_url`]) within `timeout` seconds, and
/// succeed only on `200 ok`. Over HTTPS to a loopback address the certificate is not checked
/// (it names the server's public host, not 127.0.0.1); nothing secret is sent.
pub async fn health(url: Option<String>, timeout: u64, settings: &Settings) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => url,
        None => health_url(settings)?,
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(loopback)
        .build()?;
    let response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::OK && body.trim() == "ok" {
        println!("ok");
        Ok(())
    } else {
        anyhow::bail!("{url} answered {status}")
    }
}

/// Runs `latchkey backup DIR`.
pub fn backup(dir: &std::path::Path, settings: &Settings) -> anyhow::Result<()> {
    let manifest = crate::backup::backup(settings, dir)?;
    println!(
        "Backed up the store (schema {}) and {} into {}.",
        manifest.schema_version,
        key_files_said(&manifest),
        dir.display()
    );
    if !manifest.kek_included {
        println!(
            "The key-encryption key comes from the keys.kek setting and is not in the backup: \
             keep it, the signing keys cannot be read without it."
        );
    }
    if settings.store.tokens_url.is_some() {
        println!("Tokens kept in store.tokens_url are not in the backup.");
    }
    Ok(())
}

fn key_files_said(manifest: &crate::backup::Manifest) -> String {
    let keys: Vec<&str> = manifest
        .files
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "latchkey.db")
        .collect();
    if keys.is_empty() {
        "no key files".to_owned()
    } else {
        keys.join(", ")
    }
}

/// Runs `latchkey restore DIR [--check]`.
pub async fn restore(
    dir: &std::path::Path,
    check: bool,
    settings: &Settings,
) -> anyhow::Result<()> {
    if check {
        let manifest = crate::backup::verify(dir)?;
        println!(
            "{} is a sound backup of {} (schema {}, taken at {}).",
            dir.display(),
            key_files_said(&manifest),
            manifest.schema_version,
            manifest.created_at
        );
        return Ok(());
    }
    let manifest = crate::backup::restore(settings, dir)?;
    // Opening it migrates it to this version's schema and proves it opens.
    let store = AnyStore::from_settings(settings).await?;
    store.close().await;
    println!(
        "Restored the store (schema {}) and {} into {}.",
        manifest.schema_version,
        key_files_said(&manifest),
        settings.data_dir.display()
    );
    Ok(())
}

/// Opens the store, which runs its pending migrations, and closes it again.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    store.close().await;
    println!("The store's schema is up to date.");
    Ok(())
}
