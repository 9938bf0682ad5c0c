//! The admin HTTP API: the operations of [`crate::admin`] as JSON over HTTP, for callers
//! holding the admin bearer token, with its OpenAPI 3.1 document at `/openapi.json`.
//!
//! It is off by default and served on a listener of its own (`admin.listen`), so the OAuth
//! endpoints, which face the internet, never route to it.

use crate::admin::{
    Admin, AdminError, ClientSpec, ClientUpdate, ClientView, ConsentView, CreatedClient,
    CreatedInitialToken, InitialTokenView, KeyView, NewInitialToken, ResourceSpec, ResourceUpdate,
    ResourceView, RevokedConsent, RotateKeys, RotatedSecret, UserUpdate, UserView,
};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use latchkey_core::secret::{Digest, Secret};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// The admin API's state: the operations and the digest of the admin token.
#[derive(Clone)]
struct Api {
    admin: Admin,
    token: Arc<Digest>,
}

/// The admin API's router: every route but `/openapi.json` requires
/// `Authorization: Bearer <admin token>`.
pub fn router(admin: Admin, token: &Secret) -> Router {
    let api = Api {
        admin,
        token: Arc::new(token.digest()),
    };
    let protected = Router::new()
        .route("/admin/clients", get(list_clients).post(create_client))
        .route(
            "/admin/clients/{id}",
            get(get_client).patch(update_client).delete(delete_client),
        )
        .route("/admin/clients/{id}/secret", post(rotate_secret))
        .route("/admin/users", get(list_users).post(add_user))
        .route(
            "/admin/users/{username}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/admin/users/{username}/password", put(set_password))
        .route("/admin/users/{username}/logout", post(logout_user))
        .route("/admin/users/{username}/consents", get(list_consents))
        .route(
            "/admin/users/{username}/consents/{client_id}",
            axum::routing::delete(revoke_consent),
        )
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_keys))
        .route("/admin/keys/{kid}/retire", post(retire_key))
        .route(
            "/admin/registration/tokens",
            get(list_initial_tokens).post(create_initial_token),
        )
        .route(
            "/admin/registration/tokens/{id}",
            axum::routing::delete(revoke_initial_token),
        )
        .route("/admin/resources", get(list_resources).post(add_resource))
        .route(
            "/admin/resources/{id}",
            get(show_resource)
                .patch(update_resource)
                .delete(remove_resource),
        )
        .route("/admin/tokens/revoke", post(revoke))
        .route("/admin/tokens/introspect", post(introspect))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_admin,
        ))
        .with_state(api);
    protected.route("/openapi.json", get(openapi))
}

/// Refuses calls without the admin token; the comparison is of SHA-256 digests, in
/// constant time.
async fn require_admin(
    State(api): State<Api>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if api.token.matches(&Secret::new(token)) => next.run(req).await,
        _ => {
            tracing::warn!(
                target: "latchkey::audit",
                event = "admin_auth_failed",
                client_ip = crate::audit::request_client_ip(),
            );
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"latchkey-admin\"")],
                Json(serde_json::json!({ "error": "unauthorized" })),
            )
                .into_response()
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store(err) => {
                tracing::error!(error = %err, "admin operation failed in the store");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let message = match &self {
            AdminError::Store(_) => "the store is unavailable".to_owned(),
            other => other.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// A JSON body the handler could not read: 400 with the reason, never a 422 or a panic.
fn bad_json(err: axum::extract::rejection::JsonRejection) -> AdminError {
    AdminError::Invalid(err.body_text())
}

/// A password to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The new password.
    pub password: String,
}

/// A user to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// The login name.
    pub username: String,
    /// The password (hashed with Argon2id; never stored or logged as given).
    pub password: String,
    /// The user's OpenID Connect standard claims (OpenID Connect Core §5.1), by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A token to revoke or introspect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The access or refresh token.
    pub token: String,
}

/// How many tokens a revocation stopped.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Revoked {
    /// Tokens that stopped working (a refresh token takes its whole grant).
    pub revoked: u64,
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Lists clients.
#[utoipa::path(get, path = "/admin/clients", tag = "clients",
    responses((status = 200, body = [ClientView]), (status = 401)))]
async fn list_clients(State(api): State<Api>) -> Result<Json<Vec<ClientView>>, AdminError> {
    Ok(Json(api.admin.list_clients().await?))
}

