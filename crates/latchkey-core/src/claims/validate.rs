//! The rule of each standard claim (OpenID Connect Core §5.1): what a [`UserClaims`] may hold.
//!
//! Shapes are checked, not truth: an e-mail address is `local@domain`, not a deliverable
//! mailbox. Every text is bounded, so a user record stays small in every backend.

use super::{Address, ClaimsError, LOCALIZABLE_CLAIMS, MAX_LOCALIZED, UserClaims};

/// The most bytes of a name-like claim (`name`, `nickname`, `gender`, …).
pub const MAX_TEXT_BYTES: usize = 256;
/// The most bytes of an address member (`formatted` may hold several lines).
pub const MAX_ADDRESS_BYTES: usize = 512;
/// The most bytes of a URL claim.
pub const MAX_URL_BYTES: usize = 2048;
/// The most bytes of an e-mail address (RFC 5321 §4.5.3.1.3 path limit, less the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// The most bytes of a telephone number.
pub const MAX_PHONE_BYTES: usize = 64;
/// The latest `updated_at`: 9999-12-31T23:59:59Z.
pub const MAX_UPDATED_AT: i64 = 253_402_300_799;

/// Checks every claim of `claims`.
pub(super) fn user_claims(c: &UserClaims) -> Result<(), ClaimsError> {
    for (claim, value) in [
        ("name", &c.name),
        ("given_name", &c.given_name),
        ("family_name", &c.family_name),
        ("middle_name", &c.middle_name),
        ("nickname", &c.nickname),
        ("preferred_username", &c.preferred_username),
        ("gender", &c.gender),
    ] {
        check(claim, value, |v| text(v, MAX_TEXT_BYTES, false))?;
    }
    for (claim, value) in [
        ("profile", &c.profile),
        ("picture", &c.picture),
        ("website", &c.website),
    ] {
        check(claim, value, url)?;
    }
    check("email", &c.email, email)?;
    check("birthdate", &c.birthdate, birthdate)?;
    check("zoneinfo", &c.zoneinfo, zoneinfo)?;
    check("locale", &c.locale, locale)?;
    check("phone_number", &c.phone_number, phone)?;
    if let Some(address) = &c.address {
        self::address(address)?;
    }
    // §5.2: "claim_name#language_tag", for the human-readable claims only.
    if c.localized.len() > MAX_LOCALIZED {
        return Err(invalid(
            "localized",
            "at most 64 language-tagged claims are allowed",
        ));
    }
    for (name, value) in &c.localized {
        let Some((base, tag)) = name
            .split_once('#')
            .filter(|(base, _)| LOCALIZABLE_CLAIMS.contains(base))
        else {
            return Err(ClaimsError::Unknown(name.clone()));
        };
        locale(tag).map_err(|_| invalid(name, "the language tag is not BCP 47"))?;
        match base {
            "profile" | "picture" | "website" => url(value),
            _ => text(value, MAX_TEXT_BYTES, false),
        }
        .map_err(|reason| invalid(name, reason))?;
    }
    // §5.1: "updated_at: … number of seconds from 1970-01-01T00:00:00Z".
    if c.updated_at
        .is_some_and(|t| !(0..=MAX_UPDATED_AT).contains(&t))
    {
        return Err(invalid(
            "updated_at",
            "must be seconds between 1970 and 9999",
        ));
    }
    Ok(())
}

fn address(a: &Address) -> Result<(), ClaimsError> {
    // §5.1.1: "formatted … MAY contain multiple lines, separated by newlines"; the same for
    // street_address.
    for (claim, value, lines) in [
        ("address.formatted", &a.formatted, true),
        ("address.street_address", &a.street_address, true),
        ("address.locality", &a.locality, false),
        ("address.region", &a.region, false),
        ("address.postal_code", &a.postal_code, false),
        ("address.country", &a.country, false),
    ] {
        check(claim, value, |v| text(v, MAX_ADDRESS_BYTES, lines))?;
    }
    Ok(())
}

