//! Choosing a supported locale from what the user asked for: `Accept-Language` parsing
//! (RFC 9110 §12.5.4) and language-range lookup (RFC 4647 §3.4), with Chinese matched by
//! script (`zh`, `zh-CN`, `zh-SG` are Simplified; `zh-TW`, `zh-HK`, `zh-MO` Traditional).

/// The most language ranges of one `Accept-Language` header we look at.
const MAX_RANGES: usize = 32;

/// The longest language tag we accept (RFC 5646 §4.4.1 suggests 35 characters suffice).
const MAX_TAG: usize = 35;

/// Whether `tag` looks like a BCP 47 language tag: subtags of 1 to 8 ASCII letters or digits
/// joined by `-`, the first of letters only.
pub fn is_tag(tag: &str) -> bool {
    tag.len() <= MAX_TAG
        && tag.split('-').enumerate().all(|(i, sub)| {
            (1..=8).contains(&sub.len())
                && if i == 0 {
                    sub.bytes().all(|b| b.is_ascii_alphabetic())
                } else {
                    sub.bytes().all(|b| b.is_ascii_alphanumeric())
                }
        })
}

/// The language ranges of an `Accept-Language` value, most preferred first (by q-value;
/// equal ones keep their order). Ranges with `q=0`, the wildcard `*` and malformed entries
/// are left out: the default locale stands for "anything".
pub fn accept_language(header: &str) -> impl Iterator<Item = &str> {
    let mut ranges: Vec<(u16, &str)> = header
        .split(',')
        .take(MAX_RANGES)
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let mut q = 1000;
            for param in parts {
                let (name, value) = param.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(value.trim())?;
                }
            }
            (q > 0 && is_tag(tag)).then_some((q, tag))
        })
        .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
    ranges.into_iter().map(|(_, tag)| tag)
}

/// An RFC 9110 §12.4.2 qvalue in thousandths: `0`, `1`, `0.5`, `1.000`; `None` if malformed.
fn qvalue(raw: &str) -> Option<u16> {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The index in `supported` of the best match for the first of `wanted` that matches any:
/// for each wanted tag, RFC 4647 lookup (the tag, then with its last subtag cut, and so on),
/// then any supported locale of the same language (`pt` finds `pt-BR`).
pub fn pick<'a>(supported: &[&str], wanted: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    wanted.into_iter().find_map(|tag| {
        let tag = normalize(tag);
        lookup(supported, &tag).or_else(|| same_language(supported, &tag))
    })
}

fn lookup(supported: &[&str], tag: &str) -> Option<usize> {
    let mut range = tag;
    loop {
        if let Some(i) = supported
            .iter()
            .position(|s| normalize(s).eq_ignore_ascii_case(range))
        {
            return Some(i);
        }
        // RFC 4647 §3.4: cut the last subtag, and a single-letter one left before it.
        let cut = range.rfind('-')?;
        range = &range[..cut];
        if range.len() >= 2 && range.as_bytes().get(range.len() - 2) == Some(&b'-') {
            range = &range[..range.len() - 2];
        }
    }
}

fn same_language(supported: &[&str], tag: &str) -> Option<usize> {
    let language = primary(tag);
    let wanted_script = script(tag);
    supported.iter().position(|s| {
        let s = normalize(s);
        primary(&s).eq_ignore_ascii_case(language) && script(&s).eq_ignore_ascii_case(wanted_script)
    })
}

fn primary(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// The script subtag of a tag (the second, when it has four letters), or "".
fn script(tag: &str) -> &str {
    tag.split('-')
        .nth(1)
        .filter(|s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_alphabetic()))
        .unwrap_or("")
}

