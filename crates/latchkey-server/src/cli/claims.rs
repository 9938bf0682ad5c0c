//! The claim options of `latchkey user add` and `latchkey user update`: the common
//! OpenID Connect claims (OpenID Connect Core §5.1) as flags, the rest from a JSON file, and
//! `--unset` to remove one. They become one JSON merge patch, which the admin operations
//! validate (through the core's `UserClaims`) before anything is stored.

use clap::Args;
use latchkey_core::claims::MAX_JSON_BYTES;
use serde_json::{Map, Value};
use std::io::Read;
use std::path::PathBuf;

/// A user's claims on the command line.
#[derive(Clone, Debug, Default, Args)]
pub struct ClaimArgs {
    /// Full name (`name`).
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Given name (`given_name`).
    #[arg(long, value_name = "TEXT")]
    pub given_name: Option<String>,
    /// Family name (`family_name`).
    #[arg(long, value_name = "TEXT")]
    pub family_name: Option<String>,
    /// Shorthand name (`preferred_username`).
    #[arg(long, value_name = "TEXT")]
    pub preferred_username: Option<String>,
    /// E-mail address (`email`).
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Whether the e-mail address was verified (`email_verified`).
    #[arg(long, value_name = "BOOL")]
    pub email_verified: Option<bool>,
    /// Telephone number, E.164 recommended (`phone_number`).
    #[arg(long, value_name = "NUMBER")]
    pub phone: Option<String>,
    /// Whether the telephone number was verified (`phone_number_verified`).
    #[arg(long, value_name = "BOOL")]
    pub phone_verified: Option<bool>,
    /// Locale, a BCP 47 language tag such as en-US (`locale`).
    #[arg(long, value_name = "TAG")]
    pub locale: Option<String>,
    /// Time zone, such as Europe/Paris (`zoneinfo`).
    #[arg(long, value_name = "ZONE")]
    pub zoneinfo: Option<String>,
    /// Profile picture URL (`picture`).
    #[arg(long, value_name = "URL")]
    pub picture: Option<String>,
    /// Any claims, as a JSON object in FILE (`-` for stdin); the flags above win over it.
    /// `null` removes a claim.
    #[arg(long, value_name = "FILE")]
    pub claims_json: Option<PathBuf>,
    /// Remove this claim (repeatable), a language-tagged one too (`name#fr`).
    #[arg(long, value_name = "CLAIM")]
    pub unset: Vec<String>,
    /// A language-tagged claim (OpenID Connect Core §5.2), `CLAIM#TAG=TEXT`, e.g.
    /// `--localized 'name#fr=Jean Dupont'` (repeatable): released instead of the plain claim
    /// to clients whose `claims_locales` prefer that language.
    #[arg(long, value_name = "CLAIM#TAG=TEXT")]
    pub localized: Vec<String>,
}

impl ClaimArgs {
    /// The merge patch these options describe (empty when none is given).
    pub fn patch(&self) -> anyhow::Result<Map<String, Value>> {
        let mut patch = match &self.claims_json {
            Some(path) => read_object(path)?,
            None => Map::new(),
        };
        for name in &self.unset {
            patch.insert(name.clone(), Value::Null);
        }
        let texts = [
            ("name", &self.name),
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("preferred_username", &self.preferred_username),
            ("email", &self.email),
            ("phone_number", &self.phone),
            ("locale", &self.locale),
            ("zoneinfo", &self.zoneinfo),
            ("picture", &self.picture),
        ];
        for (claim, value) in texts {
            if let Some(value) = value {
                patch.insert(claim.to_owned(), Value::String(value.clone()));
            }
        }
        for entry in &self.localized {
            let Some((claim, text)) = entry.split_once('=').filter(|(c, _)| c.contains('#')) else {
                anyhow::bail!("--localized {entry:?}: write CLAIM#TAG=TEXT, e.g. name#fr=Jean");
            };
            patch.insert(claim.to_owned(), Value::String(text.to_owned()));
        }
        for (claim, value) in [
            ("email_verified", self.email_verified),
            ("phone_number_verified", self.phone_verified),
        ] {
            if let Some(value) = value {
                patch.insert(claim.to_owned(), Value::Bool(value));
            }
        }
        Ok(patch)
    }
}

/// The JSON object in `path` (`-`: stdin), at most [`MAX_JSON_BYTES`] long.
fn read_object(path: &PathBuf) -> anyhow::Result<Map<String, Value>> {
    let limit = MAX_JSON_BYTES as u64 + 1;
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_string(&mut text)?;
    } else {
        std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("--claims-json {}: {e}", path.display()))?
            .take(limit)
            .read_to_string(&mut text)?;
    }
    if text.len() > MAX_JSON_BYTES {
        anyhow::bail!("--claims-json: more than {MAX_JSON_BYTES} bytes");
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) => anyhow::bail!("--claims-json: not a JSON object"),
        Err(e) => anyhow::bail!("--claims-json: not JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        claims: ClaimArgs,
    }

    #[test]
    fn flags_and_the_file_become_one_patch_with_flags_winning() {
        let dir = std::env::temp_dir().join(format!("latchkey-claims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("claims.json");
        std::fs::write(
            &file,
            r#"{"email":"old@example.com","address":{"country":"FR"},"nickname":"N"}"#,
        )
        .expect("write");
        let cmd = Cmd::parse_from([
            "x",
            "--claims-json",
            file.to_str().expect("utf-8 path"),
            "--email",
            "new@example.com",
            "--email-verified",
            "true",
            "--unset",
            "nickname",
            "--phone",
            "+33 1 23 45 67 89",
            "--localized",
            "name#fr=Jean = Dupont",
        ]);
        let patch = cmd.claims.patch().expect("patch");
        assert_eq!(
            Value::Object(patch),
            serde_json::json!({"email": "new@example.com", "email_verified": true,
                "address": {"country": "FR"}, "nickname": null,
                "phone_number": "+33 1 23 45 67 89", "name#fr": "Jean = Dupont"})
        );
        let bad = Cmd::parse_from(["x", "--localized", "name=Jean"]);
        assert!(bad.claims.patch().is_err(), "no language tag");
        std::fs::write(&file, "[1]").expect("write");
        assert!(cmd.claims.patch().is_err(), "an array is refused");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            Cmd::parse_from(["x"])
                .claims
                .patch()
                .expect("none")
                .is_empty()
        );
    }
}
