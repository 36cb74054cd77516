//! The naming rules of environments and secrets, and the limits on values. Pure functions, so
//! the server, the CLI and the fuzz targets apply exactly the same rules.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Secrets may not use this prefix: the agent sets `RUNSEAL_*` platform variables itself.
pub const RESERVED_PREFIX: &str = "RUNSEAL_";

/// Names the dynamic loader reads: a secret must never be able to inject code into the app.
/// Always refused, whatever the configuration says.
pub const LOADER_PREFIX: &str = "LD_";

/// One family of variables refused by default, with the reason a user is shown.
#[derive(Debug, Clone, Copy)]
pub struct DeniedFamily {
    pub family: &'static str,
    pub reason: &'static str,
    /// Names refused exactly as written (environment names are case-sensitive, so proxies are
    /// listed in both the upper- and the lower-case spelling programs read).
    pub names: &'static [&'static str],
    /// Narrow prefixes: every name starting with one is refused.
    pub prefixes: &'static [&'static str],
}

/// The default denied set: variables that make a runtime, an interpreter, the dynamic loader, a
/// TLS stack or a shell load code or files chosen by whoever sets them, or send traffic
/// elsewhere. A `write:ENV` key must not be a way to run code in every runner of ENV.
/// `extra_denied_names` in the runseald config adds to it, `allowed_names` lifts single names.
pub const DENIED_FAMILIES: &[DeniedFamily] = &[
    DeniedFamily {
        family: "dynamic loader and C library",
        reason: "the dynamic loader and glibc read it to load libraries, modules, locale or resolver files",
        names: &[
            "GLIBC_TUNABLES",
            "GCONV_PATH",
            "GETCONF_DIR",
            "HOSTALIASES",
            "LOCALDOMAIN",
            "LOCPATH",
            "NLSPATH",
            "NIS_PATH",
            "RES_OPTIONS",
            "TMPDIR",
            "TZDIR",
        ],
        prefixes: &["LD_", "DYLD_", "MALLOC_", "RESOLV_"],
    },
    DeniedFamily {
        family: "shells",
        reason: "a shell runs or sources code named by it",
        names: &[
            "BASH_ENV",
            "ENV",
            "SHELLOPTS",
            "BASHOPTS",
            "PS0",
            "PS1",
            "PS2",
            "PS3",
            "PS4",
            "PROMPT_COMMAND",
            "IFS",
            "CDPATH",
            "GLOBIGNORE",
            "EXECIGNORE",
            "BASH_XTRACEFD",
            "BASH_LOADABLES_PATH",
            "BASH_COMPAT",
            "FPATH",
            "ZDOTDIR",
            "INPUTRC",
            "HISTFILE",
        ],
        prefixes: &["BASH_FUNC_"],
    },
    DeniedFamily {
        family: "program search and configuration files",
        reason: "it decides which programs run or where programs find their configuration",
        names: &[
            "PATH",
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_CONFIG_DIRS",
            "EDITOR",
            "VISUAL",
            "PAGER",
            "MANPAGER",
            "LESSOPEN",
            "LESSCLOSE",
            "BROWSER",
            "SSH_ASKPASS",
            "SSH_AUTH_SOCK",
            "TERMINFO",
            "TERMINFO_DIRS",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "Python",
        reason: "the Python interpreter imports or runs code named by it",
        names: &[
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONHOME",
            "PYTHONINSPECT",
            "PYTHONBREAKPOINT",
            "PYTHONUSERBASE",
            "PYTHONEXECUTABLE",
            "PYTHONWARNINGS",
            "PYTHONPLATLIBDIR",
            "PYTHONPYCACHEPREFIX",
            "PYTHONCASEOK",
            "PIP_CONFIG_FILE",
            "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL",
            "PIP_TRUSTED_HOST",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "Node.js and npm",
        reason: "Node.js or npm loads code, modules, certificates or settings named by it",
        names: &[
            "NODE_OPTIONS",
            "NODE_PATH",
            "NODE_EXTRA_CA_CERTS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "NODE_ICU_DATA",
            "NODE_REDIRECT_WARNINGS",
            "NODE_V8_COVERAGE",
            "NODE_COMPILE_CACHE",
            "NODE_REPL_EXTERNAL_MODULE",
            "NODE_REPL_HISTORY",
            "NODE_USE_ENV_PROXY",
            "DENO_CERT",
            "DENO_DIR",
        ],
        prefixes: &["NPM_CONFIG_", "npm_config_"],
    },
    DeniedFamily {
        family: "Perl",
        reason: "perl loads modules or runs code named by it",
        names: &[
            "PERL5OPT",
            "PERL5LIB",
            "PERLLIB",
            "PERL5DB",
            "PERLDB_OPTS",
            "PERL5SHELL",
            "PERL_MB_OPT",
            "PERL_MM_OPT",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "Ruby",
        reason: "ruby or bundler loads code named by it",
        names: &[
            "RUBYOPT",
            "RUBYLIB",
            "RUBYPATH",
            "RUBYSHELL",
            "GEM_HOME",
            "GEM_PATH",
            "BUNDLE_GEMFILE",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "JVM",
        reason: "the JVM (or the scripts that start it) takes options, agents or classes from it",
        names: &[
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "CLASSPATH",
            "JAVA_OPTS",
            "JAVA_HOME",
            "MAVEN_OPTS",
            "GRADLE_OPTS",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "Go",
        reason: "the go tool or the Go runtime takes flags, toolchains, module sources or TLS settings from it",
        names: &[
            "GOFLAGS",
            "GODEBUG",
            "GOROOT",
            "GOPATH",
            "GOENV",
            "GOTOOLCHAIN",
            "GOPROXY",
            "GONOPROXY",
            "GOSUMDB",
            "GONOSUMDB",
            "GONOSUMCHECK",
            "GOINSECURE",
            "GOPRIVATE",
            "GOEXPERIMENT",
        ],
        prefixes: &["CGO_"],
    },
    DeniedFamily {
        family: "Rust and C toolchains",
        reason: "a build runs the compiler, wrapper or flags named by it",
        names: &[
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
            "CARGO_HOME",
            "CARGO_BUILD_RUSTC",
            "CARGO_BUILD_RUSTC_WRAPPER",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CC",
            "CXX",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "other interpreters and runtimes",
        reason: "an interpreter or runtime loads code or libraries named by it",
        names: &[
            "LUA_INIT",
            "PHPRC",
            "PHP_INI_SCAN_DIR",
            "R_PROFILE",
            "R_PROFILE_USER",
            "R_ENVIRON",
            "R_ENVIRON_USER",
            "R_LIBS",
            "R_LIBS_USER",
            "TCLLIBPATH",
            "ERL_AFLAGS",
            "ERL_FLAGS",
            "ERL_ZFLAGS",
            "ERL_LIBS",
            "ELIXIR_ERL_OPTIONS",
            "DOTNET_STARTUP_HOOKS",
            "DOTNET_ADDITIONAL_DEPS",
            "DOTNET_SHARED_STORE",
        ],
        prefixes: &["LUA_PATH", "LUA_CPATH", "LUA_INIT_", "CORECLR_", "COMPlus_"],
    },
    DeniedFamily {
        family: "git",
        reason: "git runs commands or reads configuration named by it",
        names: &[
            "GIT_CONFIG",
            "GIT_EXEC_PATH",
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_ASKPASS",
            "GIT_PROXY_COMMAND",
            "GIT_EXTERNAL_DIFF",
            "GIT_PAGER",
            "GIT_EDITOR",
            "GIT_SEQUENCE_EDITOR",
            "GIT_TEMPLATE_DIR",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_SSL_CAINFO",
            "GIT_SSL_CAPATH",
            "GIT_SSL_NO_VERIFY",
        ],
        prefixes: &["GIT_CONFIG_"],
    },
    DeniedFamily {
        family: "TLS and library plugins",
        reason: "a TLS stack or library trusts certificates, loads modules or writes session keys named by it",
        names: &[
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "SSLKEYLOGFILE",
            "OPENSSL_CONF",
            "OPENSSL_MODULES",
            "OPENSSL_ENGINES",
            "CURL_CA_BUNDLE",
            "CURL_HOME",
            "REQUESTS_CA_BUNDLE",
            "AWS_CA_BUNDLE",
            "NIX_SSL_CERT_FILE",
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
            "PIP_CERT",
            "CARGO_HTTP_CAINFO",
            "GNUTLS_SYSTEM_PRIORITY_FILE",
            "WGETRC",
            "SASL_PATH",
            "KRB5_CONFIG",
            "ODBCINI",
            "ODBCSYSINI",
            "GIO_EXTRA_MODULES",
            "GIO_MODULE_DIR",
            "GTK_PATH",
            "GTK_MODULES",
            "QT_PLUGIN_PATH",
            "QT_QPA_PLATFORM_PLUGIN_PATH",
        ],
        prefixes: &[],
    },
    DeniedFamily {
        family: "proxies",
        reason: "programs send their traffic through the proxy it names",
        names: &[
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "FTP_PROXY",
            "ftp_proxy",
            "SOCKS_PROXY",
            "socks_proxy",
            "SOCKS5_SERVER",
            "WS_PROXY",
            "ws_proxy",
            "WSS_PROXY",
            "wss_proxy",
            "GRPC_PROXY",
            "grpc_proxy",
            "NO_GRPC_PROXY",
            "no_grpc_proxy",
            "RSYNC_PROXY",
        ],
        prefixes: &[],
    },
];

/// Every exactly-named entry of [`DENIED_FAMILIES`], with the index of its family. runseald
/// checks each secret of every snapshot against the set: a scan of the lists took an eighth of
/// its instructions per GetSnapshot.
static DENIED_NAMES: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    let mut names = HashMap::new();
    for (i, f) in DENIED_FAMILIES.iter().enumerate() {
        for n in f.names {
            names.entry(*n).or_insert(i);
        }
    }
    names
});

/// The family of the default denied set a name belongs to, if any: the first family that lists
/// it or one of its prefixes.
pub fn default_denied_family(name: &str) -> Option<&'static DeniedFamily> {
    let by_name = DENIED_NAMES.get(name).copied();
    let by_prefix = DENIED_FAMILIES
        .iter()
        .position(|f| f.prefixes.iter().any(|p| name.starts_with(p)));
    let first = match (by_name, by_prefix) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    DENIED_FAMILIES.get(first)
}

/// Why a name or value was refused. The message names the rule and never includes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("invalid environment name {0:?}: use 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit")]
    EnvironmentName(String),
    #[error("invalid secret name {0:?}: use 1 to 256 characters A-Z, a-z, 0-9 and '_', not starting with a digit")]
    SecretName(String),
    #[error("secret name {0:?} is reserved: the prefix RUNSEAL_ belongs to the platform variables the agent sets")]
    ReservedName(String),
    #[error("secret name {0:?} is refused: {1}")]
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
    /// How many versions of each secret are kept, the current one included.
    pub versions_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024,
            max_environment_bytes: 1024 * 1024,
            max_secrets_per_environment: 1000,
            versions_kept: 10,
        }
    }
}