/// Applies `rule` to a claim that is set.
fn check(
    claim: &str,
    value: &Option<String>,
    rule: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(), ClaimsError> {
    match value {
        Some(v) => rule(v).map_err(|reason| invalid(claim, reason)),
        None => Ok(()),
    }
}

fn invalid(claim: &str, reason: &'static str) -> ClaimsError {
    ClaimsError::Invalid {
        claim: claim.to_owned(),
        reason,
    }
}

/// Non-empty, at most `max` bytes, no control characters (but `\n` when `lines`).
fn text(v: &str, max: usize, lines: bool) -> Result<(), &'static str> {
    if v.trim().is_empty() {
        return Err("must not be empty");
    }
    if v.len() > max {
        return Err("is too long");
    }
    if v.chars()
        .any(|ch| ch.is_control() && !(lines && ch == '\n'))
    {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host.
fn url(v: &str) -> Result<(), &'static str> {
    if v.len() > MAX_URL_BYTES {
        return Err("is too long");
    }
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => Err("must be an absolute http or https URL"),
    }
}

/// `local@domain` (RFC 5322 addr-spec without quoted local parts or address literals): one
/// `@`, a local part of at most 64 bytes, a domain of dot-separated labels.
fn email(v: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "must be an e-mail address (local@domain)";
    if v.len() > MAX_EMAIL_BYTES {
        return Err("is too long");
    }
    let Some((local, domain)) = v.split_once('@') else {
        return Err(SHAPE);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|ch| !ch.is_whitespace() && !ch.is_control() && !"@\"(),:;<>[\\]".contains(ch));
    let domain_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|ch| ch.is_alphanumeric() || ch == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(SHAPE)
    }
}

/// §5.1: "ISO 8601-1 YYYY-MM-DD format. The year MAY be 0000, indicating that it is omitted.
/// To represent only the year, YYYY format is allowed."
fn birthdate(v: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "must be YYYY-MM-DD, 0000-MM-DD or YYYY";
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let number = |s: &str| s.parse::<u32>().ok();
    let parts: Vec<&str> = v.split('-').collect();
    match parts.as_slice() {
        [year] if year.len() == 4 && digits(year) && *year != "0000" => Ok(()),
        [year, month, day]
            if year.len() == 4
                && month.len() == 2
                && day.len() == 2
                && digits(year)
                && digits(month)
                && digits(day) =>
        {
            let (Some(y), Some(m), Some(d)) = (number(year), number(month), number(day)) else {
                return Err(SHAPE);
            };
            // A withheld year allows 29 February.
            let leap = y == 0 || (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
            let days = match m {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                2 if leap => 29,
                2 => 28,
                _ => return Err("has no such month"),
            };
            if (1..=days).contains(&d) {
                Ok(())
            } else {
                Err("has no such day")
            }
        }
        _ => Err(SHAPE),
    }
}

/// An IANA time zone name: `Area/Location` of letters, digits and `_+-`, e.g.
/// `America/Los_Angeles`, `Etc/GMT+2`, `UTC`.
fn zoneinfo(v: &str) -> Result<(), &'static str> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.split('/').all(|part| {
            part.chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_+-".contains(ch))
        });
    if ok {
        Ok(())
    } else {
        Err("must be an IANA time zone name such as Europe/Paris")
    }
}

/// A BCP 47 language tag (`en-US`; §5.1 notes some implementations use `_`, accepted too):
/// a 2-8 letter language, then subtags of 1-8 letters or digits; at most 35 bytes.
fn locale(v: &str) -> Result<(), &'static str> {
    let mut subtags = v.split(['-', '_']);
    let language_ok = subtags
        .next()
        .is_some_and(|l| (2..=8).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        subtags.all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if language_ok && rest_ok && v.len() <= 35 {
        Ok(())
    } else {
        Err("must be a BCP 47 language tag such as en-US")
    }
}

/// A telephone number: digits with `+`, spaces, `-`, `.`, parentheses, and an optional
/// RFC 3966 extension (`;ext=5678`), as §5.1 shows: "+1 (425) 555-1212".
fn phone(v: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "must be a telephone number such as +1 (425) 555-1212";
    if v.len() > MAX_PHONE_BYTES {
        return Err("is too long");
    }
    let (number, extension) = match v.split_once(";ext=") {
        Some((number, ext)) => (number, Some(ext)),
        None => (v, None),
    };
    let number_ok = number.bytes().any(|b| b.is_ascii_digit())
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || b" +-.()".contains(&b))
        && !number.trim_start().get(1..).unwrap_or("").contains('+');
    let extension_ok =
        extension.is_none_or(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    if number_ok && extension_ok {
        Ok(())
    } else {
        Err(SHAPE)
    }
}
