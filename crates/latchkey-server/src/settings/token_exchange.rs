//! `[token_exchange]`: the external issuers whose JWTs and ID tokens token exchange (RFC 8693)
//! accepts as subject and actor tokens, `[[token_exchange.trusted_issuers]]` tables. A client
//! may exchange them only when its `token_exchange` policy names the issuer's alias.

use latchkey_core::grant::token_exchange::trusted::{
    IssuerKeys, SubjectMapping, TrustedIssuer, TrustedIssuers, inline_keys,
};
use serde::{Deserialize, Serialize};

/// Token exchange settings (the grant itself is switched on by `grants.token_exchange`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenExchangeSettings {
    /// The external issuers trusted for token exchange.
    pub trusted_issuers: Vec<TrustedIssuerSettings>,
}

/// One external issuer whose tokens may be exchanged.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedIssuerSettings {
    /// The short name client policies use (`trusted_issuers = ["corp"]`), and the prefix of
    /// its subjects (`corp:<sub>`) unless `subject = "as_is"`.
    pub alias: String,
    /// The issuer's `iss` value, compared byte for byte.
    pub issuer: String,
    /// Its JWK Set, inline (public keys only). Exactly one of `jwks` and `jwks_uri`.
    pub jwks: Option<serde_json::Value>,
    /// Where its JWK Set is published; fetched over HTTPS with the bounds and cache of client
    /// `jwks_uri`s (`allow_http_jwks_uri` and `allow_private_jwks_uri` apply here too).
    pub jwks_uri: Option<String>,
    /// The signature algorithms accepted from it (asymmetric only).
    pub algs: Vec<String>,
    /// A value its tokens' `aud` must contain; absent: this server's issuer.
    pub audience: Option<String>,
    /// How many seconds after its `iat` a token is still accepted.
    pub max_age: u64,
    /// `prefixed` (`<alias>:<sub>`, the default: cannot collide with local users) or `as_is`.
    pub subject: SubjectMapping,
}

impl Default for TrustedIssuerSettings {
    fn default() -> Self {
        Self {
            alias: String::new(),
            issuer: String::new(),
            jwks: None,
            jwks_uri: None,
            algs: vec!["RS256".into(), "ES256".into()],
            audience: None,
            max_age: 3600,
            subject: SubjectMapping::Prefixed,
        }
    }
}

impl TokenExchangeSettings {
    /// The trusted issuers, checked; `own_issuer` (this server) may not be one of them.
    pub fn trusted_issuers(&self, own_issuer: &str) -> anyhow::Result<TrustedIssuers> {
        let mut list = Vec::with_capacity(self.trusted_issuers.len());
        for t in &self.trusted_issuers {
            let keys = match (&t.jwks, &t.jwks_uri) {
                (Some(jwks), None) => inline_keys(jwks).map_err(|e| {
                    anyhow::anyhow!("token_exchange.trusted_issuers {:?}: {e}", t.alias)
                })?,
                (None, Some(uri)) => IssuerKeys::Uri(uri.clone()),
                _ => anyhow::bail!(
                    "token_exchange.trusted_issuers {:?}: set exactly one of jwks and jwks_uri",
                    t.alias
                ),
            };
            if t.issuer == own_issuer {
                anyhow::bail!(
                    "token_exchange.trusted_issuers {:?}: that is this server's own issuer",
                    t.alias
                );
            }
            let mut issuer = TrustedIssuer::new(&t.alias, &t.issuer, keys);
            issuer.algs = t.algs.clone();
            issuer.audience = t.audience.clone();
            issuer.max_age = t.max_age;
            issuer.subject = t.subject;
            list.push(issuer);
        }
        TrustedIssuers::new(list).map_err(|e| anyhow::anyhow!("token_exchange: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's test jail returns its own large error type
mod tests {
    use crate::settings::{Overrides, Settings};

    const KEY: &str = r#"{ kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }"#;

    fn load(toml: &str) -> Settings {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("latchkey.toml", toml)?;
            out = Some(Settings::load(None, &Overrides::default()).expect("loads"));
            Ok(())
        });
        out.expect("settings")
    }

    #[test]
    fn trusted_issuers_parse_with_inline_keys_or_a_jwks_uri() {
        let s = load(&format!(
            r#"
[[token_exchange.trusted_issuers]]
alias = "corp"
issuer = "https://idp.corp.example"
jwks = {{ keys = [{KEY}] }}
algs = ["ES256"]
audience = "latchkey-at-corp"
max_age = 600
subject = "as_is"

[[token_exchange.trusted_issuers]]
alias = "partner"
issuer = "https://login.partner.example"
jwks_uri = "https://login.partner.example/jwks"
"#
        ));
        let list = &s.token_exchange.trusted_issuers;
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].algs, ["ES256"]);
        assert_eq!(list[0].max_age, 600);
        assert_eq!(
            list[0].subject,
            latchkey_core::grant::token_exchange::trusted::SubjectMapping::AsIs
        );
        assert_eq!(list[1].algs, ["RS256", "ES256"], "the default");
        assert_eq!(list[1].max_age, 3600, "the default");
        let issuers = s
            .token_exchange
            .trusted_issuers("https://auth.example")
            .expect("valid");
        assert!(
            issuers
                .find("https://idp.corp.example", &["corp".into()])
                .is_some()
        );
        assert!(
            issuers
                .find("https://idp.corp.example", &["partner".into()])
                .is_none(),
            "found only when allowed by alias"
        );
    }

