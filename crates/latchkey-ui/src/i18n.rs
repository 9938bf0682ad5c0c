//! The pages' languages: message catalogs and the choice of one per request.
//!
//! Every word a page shows comes from a catalog: one TOML file per locale (English,
//! German, French, Spanish, Japanese and Simplified Chinese are compiled in), whose tables
//! flatten into keys such as `login.heading`, with `{name}` placeholders the page fills in.
//! An operator adds or overrides strings without recompiling: each `<tag>.toml` in a locales
//! directory overrides the keys it names in a shipped catalog, or adds a locale. A key missing
//! from an added locale falls back to the default locale, then to English.
//!
//! The locale of a page is the first supported one of the request's OpenID Connect
//! `ui_locales` (Core §3.1.2.1), then of the browser's `Accept-Language` (RFC 9110 §12.5.4,
//! by q-value), then the operator's default ([`negotiate`] has the matching rules). Pages in
//! Arabic, Hebrew, Persian, Urdu and other right-to-left scripts, or of a catalog declaring
//! `dir = "rtl"`, are laid out right to left.

pub mod negotiate;

use crate::pages::PagesError;
use std::collections::BTreeMap;
use std::path::Path;

/// The catalogs compiled into the binary, by locale tag; English is the reference.
pub const BUILTIN: [(&str, &str); 6] = [
    ("en", include_str!("../locales/en.toml")),
    ("de", include_str!("../locales/de.toml")),
    ("fr", include_str!("../locales/fr.toml")),
    ("es", include_str!("../locales/es.toml")),
    ("ja", include_str!("../locales/ja.toml")),
    ("zh-Hans", include_str!("../locales/zh-Hans.toml")),
];

/// The locale every missing key falls back to last, and whose keys are the complete set.
pub const REFERENCE: &str = "en";

/// Primary languages written right to left, for a catalog that does not say `dir`.
const RTL_LANGUAGES: [&str; 10] = ["ar", "he", "fa", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"];

/// Writing direction of a page (`<html dir>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Left to right.
    Ltr,
    /// Right to left.
    Rtl,
}

impl Direction {
    /// The `dir` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ltr => "ltr",
            Self::Rtl => "rtl",
        }
    }
}

/// One locale's messages.
#[derive(Clone, Debug)]
struct Catalog {
    tag: String,
    dir: Direction,
    messages: BTreeMap<String, String>,
}

/// The locale chosen for one response: its tag (for `<html lang>`) and direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locale {
    index: usize,
    tag: String,
    dir: Direction,
}

impl Locale {
    /// The BCP 47 tag of the catalog, e.g. `zh-Hans`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Its writing direction.
    pub fn dir(&self) -> Direction {
        self.dir
    }
}

/// Every locale the pages speak, with the operator's additions and overrides.
#[derive(Clone, Debug)]
pub struct Catalogs {
    locales: Vec<Catalog>,
    /// Index of the operator's default locale.
    default: usize,
    /// Index of [`REFERENCE`].
    reference: usize,
}

impl Catalogs {
    /// The compiled-in catalogs, English by default.
    pub fn builtin() -> Self {
        Self::load(None, REFERENCE).unwrap_or_else(|_| Self::reference_only())
    }