/// Registers a client; the answer holds its secret, shown only this once.
#[utoipa::path(post, path = "/admin/clients", tag = "clients", request_body = ClientSpec,
    responses((status = 201, body = CreatedClient), (status = 400), (status = 409), (status = 401)))]
async fn create_client(
    State(api): State<Api>,
    body: Body<ClientSpec>,
) -> Result<(StatusCode, Json<CreatedClient>), AdminError> {
    let Json(spec) = body.map_err(bad_json)?;
    let created = api.admin.create_client(spec).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Shows one client.
#[utoipa::path(get, path = "/admin/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "client id")),
    responses((status = 200, body = ClientView), (status = 404), (status = 401)))]
async fn get_client(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, AdminError> {
    Ok(Json(api.admin.get_client(&id).await?))
}

/// Changes a client's settings; what the body does not name stays as it is, and `null`
/// returns a setting to the server's default. The secret is never changed here (see
/// `POST /admin/clients/{id}/secret`); the result must pass the checks of a new registration.
#[utoipa::path(patch, path = "/admin/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "client id")),
    request_body = ClientUpdate,
    responses(
        (status = 200, description = "The client as it now is", body = ClientView),
        (status = 400, description = "A setting is malformed or breaks a registration rule"),
        (status = 404, description = "No such client"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn update_client(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Body<ClientUpdate>,
) -> Result<Json<ClientView>, AdminError> {
    let Json(update) = body.map_err(bad_json)?;
    Ok(Json(api.admin.update_client(&id, update).await?))
}

/// Deletes a client and every token issued to it.
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "client id")),
    responses((status = 204), (status = 404), (status = 401)))]