    #[test]
    fn malformed_trusted_issuers_are_refused_with_their_reason() {
        let cases = [
            ("both key sources", format!("alias = \"a\"\nissuer = \"https://i.example\"\njwks = {{ keys = [{KEY}] }}\njwks_uri = \"https://i.example/jwks\""), "exactly one"),
            ("no key source", "alias = \"a\"\nissuer = \"https://i.example\"".into(), "exactly one"),
            ("an HMAC alg", "alias = \"a\"\nissuer = \"https://i.example\"\njwks_uri = \"https://i.example/j\"\nalgs = [\"HS256\"]".into(), "HS256"),
            ("none", "alias = \"a\"\nissuer = \"https://i.example\"\njwks_uri = \"https://i.example/j\"\nalgs = [\"none\"]".into(), "none"),
            ("alias with a colon", "alias = \"a:b\"\nissuer = \"https://i.example\"\njwks_uri = \"https://i.example/j\"".into(), "alias"),
            ("our own issuer", "alias = \"a\"\nissuer = \"https://auth.example\"\njwks_uri = \"https://i.example/j\"".into(), "own issuer"),
            ("no max age", "alias = \"a\"\nissuer = \"https://i.example\"\njwks_uri = \"https://i.example/j\"\nmax_age = 0".into(), "max_age"),
            ("a private key", "alias = \"a\"\nissuer = \"https://i.example\"\njwks = { keys = [{ kty = \"oct\", k = \"c2VjcmV0\" }] }".into(), "public keys only"),
        ];
        for (why, table, reason) in cases {
            let s = load(&format!("[[token_exchange.trusted_issuers]]\n{table}\n"));
            let err = s
                .token_exchange
                .trusted_issuers("https://auth.example")
                .expect_err(why);
            assert!(err.to_string().contains(reason), "{why}: {err}");
        }
        let twice = format!(
            "[[token_exchange.trusted_issuers]]\nalias = \"a\"\nissuer = \"https://i.example\"\njwks = {{ keys = [{KEY}] }}\n\
             [[token_exchange.trusted_issuers]]\nalias = \"a\"\nissuer = \"https://j.example\"\njwks = {{ keys = [{KEY}] }}\n"
        );
        let err = load(&twice)
            .token_exchange
            .trusted_issuers("https://auth.example")
            .expect_err("duplicate alias");
        assert!(err.to_string().contains("share"), "{err}");
    }

    #[test]
    fn an_unknown_trusted_issuer_setting_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "latchkey.toml",
                "[[token_exchange.trusted_issuers]]\nalias = \"a\"\nissuer = \"https://i.example\"\njwks_url = \"x\"\n",
            )?;
            assert!(Settings::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }
}
