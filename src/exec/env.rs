//! The child's environment, built as a value (the agent never mutates its own environment):
//! the inherited variables minus every `RUNSEAL_*` (the credential and the agent's settings),
//! plus the secrets, plus the platform variables. Each entry is a NUL-terminated
//! `NAME=VALUE` in a zeroizing buffer, handed to `execve` as is.

use std::ffi::{CStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStringExt;

use zeroize::Zeroizing;

use crate::names::RESERVED_PREFIX;
use crate::secret::SecretBytes;

pub const ENV_ENVIRONMENT: &str = "RUNSEAL_ENVIRONMENT";
pub const ENV_REVISION: &str = "RUNSEAL_SNAPSHOT_REVISION";
pub const ENV_RUNNER_ID: &str = "RUNSEAL_RUNNER_ID";

/// One `NAME=VALUE\0`, zeroized on drop.
pub struct EnvEntry {
    buf: Zeroizing<Vec<u8>>,
    name_len: usize,
}

impl EnvEntry {
    fn new(name: &[u8], value: &[u8]) -> Self {
        let mut buf = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
        buf.extend_from_slice(name);
        buf.push(b'=');
        buf.extend_from_slice(value);
        buf.push(0);
        Self {
            buf,
            name_len: name.len(),
        }
    }

    pub fn name(&self) -> &[u8] {
        &self.buf[..self.name_len]
    }
}

impl AsRef<CStr> for EnvEntry {
    fn as_ref(&self) -> &CStr {
        // Entries end in their one NUL ([`EnvEntry::new`] is given no interior NUL).
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

impl fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=[redacted]", String::from_utf8_lossy(self.name()))
    }
}

/// What the app gets besides its secrets.
#[derive(Debug, Clone)]
pub struct Platform {
    pub environment: String,
    pub revision: u64,
    pub runner_id: String,
}

/// The app's environment. Names that were overridden by a secret are reported (names only).
pub struct ChildEnv {
    pub entries: Vec<EnvEntry>,
    pub overridden: Vec<String>,
}

impl fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildEnv")
            .field("entries", &self.entries.len())
            .field("overridden", &self.overridden)
            .finish()
    }
}

/// Where an entry came from; of several entries with one name, the highest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Inherited,
    Secret,
    Platform,
}

