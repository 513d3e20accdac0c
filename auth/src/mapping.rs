//! Kafka's `ssl.principal.mapping.rules`, and a certificate subject written as Kafka writes it.

use std::fmt::Write as _;

use regex::Regex;
use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why rules or a certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A rule does not follow `RULE:pattern/replacement/[LU]` or `DEFAULT`.
    #[error("rule {index} (`{rule}`): {reason}")]
    BadRule {
        /// Position in the list, from 1.
        index: usize,
        /// The rule's text.
        rule: String,
        /// What is wrong.
        reason: String,
    },
    /// The certificate does not parse.
    #[error("unreadable certificate: {0}")]
    Certificate(String),
}

/// The ordered rules; the first that matches wins.
#[derive(Debug, Clone)]
pub struct PrincipalMappingRules {
    /// The rules, in order.
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The DN unchanged.
    Default,
    /// `RULE:pattern/replacement/[LU]`.
    Pattern {
        /// The pattern anchored at both ends: the rule applies only when it matches the whole DN, as Java's
        /// `Matcher.matches()`.
        whole: Regex,
        /// The pattern as written, for the replacement, which Kafka does with `String.replaceAll` (so an
        /// unanchored lazy pattern replaces every match, not the whole DN).
        pattern: Regex,
        /// The replacement in the regex crate's syntax (`${1}`, `$$`).
        replacement: String,
        /// `L` or `U`: lower- or upper-case the result.
        case: Option<char>,
    },
}

// === impl PrincipalMappingRules ===

impl Default for PrincipalMappingRules {
    fn default() -> Self {
        Self { rules: vec![Rule::Default] }
    }
}

impl PrincipalMappingRules {
    /// Parses Kafka's syntax: `RULE:<regex>/<replacement>/[L|U]` and `DEFAULT`, separated by commas or
    /// newlines. Commas inside a rule's regex are part of it (rules are read up to their closing `/`).
    pub fn parse(rules: &str) -> Result<Self, MappingError> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        while !rest.is_empty() {
            let index = parsed.len() + 1;
            let rule_text = rest.split([',', '\n']).next().unwrap_or(rest).trim().to_string();
            let bad = |reason: &str| MappingError::BadRule { index, rule: rule_text.clone(), reason: reason.into() };
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| bad("expected RULE:pattern/replacement/"))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| bad("expected a closing `/`"))?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let regex = |p: &str| Regex::new(p).map_err(|e| bad(&format!("bad regex: {e}")));
                let (whole, pattern) = (regex(&format!(r"\A(?:{pattern})\z"))?, regex(&pattern)?);
                let replacement = java_replacement(&replacement, &pattern).map_err(|e| bad(&e))?;
                parsed.push(Rule::Pattern { whole, pattern, replacement, case });
                rest = after;
            } else {
                return Err(bad("expected RULE:... or DEFAULT"));
            }
            let trimmed = rest.trim_start_matches([' ', '\t', '\r']);
            rest = match trimmed.chars().next() {
                None => trimmed,
                Some(',' | '\n') => trimmed[1..].trim_start_matches(|c: char| c.is_whitespace()),
                Some(_) => return Err(bad("unexpected text after the rule")),
            };
        }
        if parsed.is_empty() {
            parsed.push(Rule::Default);
        }
        Ok(Self { rules: parsed })
    }

    /// The principal name for `distinguished_name`, or `None` when no rule matches.
    pub fn apply(&self, distinguished_name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(distinguished_name.to_string()),
            Rule::Pattern { whole, pattern, replacement, case } => {
                if !whole.is_match(distinguished_name) {
                    return None;
                }
                let mapped = pattern.replace_all(distinguished_name, replacement.as_str()).into_owned();
                Some(match case {
                    Some('L') => mapped.to_lowercase(),
                    Some('U') => mapped.to_uppercase(),
                    _ => mapped,
                })
            }
        })
    }
}

