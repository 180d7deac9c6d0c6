//! The one redactor every text passes through before it leaves a process: log lines,
//! events, dead-letter headers, the admin API, `dlq show` and `billflow status`.
//!
//! It knows the configured secrets (registered once at start) and, per call, the secrets a
//! command carries; it replaces each wherever it appears, also in the escaped forms a
//! platform may echo it in (XML, JSON, URL). It must not import anything but std, serde_json,
//! quick-xml and percent-encoding: every layer uses it.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// What a secret is replaced by.
pub const MASK: &str = "***";

/// A set of secrets to mask. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first, so a secret containing another is
    /// masked whole.
    needles: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

impl Redactor {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Redactor::default().with(secrets)
    }

    /// This redactor plus `secrets`.
    pub fn with<S: AsRef<str>>(&self, secrets: impl IntoIterator<Item = S>) -> Self {
        let mut needles: Vec<String> = self.needles.as_ref().clone();
        let before = needles.len();
        for secret in secrets {
            for form in forms(secret.as_ref()) {
                if !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        if needles.len() == before {
            return self.clone();
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactor {
            needles: Arc::new(needles),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for needle in self.needles.iter() {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        out
    }

    pub fn redact_string(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.redact(text) {
            *text = masked;
        }
    }

    /// Masks every string (and object key) of a JSON document in place.
    pub fn redact_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_string(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| matches!(self.redact(k), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Whether a JSON key names a secret (`password`, `token`, `secret`, `login`...).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "token",
        "secret",
        "login",
        "credential",
    ]
    .iter()
    .any(|k| key.contains(k))
}

/// The string values under secret-naming keys of a JSON document: what a message that
/// could not be parsed as a command may still carry.
pub fn json_secrets(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_secrets(value, &mut found);
    found
}

/// Replaces the value under every secret-naming key by [`MASK`].
pub fn mask_secret_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) && v.is_string() {
                    *v = Value::String(MASK.into());
                } else {
                    mask_secret_fields(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secret_fields),
        _ => {}
    }
}

fn collect_secrets(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if is_secret_key(key) => found.push(s.clone()),
                    _ => collect_secrets(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_secrets(v, found)),
        _ => {}
    }
}

/// The forms a secret may take in a text: as is, and escaped as XML, JSON and in a URL.
fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![secret.to_string()];
    forms.push(quick_xml::escape::escape(secret).into_owned());
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json.trim_matches('"').to_string());
    }
    forms.push(
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    );
    forms.sort();
    forms.dedup();
    forms
}

static GLOBAL: RwLock<Option<Redactor>> = RwLock::new(None);

/// The process's configured secrets.
pub fn global() -> Redactor {
    let global = GLOBAL.read().unwrap_or_else(|p| p.into_inner());
    global.clone().unwrap_or_default()
}

/// Adds configured secrets (tokens, keys, passwords) to the process's redactor.
pub fn register<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) {
    let mut global = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
    let next = global.clone().unwrap_or_default().with(secrets);
    *global = Some(next);
}

/// Variables whose values are secrets, wherever billflow reads them.
const SECRET_VARIABLES: [&str; 7] = [
    "COSTGUARD_TOKEN",
    "COSTGUARD_PASSWORD",
    "COSTGUARD_AUTHENTICATED_KEY",
    "EMERSION_PASSWORD",
    "BILLFLOW_SIGNING_KEY",
    "BILLFLOW_SIGNING_KEY_PREVIOUS",
    "BILLFLOW_ADMIN_TOKEN",
];

/// Registers the secrets of this process's environment (and the password of `AMQP_URL`).
pub fn register_from_env() {
    let mut secrets: Vec<String> = SECRET_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .collect();
    if let Ok(url) = std::env::var("AMQP_URL") {
        secrets.extend(url_password(&url));
    }
    register(secrets);
}

/// The password of an AMQP URL, as written and percent-decoded.
pub fn url_password(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let Some((userinfo, _)) = rest.rsplit_once('@') else {
        return Vec::new();
    };
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => {
            let decoded = percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned();
            vec![password.to_string(), decoded]
        }
        _ => Vec::new(),
    }
}

/// A log writer that masks the registered secrets in every line it writes.
pub struct RedactingWriter<W>(pub W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let redactor = global();
        if redactor.is_empty() {
            return self.0.write(buf);
        }
        // A formatted event arrives in one write, so no secret spans two calls.
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redactor.redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_form_and_the_longest_first() {
        let r = Redactor::new(["s3cr&t\"x", "tok"]);
        assert_eq!(r.redact("a s3cr&t\"x b"), "a *** b");
        assert_eq!(r.redact("<T>s3cr&amp;t&quot;x</T>"), "<T>***</T>");
        assert_eq!(r.redact(r#"{"m":"s3cr&t\"x"}"#), r#"{"m":"***"}"#);
        assert_eq!(r.redact("u=s3cr%26t%22x"), "u=***");
        assert_eq!(r.redact("token tok"), "***en ***");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        let nested = Redactor::new(["abc", "abcdef"]);
        assert_eq!(nested.redact("abcdef abc"), "*** ***");
    }

    #[test]
    fn masks_json_strings_and_keys() {
        let r = Redactor::new(["hunter2"]);
        let mut v = serde_json::json!({"error": "bad hunter2", "hunter2": [1, "xhunter2x"]});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"error": "bad ***", "***": [1, "x***x"]})
        );
    }

    #[test]
    fn finds_secrets_by_key() {
        let v = serde_json::json!({"data": {"account": {"Password": "p1"}, "identifier": [{"portal_login": "l1"}], "token": 5, "name": "n"}});
        assert_eq!(json_secrets(&v), vec!["p1".to_string(), "l1".to_string()]);
        let mut masked = v.clone();
        mask_secret_fields(&mut masked);
        assert_eq!(masked["data"]["account"]["Password"], MASK);
        assert_eq!(masked["data"]["identifier"][0]["portal_login"], MASK);
        assert_eq!(masked["data"]["token"], 5);
        assert!(json_secrets(&masked).iter().all(|s| s == MASK));
    }

    #[test]
    fn empty_secrets_mask_nothing() {
        let r = Redactor::new([""]);
        assert!(r.is_empty());
        assert_eq!(r.redact("text"), "text");
    }

    #[test]
    fn amqp_url_passwords() {
        assert_eq!(
            url_password("amqp://guest:p%40ss@127.0.0.1:5672/%2f"),
            vec!["p%40ss".to_string(), "p@ss".to_string()]
        );
        assert!(url_password("amqp://127.0.0.1").is_empty());
    }

    #[test]
    fn the_log_writer_masks_registered_secrets() {
        register(["writer-secret-1"]);
        let mut out = RedactingWriter(Vec::new());
        out.write_all(b"token=writer-secret-1 end").unwrap();
        assert_eq!(out.0, b"token=*** end");
    }
}