/// The rules a secret name is checked against: the default denied set (or the list that
/// replaced it), the operator's extra denied names and the names allowed on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamePolicy {
    /// `Some` when `denied_names` replaced the default families.
    replaced: Option<Vec<String>>,
    extra: Vec<String>,
    allowed: Vec<String>,
}

const ALLOW_HINT: &str = "add it to allowed_names in runseald's config to allow it on purpose";

impl NamePolicy {
    /// A policy whose deny list replaces the default families (`denied_names`); `LD_*` and
    /// `RUNSEAL_*` still apply.
    pub fn new(denied: Vec<String>) -> Self {
        Self {
            replaced: Some(denied),
            ..Self::default()
        }
    }

    /// Adds names to the deny list (`extra_denied_names`).
    pub fn with_extra_denied(mut self, names: Vec<String>) -> Self {
        self.extra.extend(names);
        self
    }

    /// Allows these names although the default set denies them (`allowed_names`). `LD_*` and
    /// `RUNSEAL_*` cannot be allowed.
    pub fn with_allowed(mut self, names: Vec<String>) -> Self {
        self.allowed.extend(names);
        self
    }

    /// Whether `denied_names` replaced the default families.
    pub fn replaces_defaults(&self) -> bool {
        self.replaced.is_some()
    }