/// Reads up to an unescaped `/`; returns the text (escapes of `/` resolved) and what follows the `/`.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Translates a Java replacement (`$1`, `${name}`, `\\x` for a literal `x`) to the regex crate's syntax.
/// Group numbers follow Java: digits are taken while they still name an existing group (`$12` with one group
/// is group 1 then `2`), and a reference to a group that does not exist stays literal, as Kafka escapes it.
fn java_replacement(replacement: &str, pattern: &Regex) -> Result<String, String> {
    let groups = pattern.captures_len() - 1;
    let mut out = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(escaped) => out.push(escaped),
                None => return Err("replacement ends with `\\`".into()),
            },
            '$' => match chars.next() {
                Some('{') => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err("unclosed `${` in the replacement".into()),
                        }
                    }
                    if !pattern.capture_names().flatten().any(|n| n == name) {
                        return Err(format!("no group named `{name}`"));
                    }
                    let _ = write!(out, "${{{name}}}");
                }
                Some(first) if first.is_ascii_digit() => {
                    let mut group = first.to_digit(10).unwrap_or_default() as usize;
                    while let Some(next) = chars.peek().and_then(|c| c.to_digit(10)).map(|d| group * 10 + d as usize) {
                        if next > groups {
                            break;
                        }
                        group = next;
                        chars.next();
                    }
                    if group > groups {
                        out.push_str("$$");
                        out.push(first);
                    } else {
                        let _ = write!(out, "${{{group}}}");
                    }
                }
                _ => return Err("`$` must be followed by a group number or `{name}` (`\\$` is a literal `$`)".into()),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A certificate's subject in RFC 2253 form, exactly as Java's `X500Principal.getName()` prints it (which is
/// what Kafka's mapping rules are written against): most specific RDN first, `,` between RDNs and `+` within
/// one, keywords only for CN, C, L, ST, O, OU, STREET, DC and UID, every other attribute (emailAddress
/// included) as `<oid>=#<hex of its DER>`, and values escaped as Java escapes them.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, MappingError> {
    let (_, certificate) =
        X509Certificate::from_der(certificate_der).map_err(|e| MappingError::Certificate(e.to_string()))?;
    let mut rdns = Vec::new();
    for rdn in certificate.subject().iter_rdn() {
        let attributes: Result<Vec<String>, MappingError> =
            rdn.iter().map(|a| attribute_text(&a.attr_type().to_id_string(), a.attr_value())).collect();
        rdns.push(attributes?.join("+"));
    }
    // Encoded least specific first (C=...); Java prints the reverse.
    rdns.reverse();
    Ok(rdns.join(","))
}

/// One `type=value` of a DN.
fn attribute_text(oid: &str, value: &Any<'_>) -> Result<String, MappingError> {
    let keyword = match oid {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        _ => None,
    };
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::GeneralString => {
            Some(String::from_utf8_lossy(value.data).into_owned())
        }
        Tag::TeletexString => Some(value.data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = value.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    };
    match (keyword, text) {
        (Some(keyword), Some(text)) => Ok(format!("{keyword}={}", escape_value(&text))),
        (keyword, _) => {
            let der = value.to_der_vec().map_err(|e| MappingError::Certificate(format!("attribute {oid}: {e}")))?;
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{}=#{hex}", keyword.unwrap_or(oid)))
        }
    }
}