async fn delete_client(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    api.admin.delete_client(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a confidential client's secret: the answer holds the new OAuth 2.0 secret (and,
/// for an OAuth 1.0a consumer that signs with a shared secret, the new consumer secret; its
/// OAuth 1.0a tokens are revoked), shown only this once. The old secrets stop working.
#[utoipa::path(post, path = "/admin/clients/{id}/secret", tag = "clients",
    params(("id" = String, Path, description = "client id")),
    responses(
        (status = 200, description = "The new secrets, shown only this once", body = RotatedSecret),
        (status = 400, description = "A public client, which has no secret"),
        (status = 404, description = "No such client"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn rotate_secret(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<RotatedSecret>, AdminError> {
    Ok(Json(api.admin.rotate_secret(&id).await?))
}

/// Lists built-in users.
#[utoipa::path(get, path = "/admin/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 401)))]
async fn list_users(State(api): State<Api>) -> Result<Json<Vec<UserView>>, AdminError> {
    Ok(Json(api.admin.list_users().await?))
}

/// Adds a user.
#[utoipa::path(post, path = "/admin/users", tag = "users", request_body = NewUserBody,
    responses((status = 201, body = UserView), (status = 400), (status = 409), (status = 401)))]
async fn add_user(
    State(api): State<Api>,
    body: Body<NewUserBody>,
) -> Result<(StatusCode, Json<UserView>), AdminError> {
    let Json(new) = body.map_err(bad_json)?;
    let user = api
        .admin
        .add_user_with_claims(&new.username, Secret::new(new.password), &new.claims)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Shows one user, with their claims.
#[utoipa::path(get, path = "/admin/users/{username}", tag = "users",
    params(("username" = String, Path, description = "login name")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn get_user(
    State(api): State<Api>,
    Path(username): Path<String>,
) -> Result<Json<UserView>, AdminError> {
    Ok(Json(api.admin.get_user(&username).await?))
}

/// Changes a user's OpenID Connect claims by a JSON merge patch (RFC 7396): a claim set to a
/// value replaces it, `null` removes it. Only standard claims are accepted, each checked.
#[utoipa::path(patch, path = "/admin/users/{username}", tag = "users",
    params(("username" = String, Path, description = "login name")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The user as they now are", body = UserView),
        (status = 400, description = "An unknown claim, or a value that breaks its rule"),
        (status = 404, description = "No such user"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn update_user(
    State(api): State<Api>,
    Path(username): Path<String>,
    body: Body<UserUpdate>,
) -> Result<Json<UserView>, AdminError> {
    let Json(update) = body.map_err(bad_json)?;
    Ok(Json(api.admin.update_user(&username, update).await?))
}

/// Deletes a user and every token issued for them.
#[utoipa::path(delete, path = "/admin/users/{username}", tag = "users",
    params(("username" = String, Path, description = "login name")),
    responses((status = 204), (status = 404), (status = 401)))]
async fn delete_user(
    State(api): State<Api>,
    Path(username): Path<String>,
) -> Result<StatusCode, AdminError> {
    api.admin.delete_user(&username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a user's password.
#[utoipa::path(put, path = "/admin/users/{username}/password", tag = "users",
    params(("username" = String, Path, description = "login name")),
    request_body = PasswordBody,
    responses((status = 204), (status = 400), (status = 404), (status = 401)))]
async fn set_password(
    State(api): State<Api>,
    Path(username): Path<String>,
    body: Body<PasswordBody>,
) -> Result<StatusCode, AdminError> {
    let Json(body) = body.map_err(bad_json)?;
    api.admin
        .set_password(&username, Secret::new(body.password))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many login sessions "log out everywhere" ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    /// The number of sessions that ended.
    pub sessions: u64,
}

/// Lists the signing keys with their state (`next`, `active`, `retiring`) and times.
#[utoipa::path(get, path = "/admin/keys", tag = "keys",
    responses(
        (status = 200, description = "The keys, oldest first", body = [KeyView]),
        (status = 401, description = "Missing or wrong admin token")))]
async fn list_keys(State(api): State<Api>) -> Result<Json<Vec<KeyView>>, AdminError> {
    Ok(Json(api.admin.list_keys().await?))
}

/// Rotates an algorithm's signing key: the new key is published now and signs after the
/// publish-ahead time (at once with `immediate`); the old one stays published until what it
/// signed has expired.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "keys",
    request_body = RotateKeys,
    responses(
        (status = 200, description = "The keys after the rotation", body = [KeyView]),
        (status = 400, description = "An unknown or unconfigured algorithm"),
        (status = 409, description = "Other nodes kept changing the keys; try again"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn rotate_keys(
    State(api): State<Api>,
    body: Body<RotateKeys>,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    let Json(rotate) = body.map_err(bad_json)?;
    let alg = crate::admin::signing_alg(rotate.alg.as_deref())?;
    Ok(Json(api.admin.rotate_keys(alg, rotate.immediate).await?))
}

/// Retires a signing key now: it stops signing (a successor takes over) and stays published
/// until what it signed has expired.
#[utoipa::path(post, path = "/admin/keys/{kid}/retire", tag = "keys",
    params(("kid" = String, Path, description = "key id")),
    responses(
        (status = 200, description = "The keys after the retirement", body = [KeyView]),
        (status = 404, description = "No signing or next key with this id"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn retire_key(
    State(api): State<Api>,
    Path(kid): Path<String>,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    Ok(Json(api.admin.retire_key(&kid).await?))
}

/// Lists the initial access tokens of dynamic client registration (never their values).
#[utoipa::path(get, path = "/admin/registration/tokens", tag = "registration",
    responses(
        (status = 200, description = "The tokens, by id", body = [InitialTokenView]),
        (status = 401, description = "Missing or wrong admin token")))]
async fn list_initial_tokens(
    State(api): State<Api>,
) -> Result<Json<Vec<InitialTokenView>>, AdminError> {
    Ok(Json(api.admin.list_initial_tokens().await?))
}

/// Makes an initial access token for `/register` (RFC 7591 §3); the token is in this
/// answer only.
#[utoipa::path(post, path = "/admin/registration/tokens", tag = "registration",
    request_body = NewInitialToken,
    responses(
        (status = 201, description = "The token, shown once", body = CreatedInitialToken),
        (status = 400, description = "A bad lifetime, use count or description"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn create_initial_token(
    State(api): State<Api>,
    body: Body<NewInitialToken>,
) -> Result<(axum::http::StatusCode, Json<CreatedInitialToken>), AdminError> {
    let Json(new) = body.map_err(bad_json)?;
    let created = api.admin.create_initial_token(&new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Revokes an initial access token; clients it registered stay.
#[utoipa::path(delete, path = "/admin/registration/tokens/{id}", tag = "registration",
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn revoke_initial_token(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, AdminError> {
    api.admin.revoke_initial_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the resources clients may name with `resource` (RFC 8707): those of the settings
/// (read-only) and those added here.
#[utoipa::path(get, path = "/admin/resources", tag = "resources",
    responses(
        (status = 200, description = "The registry", body = [ResourceView]),
        (status = 401, description = "Missing or wrong admin token")))]
async fn list_resources(State(api): State<Api>) -> Result<Json<Vec<ResourceView>>, AdminError> {
    Ok(Json(api.admin.list_resources().await?))
}

/// Adds a resource; requests may name it at once, on every node.
#[utoipa::path(post, path = "/admin/resources", tag = "resources",
    request_body = ResourceSpec,
    responses(
        (status = 201, description = "The resource", body = ResourceView),
        (status = 400, description = "A malformed identifier, name, scope or client"),
        (status = 409, description = "It exists already, or the settings define it"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn add_resource(
    State(api): State<Api>,
    body: Body<ResourceSpec>,
) -> Result<(StatusCode, Json<ResourceView>), AdminError> {
    let Json(spec) = body.map_err(bad_json)?;
    Ok((
        StatusCode::CREATED,
        Json(api.admin.add_resource(&spec).await?),
    ))
}

/// One resource. Its identifier is percent-encoded in the path
/// (`/admin/resources/https%3A%2F%2Fapi.example%2Fmcp`).
#[utoipa::path(get, path = "/admin/resources/{id}", tag = "resources",
    params(("id" = String, Path, description = "the resource identifier, percent-encoded")),
    responses(
        (status = 200, description = "The resource", body = ResourceView),
        (status = 404, description = "No such resource"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn show_resource(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<ResourceView>, AdminError> {
    Ok(Json(api.admin.show_resource(&id).await?))
}

/// Changes a stored resource; what the body does not name stays, and `null` lifts a
/// restriction. Tokens already issued keep their scope and audience.
#[utoipa::path(patch, path = "/admin/resources/{id}", tag = "resources",
    params(("id" = String, Path, description = "the resource identifier, percent-encoded")),
    request_body = ResourceUpdate,
    responses(
        (status = 200, description = "The resource as it now is", body = ResourceView),
        (status = 400, description = "A malformed name, scope or client"),
        (status = 404, description = "No such resource"),
        (status = 409, description = "The settings define it: read-only"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn update_resource(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Body<ResourceUpdate>,
) -> Result<Json<ResourceView>, AdminError> {
    let Json(update) = body.map_err(bad_json)?;
    Ok(Json(api.admin.update_resource(&id, &update).await?))
}

/// Removes a stored resource: requests naming it get `invalid_target` from now on; tokens
/// already issued for it stay valid until they expire or are revoked.
#[utoipa::path(delete, path = "/admin/resources/{id}", tag = "resources",
    params(("id" = String, Path, description = "the resource identifier, percent-encoded")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such resource"),
        (status = 409, description = "The settings define it: read-only"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn remove_resource(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    api.admin.remove_resource(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every login session of a user ("log out everywhere"): their browsers must log in
/// again. Tokens already issued stay valid until they expire or are revoked.
#[utoipa::path(post, path = "/admin/users/{username}/logout", tag = "users",
    params(("username" = String, Path, description = "login name")),
    responses(
        (status = 200, body = LoggedOut, description = "the user's sessions ended"),
        (status = 404, description = "no such user"),
        (status = 401, description = "no valid admin token")))]
async fn logout_user(
    State(api): State<Api>,
    Path(username): Path<String>,
) -> Result<Json<LoggedOut>, AdminError> {
    let sessions = api.admin.logout_user(&username).await?;
    Ok(Json(LoggedOut { sessions }))
}

/// Lists the clients a user has allowed: the remembered consents, with scopes and times.
#[utoipa::path(get, path = "/admin/users/{username}/consents", tag = "users",
    params(("username" = String, Path, description = "login name")),
    responses(
        (status = 200, description = "The user's consents, by client id", body = [ConsentView]),
        (status = 404, description = "No such user"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn list_consents(
    State(api): State<Api>,
    Path(username): Path<String>,
) -> Result<Json<Vec<ConsentView>>, AdminError> {
    Ok(Json(api.admin.list_consents(&username).await?))
}

/// Revokes a user's consent to a client: every token the client holds for the user (access
/// and refresh) is revoked, and the next authorization asks the user again.
#[utoipa::path(delete, path = "/admin/users/{username}/consents/{client_id}", tag = "users",
    params(
        ("username" = String, Path, description = "login name"),
        ("client_id" = String, Path, description = "client id")),
    responses(
        (status = 200, description = "The consent and the client's tokens for the user are revoked", body = RevokedConsent),
        (status = 404, description = "No such user, or no consent to this client"),
        (status = 401, description = "Missing or wrong admin token")))]
async fn revoke_consent(
    State(api): State<Api>,
    Path((username, client_id)): Path<(String, String)>,
) -> Result<Json<RevokedConsent>, AdminError> {
    Ok(Json(api.admin.revoke_consent(&username, &client_id).await?))
}

/// Revokes a token, whoever it was issued to.
#[utoipa::path(post, path = "/admin/tokens/revoke", tag = "tokens", request_body = TokenBody,
    responses((status = 200, body = Revoked), (status = 400), (status = 401)))]
async fn revoke(
    State(api): State<Api>,
    body: Body<TokenBody>,
) -> Result<Json<Revoked>, AdminError> {
    let Json(body) = body.map_err(bad_json)?;
    let revoked = api.admin.revoke(&Secret::new(body.token)).await?;
    Ok(Json(Revoked { revoked }))
}

/// Describes a token (RFC 7662 §2.2), without client authentication.
#[utoipa::path(post, path = "/admin/tokens/introspect", tag = "tokens", request_body = TokenBody,
    responses((status = 200, body = Object), (status = 400), (status = 401)))]
async fn introspect(
    State(api): State<Api>,
    body: Body<TokenBody>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Json(body) = body.map_err(bad_json)?;
    Ok(Json(api.admin.introspect(&Secret::new(body.token)).await?))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey admin API",
        description = "Clients, users and tokens of a Latchkey authorization server. Every call but this document needs `Authorization: Bearer <admin token>`."
    ),
    paths(
        list_clients, create_client, get_client, update_client, delete_client, rotate_secret,
        list_users, add_user, get_user, update_user, delete_user, set_password, logout_user, list_consents,
        revoke_consent, revoke, introspect, list_keys, rotate_keys, retire_key,
        list_initial_tokens, create_initial_token, revoke_initial_token,
        list_resources, add_resource, show_resource, update_resource, remove_resource
    ),
    modifiers(&BearerAuth, &DescribedResponses)
)]
struct ApiDoc;

/// OpenAPI requires a `description` on every response object. Rather than trust each
/// `#[utoipa::path]` to write one, every response left without one gets the standard reason
/// phrase of its status (`404` → "Not Found"), so a new endpoint keeps the document valid.
struct DescribedResponses;

impl utoipa::Modify for DescribedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
                &mut item.query,
            ]
            .into_iter()
            .flatten()
            .chain(item.additional_operations.values_mut());
            for operation in operations {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.trim().is_empty()
                    {
                        response.description = reason_phrase(status).to_owned();
                    }
                }
            }
        }
    }
}

/// The reason phrase of an OpenAPI response key (`"404"`, `"4XX"`, `"default"`).
fn reason_phrase(status: &str) -> &'static str {
    status
        .parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .and_then(|code| code.canonical_reason())
        .unwrap_or(match status.as_bytes().first() {
            Some(b'1') => "Informational",
            Some(b'2') => "Success",
            Some(b'3') => "Redirection",
            Some(b'4') => "Client error",
            Some(b'5') => "Server error",
            _ => "Any other answer",
        })
}

/// Declares the bearer scheme and applies it to every operation.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "admin_token",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document of this API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    match openapi_document().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "OpenAPI document did not serialize");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_every_response_has_a_description() {
        let doc = serde_json::to_value(openapi_document()).expect("serializes");
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let Some(responses) = operation.get("responses").and_then(|r| r.as_object()) else {
                    continue;
                };
                for (status, response) in responses {
                    seen += 1;
                    assert!(
                        response["description"]
                            .as_str()
                            .is_some_and(|d| !d.trim().is_empty()),
                        "{method} {path} {status} has no description"
                    );
                }
            }
        }
        assert!(seen >= 31, "only {seen} responses");
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase("404"), "Not Found");
        assert_eq!(reason_phrase("201"), "Created");
        assert_eq!(reason_phrase("4XX"), "Client error");
        assert_eq!(reason_phrase("default"), "Any other answer");
    }
}