    /// The compiled-in catalogs, overridden and extended by the `<tag>.toml` files of
    /// `overrides`, with `default` as the locale of requests that match none. Fails on a
    /// catalog that does not parse, a key no page uses, a bad tag or an unknown default.
    pub fn load(overrides: Option<&Path>, default: &str) -> Result<Self, PagesError> {
        let mut locales = Vec::with_capacity(BUILTIN.len());
        for (tag, source) in BUILTIN {
            let (dir, messages) = parse(tag, source)?;
            locales.push(Catalog {
                tag: tag.to_owned(),
                dir: dir.unwrap_or_else(|| default_direction(tag)),
                messages,
            });
        }
        let reference_keys: Vec<String> = locales
            .first()
            .map(|c| c.messages.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(dir) = overrides {
            for (tag, path) in catalog_files(dir)? {
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| PagesError::Read(path.display().to_string(), e))?;
                let (dir, messages) = parse(&path.display().to_string(), &source)?;
                if let Some(unknown) = messages
                    .keys()
                    .find(|k| reference_keys.binary_search(k).is_err())
                {
                    return Err(PagesError::Catalog(
                        path.display().to_string(),
                        format!("no page uses the key {unknown:?}"),
                    ));
                }
                match locales
                    .iter_mut()
                    .find(|c| c.tag.eq_ignore_ascii_case(&tag))
                {
                    Some(existing) => {
                        existing.messages.extend(messages);
                        if let Some(dir) = dir {
                            existing.dir = dir;
                        }
                    }
                    None => {
                        let missing = reference_keys.len() - messages.len();
                        if missing > 0 {
                            tracing::info!(
                                locale = %tag,
                                missing,
                                "locale catalog lacks some messages; they fall back to the default locale"
                            );
                        }
                        locales.push(Catalog {
                            dir: dir.unwrap_or_else(|| default_direction(&tag)),
                            tag,
                            messages,
                        });
                    }
                }
            }
        }
        let find = |tag: &str| locales.iter().position(|c| c.tag.eq_ignore_ascii_case(tag));
        let reference = find(REFERENCE).unwrap_or(0);
        let default = find(default).ok_or_else(|| {
            PagesError::Catalog(
                default.to_owned(),
                "the default locale has no catalog".to_owned(),
            )
        })?;
        Ok(Self {
            locales,
            default,
            reference,
        })
    }

    /// English only: what [`Self::builtin`] falls back to if a shipped catalog were broken
    /// (a test keeps them parsing).
    fn reference_only() -> Self {
        let messages = parse(REFERENCE, BUILTIN[0].1)
            .map(|(_, m)| m)
            .unwrap_or_default();
        Self {
            locales: vec![Catalog {
                tag: REFERENCE.to_owned(),
                dir: Direction::Ltr,
                messages,
            }],
            default: 0,
            reference: 0,
        }
    }

    /// The tags of every locale, shipped and added, for discovery's `ui_locales_supported`.
    pub fn tags(&self) -> Vec<String> {
        self.locales.iter().map(|c| c.tag.clone()).collect()
    }

    /// The locale for a request: the first supported of `ui_locales`, then of the
    /// `Accept-Language` header, then the default.
    pub fn negotiate(&self, ui_locales: &[String], accept_language: Option<&str>) -> Locale {
        let tags: Vec<&str> = self.locales.iter().map(|c| c.tag.as_str()).collect();
        let wanted = ui_locales
            .iter()
            .map(String::as_str)
            .chain(negotiate::accept_language(accept_language.unwrap_or("")));
        let index = negotiate::pick(&tags, wanted).unwrap_or(self.default);
        self.locale(index)
    }

    /// The locale with tag `tag` (as chosen for an earlier response), or the default.
    pub fn by_tag(&self, tag: &str) -> Locale {
        let index = self
            .locales
            .iter()
            .position(|c| c.tag == tag)
            .unwrap_or(self.default);
        self.locale(index)
    }

    fn locale(&self, index: usize) -> Locale {
        let c = self.locales.get(index).or_else(|| self.locales.first());
        Locale {
            index,
            tag: c.map_or_else(|| REFERENCE.to_owned(), |c| c.tag.clone()),
            dir: c.map_or(Direction::Ltr, |c| c.dir),
        }
    }

    /// The raw message `key` in `locale`, falling back to the default locale, then English;
    /// `None` for a key no catalog has.
    pub fn message(&self, locale: &Locale, key: &str) -> Option<&str> {
        [locale.index, self.default, self.reference]
            .into_iter()
            .filter_map(|i| self.locales.get(i))
            .find_map(|c| c.messages.get(key))
            .map(String::as_str)
    }

    /// Message `key` in `locale` with its placeholders filled from `args`, as plain text (the
    /// page escapes it). A key no catalog has comes out as itself, so a typo shows.
    pub fn text(&self, locale: &Locale, key: &str, args: &[(&str, &str)]) -> String {
        let message = self.message(locale, key).unwrap_or(key);
        let mut out = String::with_capacity(message.len());
        fill(message, |piece| match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Arg(name) => match args.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        });
        out
    }
}

/// A part of a message: literal text or a `{placeholder}`.
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Arg(&'a str),
}