    /// Why a (syntactically valid) name is refused, or `None` when it may be a secret.
    pub fn denied(&self, name: &str) -> Option<String> {
        if name.starts_with(RESERVED_PREFIX) {
            return Some(
                "the prefix RUNSEAL_ belongs to the platform variables the agent sets".into(),
            );
        }
        if name.starts_with(LOADER_PREFIX) {
            return Some(
                "LD_* variables change how the dynamic loader loads the app's programs".into(),
            );
        }
        if self.extra.iter().any(|n| n == name) {
            return Some("it is in extra_denied_names in runseald's config".into());
        }
        if self.allowed.iter().any(|n| n == name) {
            return None;
        }
        match &self.replaced {
            Some(list) => list
                .iter()
                .any(|n| n == name)
                .then(|| format!("it is in denied_names in runseald's config; {ALLOW_HINT}")),
            None => default_denied_family(name)
                .map(|f| format!("{} ({}); {ALLOW_HINT}", f.reason, f.family)),
        }
    }

    /// Checks a secret name: syntax, the reserved prefix, loader names and the deny list.
    pub fn check_secret_name(&self, name: &str) -> Result<(), InvalidInput> {
        check_secret_name_syntax(name)?;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(InvalidInput::ReservedName(name.to_string()));
        }
        match self.denied(name) {
            Some(reason) => Err(InvalidInput::DeniedName(name.to_string(), reason)),
            None => Ok(()),
        }
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
    fn default_set_covers_the_reviewed_names_and_spares_common_ones() {
        let p = NamePolicy::default();
        for denied in [
            "PERL5OPT",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "GLIBC_TUNABLES",
            "JAVA_TOOL_OPTIONS",
            "RUBYOPT",
            "PATH",
            "SSL_CERT_FILE",
            "HTTPS_PROXY",
            "https_proxy",
            "SSLKEYLOGFILE",
            "SHELLOPTS",
            "PS4",
            "BASH_FUNC_ls%%",
            "MALLOC_TRACE",
            "DYLD_INSERT_LIBRARIES",
            "GIT_CONFIG_KEY_0",
            "npm_config_script_shell",
            "LUA_PATH_5_4",
        ] {
            assert!(p.denied(denied).is_some(), "{denied} should be denied");
        }
        for allowed in [
            "NODE_ENV",
            "PYTHONUNBUFFERED",
            "HF_TOKEN",
            "DATABASE_URL",
            "GIT_TOKEN",
            "NPM_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "PGPASSWORD",
            "GITHUB_TOKEN",
            "CARGO_REGISTRIES_MY_TOKEN",
        ] {
            assert_eq!(p.denied(allowed), None, "{allowed} should be allowed");
        }
        // Every listed name could be a secret name: an entry that cannot be stored is a typo.
        for f in DENIED_FAMILIES {
            for n in f.names {
                assert!(is_valid_secret_name(n), "{n} in {}", f.family);
            }
        }
    }

