//! `sasl.jaas.config` values, as Kafka clients write them:
//! `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`

use std::collections::BTreeMap;

/// A parsed JAAS login-module entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    /// The login module class.
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The options (`username`, `password`, ...), unquoted and unescaped.
    pub options: BTreeMap<String, String>,
}

impl JaasConfig {
    /// Parses one login-module entry; the trailing semicolon is optional. Errors never echo option values,
    /// which hold secrets.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rest = text.trim();
        let module =
            take_token(&mut rest).ok_or("empty JAAS config: expected `<LoginModule> required key=\"value\" ...;`")?;
        let flag =
            take_token(&mut rest).ok_or_else(|| format!("`{module}` must be followed by a control flag (required)"))?;
        if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
            return Err(format!("control flag `{flag}` is not one of required, requisite, sufficient, optional"));
        }
        let mut options = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix(';') {
                if !after.trim().is_empty() {
                    return Err("only one login module entry is supported; text follows the `;`".into());
                }
                break;
            }
            let eq = rest.find('=').ok_or_else(|| format!("expected key=value near `{}`", preview(rest)))?;
            let key = rest[..eq].trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("malformed option name near `{}`", preview(rest)));
            }
            rest = rest[eq + 1..].trim_start();
            let value = if let Some(quoted) = rest.strip_prefix('"') {
                let (value, after) =
                    take_quoted(quoted).ok_or_else(|| format!("unterminated quoted value for `{key}`"))?;
                rest = after;
                value
            } else {
                let end = rest.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(rest.len());
                let value = rest[..end].to_string();
                rest = &rest[end..];
                value
            };
            options.insert(key.to_string(), value);
        }
        Ok(Self { module, flag, options })
    }

    /// The module's short name (`PlainLoginModule`), whatever its package.
    pub fn module_name(&self) -> &str {
        self.module.rsplit('.').next().unwrap_or(&self.module)
    }
}

fn take_token(rest: &mut &str) -> Option<String> {
    let text = rest.trim_start();
    let end = text.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    let token = text[..end].to_string();
    *rest = &text[end..];
    Some(token)
}

/// Reads a quoted value after its opening quote; `\"` and `\\` are escapes.
fn take_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &text[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

fn preview(text: &str) -> String {
    text.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_scram_entries_parse_with_quotes_escapes_and_optional_semicolon() {
        let j = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="key" password="s3cr\"et";"#,
        )
        .expect("parses");
        assert_eq!(j.module_name(), "PlainLoginModule");
        assert_eq!(j.options.get("username").map(String::as_str), Some("key"));
        assert_eq!(j.options.get("password").map(String::as_str), Some("s3cr\"et"));
        let j = JaasConfig::parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=bob password=x",
        )
        .expect("no semicolon, unquoted");
        assert_eq!((j.module_name(), j.options.len()), ("ScramLoginModule", 2));
    }

    #[test]
    fn malformed_entries_are_refused_without_echoing_secrets() {
        for bad in [
            "",
            "PlainLoginModule",
            "PlainLoginModule mandatory username=\"a\";",
            "PlainLoginModule required username=\"a",
            "PlainLoginModule required password",
            "PlainLoginModule required a=\"1\"; Other required;",
        ] {
            let e = JaasConfig::parse(bad).expect_err(bad);
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = JaasConfig::parse("PlainLoginModule required password=\"hunter2").expect_err("unterminated");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