/// Walks `message`, giving its literal text and its `{name}` placeholders in order. A brace
/// that does not enclose a name (letters, digits, `_`) is literal text.
pub(crate) fn fill<'a>(message: &'a str, mut each: impl FnMut(Piece<'a>)) {
    let mut rest = message;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            each(Piece::Text(&rest[..open]));
            each(Piece::Arg(&after[..name_len]));
            rest = &after[name_len + 1..];
        } else {
            each(Piece::Text(&rest[..=open]));
            rest = after;
        }
    }
    each(Piece::Text(rest));
}

/// The placeholder names of a message, for the catalog tests.
#[cfg(test)]
fn placeholders(message: &str) -> Vec<&str> {
    let mut names = Vec::new();
    fill(message, |piece| {
        if let Piece::Arg(name) = piece {
            names.push(name);
        }
    });
    names.sort_unstable();
    names
}

/// The `(tag, path)` of each `*.toml` in `dir`, sorted by name; a file name that is not a
/// language tag is an error (a typo there would otherwise add a locale nobody can pick).
fn catalog_files(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, PagesError> {
    let read_err = |e| PagesError::Read(dir.display().to_string(), e);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let tag = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !negotiate::is_tag(&tag) {
            return Err(PagesError::Catalog(
                path.display().to_string(),
                "the file name must be a language tag, such as pt-BR.toml".to_owned(),
            ));
        }
        out.push((tag, path));
    }
    out.sort();
    Ok(out)
}

/// A catalog's direction (`[locale] dir`, if given) and its messages, keyed by their table
/// path (`[login] heading` is `login.heading`). Everything but `[locale]` must be a string.
fn parse(
    name: &str,
    source: &str,
) -> Result<(Option<Direction>, BTreeMap<String, String>), PagesError> {
    let bad = |why: String| PagesError::Catalog(name.to_owned(), why);
    let table: toml::Table = toml::from_str(source).map_err(|e| bad(e.to_string()))?;
    let mut dir = None;
    let mut messages = BTreeMap::new();
    for (key, value) in table {
        if key == "locale" {
            let toml::Value::Table(meta) = value else {
                return Err(bad("[locale] must be a table".to_owned()));
            };
            for (k, v) in meta {
                match (k.as_str(), v.as_str()) {
                    ("dir", Some("rtl")) => dir = Some(Direction::Rtl),
                    ("dir", Some("ltr")) => dir = Some(Direction::Ltr),
                    ("dir", _) => {
                        return Err(bad("[locale] dir must be \"ltr\" or \"rtl\"".into()));
                    }
                    ("name", Some(_)) => {}
                    _ => return Err(bad(format!("[locale] has no setting {k:?}"))),
                }
            }
            continue;
        }
        flatten(&key, value, &mut messages).map_err(bad)?;
    }
    Ok((dir, messages))
}

fn flatten(
    prefix: &str,
    value: toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => {
            out.insert(prefix.to_owned(), s);
            Ok(())
        }
        toml::Value::Table(t) => t
            .into_iter()
            .try_for_each(|(k, v)| flatten(&format!("{prefix}.{k}"), v, out)),
        _ => Err(format!("{prefix} must be a string")),
    }
}