/// Java's RFC 2253 value escaping: `,` `=` `+` `<` `>` `#` `;` `"` `\\` anywhere, NUL as `\\00`, and leading or
/// trailing spaces (and carriage returns).
fn escape_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\0' => escaped.push_str("\\00"),
            c => escaped.push(c),
        }
    }
    let edge = |c: char| c == ' ' || c == '\r';
    let lead = escaped.chars().take_while(|c| edge(*c)).count();
    let total = escaped.chars().count();
    let trail = escaped.chars().rev().take_while(|c| edge(*c)).count().min(total - lead);
    let mut out = String::with_capacity(escaped.len() + lead + trail);
    for (i, c) in escaped.chars().enumerate() {
        if i < lead || i >= total - trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA_DOC_RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
        RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
        DEFAULT";

    #[test]
    fn kafkas_documented_rules_map_as_kafka_does() {
        let rules = PrincipalMappingRules::parse(KAFKA_DOC_RULES).expect("parses");
        let map = |dn: &str| rules.apply(dn);
        assert_eq!(
            map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(map("CN=Avro.Consumer,OU=Whatever").as_deref(), Some("avro.consumer"));
        assert_eq!(map("OU=NoCommonName").as_deref(), Some("OU=NoCommonName"), "DEFAULT keeps the DN");
    }

    #[test]
    fn case_flags_newlines_and_no_match() {
        let rules = PrincipalMappingRules::parse("RULE:^CN=([^,]*),.*$/$1x/U\n RULE:^O=(.*)$/org-$1/").expect("parses");
        assert_eq!(rules.apply("CN=alice,O=acme").as_deref(), Some("ALICEX"));
        assert_eq!(rules.apply("O=acme").as_deref(), Some("org-acme"));
        assert_eq!(rules.apply("C=US"), None, "no DEFAULT: no principal");
        assert_eq!(PrincipalMappingRules::default().apply("CN=a").as_deref(), Some("CN=a"));
        assert_eq!(PrincipalMappingRules::parse("").expect("empty").apply("CN=a").as_deref(), Some("CN=a"));
    }

    #[test]
    fn malformed_rules_are_named() {
        for bad in ["RULE:^CN=(.*)$", "RULE:^CN=(.*)$/$1", "DEFAULTS", "RULE:([/x/", "RULE:a/b/Q"] {
            let e = PrincipalMappingRules::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("rule 1"), "{e}");
        }
        let e = PrincipalMappingRules::parse("DEFAULT, nonsense").expect_err("second");
        assert!(e.to_string().starts_with("rule 2"), "{e}");
        for bad in ["RULE:(.*)/$x/", "RULE:(.*)/${user}/", "RULE:(.*)/a\\/", "RULE:(?<=a)b/c/"] {
            let e = PrincipalMappingRules::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("rule 1"), "{e}");
        }
    }

    #[test]
    fn replacements_follow_java() {
        let map = |rules: &str, dn: &str| PrincipalMappingRules::parse(rules).expect(rules).apply(dn);
        assert_eq!(map("RULE:CN=(.*),O=(.*)/$2:$1/", "CN=a,O=b").as_deref(), Some("b:a"));
        assert_eq!(map("RULE:CN=(.*)/$12/", "CN=a").as_deref(), Some("a2"), "group 1, then a literal 2");
        assert_eq!(map("RULE:CN=(.*)/$3-$0/", "CN=a").as_deref(), Some("$3-CN=a"), "no group 3: literal");
        assert_eq!(map("RULE:CN=(?<user>.*)/${user}\\$/", "CN=a").as_deref(), Some("a$"));
        assert_eq!(map("RULE:^CN=([^\\/]*)\\/x$/$1\\/y/", "CN=a/x").as_deref(), Some("a/y"), "escaped slashes");
        // Java's replaceAll: an unanchored lazy pattern that matches the whole DN replaces each of its matches.
        assert_eq!(map("RULE:[a-z]+?/X/", "abc").as_deref(), Some("XXX"));
        assert_eq!(map("RULE:CN=(.*),OU=x/$1/", "CN=a,OU=x,O=y"), None, "must match the whole DN");
    }

    #[test]
    fn values_are_escaped_as_java_escapes_them() {
        assert_eq!(escape_value("acme, inc"), "acme\\, inc");
        assert_eq!(escape_value("a=b+c#d;e<f>g\"h\\i"), "a\\=b\\+c\\#d\\;e\\<f\\>g\\\"h\\\\i");
        assert_eq!(escape_value(" x "), "\\ x\\ ");
        assert_eq!(escape_value("  "), "\\ \\ ");
        assert_eq!(escape_value("#1\0"), "\\#1\\00");
        assert_eq!(escape_value("Zoë"), "Zoë");
    }

    #[test]
    fn certificate_subjects_print_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        // rcgen's default subject already holds a CN, which would keep its first position.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "US");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "acme, inc");
        params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "eng");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(subject_dn(cert.der()).as_deref(), Ok("CN=alice,OU=eng,O=acme\\, inc,C=US"));
        assert!(subject_dn(b"not a certificate").is_err());
        // Attributes without an RFC 2253 keyword print as Java prints them: OID and hex DER.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "bob");
        params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]), "b@x.io");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(subject_dn(cert.der()).as_deref(), Ok("1.2.840.113549.1.9.1=#0c066240782e696f,CN=bob"));
    }
}