/// Builds the child environment, sorted by name. Inherited entries with a NUL or without a name
/// are dropped (they cannot come from a real environment block); secrets never hold NUL (the
/// server refuses them), and one that somehow does is skipped rather than truncated.
///
/// One vector, sorted once and deduplicated, rather than a map keyed by copies of the names: at
/// 500 secrets the map's inserts were a fifth of the agent's user-space instructions.
pub fn build(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    secrets: &[(String, SecretBytes)],
    platform: &Platform,
) -> ChildEnv {
    let mut all: Vec<(Source, EnvEntry)> = Vec::with_capacity(secrets.len() + 64);
    for (name, value) in inherited {
        let name = name.into_vec();
        let value = Zeroizing::new(value.into_vec());
        if name.is_empty()
            || name.contains(&b'=')
            || name.contains(&0)
            || value.contains(&0)
            || name.starts_with(RESERVED_PREFIX.as_bytes())
        {
            continue;
        }
        all.push((Source::Inherited, EnvEntry::new(&name, &value)));
    }
    for (name, value) in secrets {
        if name.is_empty()
            || name.contains(['=', '\0'])
            || name.starts_with(RESERVED_PREFIX)
            || value.expose().contains(&0)
        {
            continue;
        }
        let entry = EnvEntry::new(name.as_bytes(), value.expose());
        all.push((Source::Secret, entry));
    }
    let revision = platform.revision.to_string();
    for (name, value) in [
        (ENV_ENVIRONMENT, platform.environment.as_str()),
        (ENV_REVISION, revision.as_str()),
        (ENV_RUNNER_ID, platform.runner_id.as_str()),
    ] {
        let entry = EnvEntry::new(name.as_bytes(), value.as_bytes());
        all.push((Source::Platform, entry));
    }
    // Stable: of equal names and sources, the later entry stays last and wins.
    all.sort_by(|(a_src, a), (b_src, b)| a.name().cmp(b.name()).then(a_src.cmp(b_src)));
    let mut entries: Vec<EnvEntry> = Vec::with_capacity(all.len());
    let mut overridden = Vec::new();
    for (source, entry) in all {
        if entries
            .last()
            .is_some_and(|last| last.name() == entry.name())
        {
            if source == Source::Secret {
                overridden.push(String::from_utf8_lossy(entry.name()).into_owned());
            }
            entries.pop();
        }
        entries.push(entry);
    }
    ChildEnv {
        entries,
        overridden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        Platform {
            environment: "staging".into(),
            revision: 7,
            runner_id: "r-1".into(),
        }
    }

    fn as_strings(env: &ChildEnv) -> Vec<String> {
        env.entries
            .iter()
            .map(|e| e.as_ref().to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn strips_runseal_variables_and_adds_platform_ones() {
        let inherited = vec![
            ("PATH".into(), "/bin".into()),
            ("RUNSEAL_TOKEN".into(), "rt_x:y".into()),
            ("RUNSEAL_ADDR".into(), "http://x".into()),
            ("RUNSEAL_SNAPSHOT_REVISION".into(), "999".into()),
        ];
        let secrets = vec![("API_KEY".to_string(), SecretBytes::new(b"v1".to_vec()))];
        let env = build(inherited, &secrets, &platform());
        let got = as_strings(&env);
        assert_eq!(
            got,
            [
                "API_KEY=v1",
                "PATH=/bin",
                "RUNSEAL_ENVIRONMENT=staging",
                "RUNSEAL_RUNNER_ID=r-1",
                "RUNSEAL_SNAPSHOT_REVISION=7",
            ]
        );
    }

    #[test]
    fn a_secret_overrides_an_inherited_variable_and_is_reported_by_name() {
        let inherited = vec![("DB_URL".into(), "sqlite://local".into())];
        let secrets = vec![("DB_URL".to_string(), SecretBytes::new(b"pg://x".to_vec()))];
        let env = build(inherited, &secrets, &platform());
        assert!(as_strings(&env).contains(&"DB_URL=pg://x".to_string()));
        assert_eq!(env.overridden, ["DB_URL"]);
        assert!(!format!("{env:?}").contains("pg://x"));
    }

    #[test]
    fn each_name_appears_once_in_name_order_and_the_last_secret_wins() {
        let inherited = vec![
            ("ZED".into(), "inherited".into()),
            ("B".into(), "inherited".into()),
            ("AB".into(), "kept".into()),
        ];
        let secrets = vec![
            ("B".to_string(), SecretBytes::new(b"first".to_vec())),
            ("A".to_string(), SecretBytes::new(b"a".to_vec())),
            ("B".to_string(), SecretBytes::new(b"second".to_vec())),
            ("ZED".to_string(), SecretBytes::new(b"z".to_vec())),
        ];
        let env = build(inherited, &secrets, &platform());
        let got = as_strings(&env);
        assert_eq!(
            got,
            [
                "A=a",
                "AB=kept",
                "B=second",
                "RUNSEAL_ENVIRONMENT=staging",
                "RUNSEAL_RUNNER_ID=r-1",
                "RUNSEAL_SNAPSHOT_REVISION=7",
                "ZED=z",
            ]
        );
        assert_eq!(env.overridden, ["B", "B", "ZED"]);
    }

    #[test]
    fn values_with_equals_signs_and_empty_values_survive() {
        let secrets = vec![
            ("A".to_string(), SecretBytes::new(b"x=y==".to_vec())),
            ("B".to_string(), SecretBytes::new(Vec::new())),
        ];
        let env = build(Vec::new(), &secrets, &platform());
        let got = as_strings(&env);
        assert!(got.contains(&"A=x=y==".to_string()));
        assert!(got.contains(&"B=".to_string()));
    }

    #[test]
    fn entries_print_their_name_only() {
        let shown = format!("{:?}", EnvEntry::new(b"K", b"secret"));
        assert_eq!(shown, "K=[redacted]");
    }
}