    #[test]
    fn the_name_index_answers_as_a_scan_of_the_lists_would() {
        let scan = |name: &str| {
            DENIED_FAMILIES.iter().position(|f| {
                f.names.contains(&name) || f.prefixes.iter().any(|p| name.starts_with(p))
            })
        };
        let mut names: Vec<String> = DENIED_FAMILIES
            .iter()
            .flat_map(|f| f.names.iter().map(|n| n.to_string()))
            .collect();
        names.extend(
            DENIED_FAMILIES
                .iter()
                .flat_map(|f| f.prefixes.iter().map(|p| format!("{p}X"))),
        );
        names.extend(["HF_TOKEN", "NODE_ENV", "A", "PATHX", "XPATH"].map(String::from));
        for n in &names {
            let got = default_denied_family(n).map(|f| f.family);
            let want = scan(n).map(|i| DENIED_FAMILIES[i].family);
            assert_eq!(got, want, "{n}");
        }
    }

    #[test]
    fn extra_and_allowed_names() {
        let p = NamePolicy::default()
            .with_extra_denied(vec!["MY_HOOK".into()])
            .with_allowed(vec!["HTTPS_PROXY".into(), "LD_PRELOAD".into()]);
        assert!(p.check_secret_name("MY_HOOK").is_err());
        assert!(p.check_secret_name("HTTPS_PROXY").is_ok());
        assert!(p.check_secret_name("https_proxy").is_err());
        assert!(
            p.check_secret_name("LD_PRELOAD").is_err(),
            "LD_* is never allowed"
        );
        let err = NamePolicy::default()
            .check_secret_name("NODE_OPTIONS")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("NODE_OPTIONS") && err.contains("allowed_names"),
            "{err}"
        );
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
