//! Kafka's `ssl.principal.mapping.rules`, and a certificate subject written as Kafka writes it.

use regex::Regex;
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
    /// A regex over the whole DN, its replacement, and an optional case change.
    Pattern { regex: Regex, replacement: String, case: Option<char> },
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
                let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| bad(&format!("bad regex: {e}")))?;
                parsed.push(Rule::Pattern { regex, replacement: java_replacement(&replacement), case });
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
            Rule::Pattern { regex, replacement, case } => {
                if !regex.is_match(distinguished_name) {
                    return None;
                }
                let mapped = regex.replace(distinguished_name, replacement.as_str()).into_owned();
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

/// Java's `$1` group references as the regex crate's `${1}` (so `$1a` is group 1 then `a`, as in Java).
fn java_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    out.push(d);
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            '\\' => {
                if let Some(next) = chars.next() {
                    if next == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(next);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A certificate's subject in RFC 2253 form, as Java's `X500Principal.getName()` prints it: most specific
/// attribute first, `,` between them, special characters escaped.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, MappingError> {
    let (_, certificate) =
        X509Certificate::from_der(certificate_der).map_err(|e| MappingError::Certificate(e.to_string()))?;
    let mut rdns = Vec::new();
    for rdn in certificate.subject().iter_rdn() {
        let mut attributes = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.9" => "STREET",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                "1.2.840.113549.1.9.1" => "EMAILADDRESS",
                _ => oid.as_str(),
            }
            .to_string();
            let value = attribute
                .as_str()
                .map_err(|_| MappingError::Certificate(format!("subject attribute {name} is not a string")))?;
            attributes.push(format!("{name}={}", escape_value(value)));
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
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
    }
}