/// A tag with Chinese made explicit about its script, so that `zh-TW` never reads Simplified
/// and `zh-CN` finds `zh-Hans`: `zh` and `zh-<region>` gain `Hans` or `Hant`. Other tags are
/// as given.
fn normalize(tag: &str) -> String {
    let mut subtags = tag.split('-');
    let language = subtags.next().unwrap_or("");
    if !language.eq_ignore_ascii_case("zh") || !script(tag).is_empty() {
        return tag.to_owned();
    }
    let rest: Vec<&str> = subtags.collect();
    let traditional = rest.first().is_some_and(|region| {
        ["TW", "HK", "MO"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(region))
    });
    let script = if traditional { "Hant" } else { "Hans" };
    std::iter::once(language)
        .chain(std::iter::once(script))
        .chain(rest)
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [&str; 6] = ["en", "de", "fr", "es", "ja", "zh-Hans"];

    fn best(wanted: &[&str]) -> Option<&'static str> {
        pick(&SHIPPED, wanted.iter().copied()).and_then(|i| SHIPPED.get(i).copied())
    }

    #[test]
    fn regional_variants_find_their_language() {
        assert_eq!(best(&["de-AT"]), Some("de"));
        assert_eq!(best(&["fr-CA"]), Some("fr"));
        assert_eq!(best(&["es-419"]), Some("es"));
        assert_eq!(best(&["en-US"]), Some("en"));
        assert_eq!(best(&["DE-de"]), Some("de"));
        assert_eq!(best(&["ja-JP-x-private"]), Some("ja"));
    }

    #[test]
    fn chinese_is_matched_by_script() {
        for simplified in ["zh", "zh-CN", "zh-Hans", "zh-hans-CN", "zh-SG", "ZH-cn"] {
            assert_eq!(best(&[simplified]), Some("zh-Hans"), "{simplified}");
        }
        for traditional in ["zh-TW", "zh-HK", "zh-Hant", "zh-Hant-TW"] {
            assert_eq!(best(&[traditional]), None, "{traditional}");
        }
        // A Traditional reader who also reads English gets English, not Simplified.
        assert_eq!(best(&["zh-TW", "en"]), Some("en"));
        let with_hant = ["en", "zh-Hans", "zh-Hant"];
        assert_eq!(pick(&with_hant, ["zh-TW"]), Some(2));
        assert_eq!(pick(&with_hant, ["zh"]), Some(1));
    }

    #[test]
    fn the_first_supported_wins_and_unknown_ones_are_skipped() {
        assert_eq!(best(&["tlh", "ja", "de"]), Some("ja"));
        assert_eq!(best(&["tlh"]), None);
        assert_eq!(best(&[]), None);
        // A language-only request finds a regional catalog.
        assert_eq!(pick(&["en", "pt-BR"], ["pt-PT"]), Some(1));
    }

    #[test]
    fn accept_language_is_ordered_by_quality() {
        let order: Vec<_> =
            accept_language("fr;q=0.5, de-AT, en;q=0.8, *;q=0.1, ja;q=0, es;q=1.0").collect();
        assert_eq!(order, ["de-AT", "es", "en", "fr"]);
        assert_eq!(
            best(&accept_language("ja;q=0.9, de;q=0.95").collect::<Vec<_>>()),
            Some("de")
        );
    }

    #[test]
    fn malformed_accept_language_entries_are_ignored() {
        let order: Vec<_> = accept_language(
            "de;q=2, fr;q=0.1234, <script>, es;q=abc, ja;q=0.3, , en-US-verylongsubtag",
        )
        .collect();
        assert_eq!(order, ["ja"]);
        assert_eq!(accept_language("").count(), 0);
        let huge = "xx,".repeat(10_000);
        assert!(accept_language(&huge).count() <= MAX_RANGES);
    }

    #[test]
    fn tags_are_checked() {
        for good in [
            "en",
            "zh-Hans",
            "de-AT",
            "es-419",
            "sr-Latn-RS",
            "x-klingon",
        ] {
            assert!(is_tag(good), "{good}");
        }
        for bad in [
            "",
            "e n",
            "de_AT",
            "1de",
            "-de",
            "de-",
            "../x",
            "a-123456789",
        ] {
            assert!(!is_tag(bad), "{bad}");
        }
    }
}
