//! The grants, one module each, each with one entry function called by the token endpoint
//! after the client has been authenticated and allowed the grant type.

pub mod authorization_code;
pub mod client_credentials;
pub mod extension;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;