/// Right to left for the languages written so (by primary subtag), else left to right.
fn default_direction(tag: &str) -> Direction {
    let primary = tag.split(['-', '_']).next().unwrap_or(tag);
    if RTL_LANGUAGES
        .iter()
        .any(|l| l.eq_ignore_ascii_case(primary))
    {
        Direction::Rtl
    } else {
        Direction::Ltr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(source: &str) -> BTreeMap<String, String> {
        parse("test", source).expect("parses").1
    }

    #[test]
    fn every_shipped_locale_has_every_key_and_no_other() {
        let reference = keys(BUILTIN[0].1);
        assert!(reference.len() > 50, "{}", reference.len());
        for (tag, source) in BUILTIN {
            let catalog = keys(source);
            let missing: Vec<_> = reference
                .keys()
                .filter(|k| !catalog.contains_key(*k))
                .collect();
            let extra: Vec<_> = catalog
                .keys()
                .filter(|k| !reference.contains_key(*k))
                .collect();
            assert!(missing.is_empty(), "{tag} lacks {missing:?}");
            assert!(extra.is_empty(), "{tag} has unknown keys {extra:?}");
        }
    }

    #[test]
    fn every_translation_keeps_the_placeholders_of_english() {
        let reference = keys(BUILTIN[0].1);
        for (tag, source) in BUILTIN {
            for (key, message) in keys(source) {
                assert!(!message.trim().is_empty(), "{tag} {key} is empty");
                let english = reference.get(&key).map(String::as_str).unwrap_or("");
                assert_eq!(
                    placeholders(&message),
                    placeholders(english),
                    "{tag} {key}: {message}"
                );
            }
        }
    }

    #[test]
    fn translations_differ_from_english() {
        let reference = keys(BUILTIN[0].1);
        for (tag, source) in BUILTIN.iter().skip(1) {
            let same = keys(source)
                .iter()
                .filter(|(k, v)| reference.get(*k) == Some(*v))
                .count();
            // A word or two may be the same in both ("Code", "OK"); a copied file is not.
            assert!(same <= 3, "{tag}: {same} messages are still English");
        }
    }

    #[test]
    fn text_fills_placeholders_and_falls_back() {
        let c = Catalogs::builtin();
        let de = c.negotiate(&["de".into()], None);
        assert_eq!(de.tag(), "de");
        assert_eq!(
            c.text(&de, "consent.title", &[("client", "Photos")]),
            "Photos autorisieren"
        );
        assert_eq!(c.text(&de, "no.such.key", &[]), "no.such.key");
        let en = c.by_tag("en");
        assert_eq!(
            c.text(&en, "login.throttled", &[("seconds", "7")]),
            "Too many failed attempts. Try again in 7 seconds."
        );
        assert_eq!(c.text(&en, "consent.title", &[]), "Authorize {client}");
    }

    #[test]
    fn braces_without_a_name_are_text() {
        assert_eq!(placeholders("a {b} {} {c d} {e_1}"), vec!["b", "e_1"]);
        let mut out = String::new();
        fill("{ x } {y}", |p| match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Arg(a) => out.push_str(&a.to_uppercase()),
        });
        assert_eq!(out, "{ x } Y");
    }

    #[test]
    fn right_to_left_by_language_or_by_declaration() {
        assert_eq!(default_direction("ar"), Direction::Rtl);
        assert_eq!(default_direction("he-IL"), Direction::Rtl);
        assert_eq!(default_direction("fa"), Direction::Rtl);
        assert_eq!(default_direction("ja"), Direction::Ltr);
        let (dir, _) = parse("x", "[locale]\ndir = \"rtl\"\n").expect("parses");
        assert_eq!(dir, Some(Direction::Rtl));
        assert!(parse("x", "[locale]\ndir = \"up\"\n").is_err());
        assert!(parse("x", "[login]\nheading = 3\n").is_err());
    }

    #[test]
    fn an_operator_directory_overrides_and_adds_locales() {
        let dir = std::env::temp_dir().join(format!("latchkey-i18n-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("de.toml"), "[login]\nheading = \"Willkommen\"\n").expect("w");
        std::fs::write(
            dir.join("ar.toml"),
            "[locale]\nname = \"العربية\"\n[login]\nheading = \"تسجيل الدخول\"\n",
        )
        .expect("w");
        let c = Catalogs::load(Some(&dir), "de").expect("loads");
        assert_eq!(c.tags(), ["en", "de", "fr", "es", "ja", "zh-Hans", "ar"]);
        let ar = c.negotiate(&[], Some("ar-EG,en;q=0.5"));
        assert_eq!((ar.tag(), ar.dir()), ("ar", Direction::Rtl));
        assert_eq!(c.text(&ar, "login.heading", &[]), "تسجيل الدخول");
        // Missing in the added locale: the default locale's (overridden German) text.
        assert_eq!(c.text(&ar, "login.password", &[]), "Passwort");
        let de = c.negotiate(&[], None);
        assert_eq!(c.text(&de, "login.heading", &[]), "Willkommen");

        std::fs::write(dir.join("fr.toml"), "[login]\nheadline = \"x\"\n").expect("w");
        assert!(matches!(
            Catalogs::load(Some(&dir), "en"),
            Err(PagesError::Catalog(..))
        ));
        std::fs::remove_file(dir.join("fr.toml")).expect("rm");
        assert!(Catalogs::load(Some(&dir), "xx").is_err());
        std::fs::write(dir.join("not a tag.toml"), "").expect("w");
        assert!(Catalogs::load(Some(&dir), "en").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
