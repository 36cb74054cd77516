//! The naming rules of environments and secrets, and the limits on values. Pure functions, so
//! the server, the CLI and the fuzz targets apply exactly the same rules.

use std::fmt;

/// Secrets may not use this prefix: the agent sets `RUNSEAL_*` platform variables itself.
pub const RESERVED_PREFIX: &str = "RUNSEAL_";

/// Names the dynamic loader reads: a secret must never be able to inject code into the app.
pub const LOADER_PREFIX: &str = "LD_";

/// Other variables that make a program load or run attacker-chosen code; refused by default.
/// `denied_names` in the runseald config replaces this list (the two prefixes always apply).
pub const DEFAULT_DENIED_NAMES: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "GCONV_PATH",
    "DYLD_INSERT_LIBRARIES",
    "DYLD_LIBRARY_PATH",
];

/// Why a name or value was refused. The message names the rule and never includes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("invalid environment name {0:?}: use 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit")]
    EnvironmentName(String),
    #[error("invalid secret name {0:?}: use 1 to 256 characters A-Z, a-z, 0-9 and '_', not starting with a digit")]
    SecretName(String),
    #[error("secret name {0:?} is reserved: the prefix RUNSEAL_ belongs to the platform variables the agent sets")]
    ReservedName(String),
    #[error("secret name {0:?} is refused: LD_* variables and {1} would let a secret change how the app's programs are loaded")]
    DeniedName(String, String),
    #[error("value of secret {0:?} contains a NUL byte: environment values cannot hold NUL")]
    NulInValue(String),
    #[error("value of secret {name:?} is {len} bytes: the limit is {max} bytes per value")]
    ValueTooLarge {
        name: String,
        len: usize,
        max: usize,
    },
    #[error(
        "secret {0:?} appears more than once in the request: each name may be set once per call"
    )]
    DuplicateName(String),
    #[error("no secrets given: set at least one NAME=VALUE")]
    EmptyBatch,
}

/// Limits per value and per environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_value_bytes: usize,
    pub max_environment_bytes: usize,
    pub max_secrets_per_environment: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024,
            max_environment_bytes: 1024 * 1024,
            max_secrets_per_environment: 1000,
        }
    }
}

/// The rules a secret name is checked against (the configurable part is the deny list).
#[derive(Clone, PartialEq, Eq)]
pub struct NamePolicy {
    denied: Vec<String>,
}

impl Default for NamePolicy {
    fn default() -> Self {
        Self::new(DEFAULT_DENIED_NAMES.iter().map(|s| s.to_string()).collect())
    }
}

impl fmt::Debug for NamePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamePolicy")
            .field("denied", &self.denied)
            .finish()
    }
}

impl NamePolicy {
    pub fn new(denied: Vec<String>) -> Self {
        Self { denied }
    }

    /// Checks a secret name: syntax, the reserved prefix, loader names and the deny list.
    pub fn check_secret_name(&self, name: &str) -> Result<(), InvalidInput> {
        check_secret_name_syntax(name)?;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(InvalidInput::ReservedName(name.to_string()));
        }
        if name.starts_with(LOADER_PREFIX) || self.denied.iter().any(|d| d == name) {
            let others = if self.denied.is_empty() {
                "no other names".to_string()
            } else {
                self.denied.join(", ")
            };
            return Err(InvalidInput::DeniedName(name.to_string(), others));
        }
        Ok(())
    }
}

/// Only the syntax of a secret name (for names that are looked up, not stored).
pub fn check_secret_name_syntax(name: &str) -> Result<(), InvalidInput> {
    if is_valid_secret_name(name) {
        Ok(())
    } else {
        Err(InvalidInput::SecretName(truncate_for_message(name)))
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,255}$`
pub fn is_valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`
pub fn is_valid_environment_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn check_environment_name(name: &str) -> Result<(), InvalidInput> {
    if is_valid_environment_name(name) {
        Ok(())
    } else {
        Err(InvalidInput::EnvironmentName(truncate_for_message(name)))
    }
}

/// Checks one value against the per-value rules. The value itself never enters the error.
pub fn check_value(name: &str, value: &[u8], limits: &Limits) -> Result<(), InvalidInput> {
    if value.len() > limits.max_value_bytes {
        return Err(InvalidInput::ValueTooLarge {
            name: name.to_string(),
            len: value.len(),
            max: limits.max_value_bytes,
        });
    }
    if value.contains(&0) {
        return Err(InvalidInput::NulInValue(name.to_string()));
    }
    Ok(())
}

/// Invalid names can be arbitrarily long, and a name with '=' is likely `NAME=VALUE` typed where
/// a name belongs: a message shows at most 80 characters, and nothing after an '='.
fn truncate_for_message(s: &str) -> String {
    if let Some((name, _)) = s.split_once('=') {
        return format!("{}=…", truncate_for_message(name));
    }
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for ok in ["A", "_", "HF_TOKEN", "a1_b2", &"X".repeat(256)] {
            assert!(is_valid_secret_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "A=B", &"X".repeat(257)] {
            assert!(!is_valid_secret_name(bad), "{bad}");
        }
    }

    #[test]
    fn environment_names() {
        for ok in ["main", "staging", "0", "a-b-c", &"a".repeat(63)] {
            assert!(is_valid_environment_name(ok), "{ok}");
        }
        for bad in ["", "-a", "Main", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_valid_environment_name(bad), "{bad}");
        }
    }

    #[test]
    fn policy_refuses_reserved_and_loader_names() {
        let p = NamePolicy::default();
        assert!(matches!(
            p.check_secret_name("RUNSEAL_X"),
            Err(InvalidInput::ReservedName(_))
        ));
        assert!(matches!(
            p.check_secret_name("LD_PRELOAD"),
            Err(InvalidInput::DeniedName(..))
        ));
        assert!(matches!(
            p.check_secret_name("BASH_ENV"),
            Err(InvalidInput::DeniedName(..))
        ));
        assert!(p.check_secret_name("HF_TOKEN").is_ok());
        let custom = NamePolicy::new(vec!["NODE_OPTIONS".into()]);
        assert!(custom.check_secret_name("BASH_ENV").is_ok());
        assert!(custom.check_secret_name("NODE_OPTIONS").is_err());
    }

    #[test]
    fn a_value_typed_where_a_name_belongs_is_not_echoed() {
        let err = NamePolicy::default()
            .check_secret_name("TOKEN=hunter2")
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("TOKEN=…"), "{err}");
    }

    #[test]
    fn value_errors_never_contain_the_value() {
        let limits = Limits {
            max_value_bytes: 8,
            ..Limits::default()
        };
        let err = check_value("K", b"supersecretvalue", &limits).unwrap_err();
        assert!(!err.to_string().contains("supersecret"));
        let err = check_value("K", b"a\0b", &Limits::default()).unwrap_err();
        assert_eq!(err, InvalidInput::NulInValue("K".into()));
    }
}
