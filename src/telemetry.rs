//! Logging through `tracing` on stderr; the filter comes from `RUNSEAL_LOG` (default `info`).
//! Nothing in runseal logs a value or a credential, at any level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env("RUNSEAL_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The agent's logging: the same stderr output, with `RUNSEAL_LOG` read as a list of
/// `target=level` directives or a bare level (`debug`, `runseal=debug`), the subset of the
/// server's syntax that needs no regular expressions. Every runner start loads the agent, and
/// the full filter's regex engine was a twentieth of its code (`docs/bench/NOTES.md`). An
/// unreadable `RUNSEAL_LOG` falls back to `default_level` with a warning.
///
/// Without `RUNSEAL_LOG` no subscriber is installed at all: the agent's own code logs only at
/// debug level (its failures are the one line `AgentError::report` prints), so the default
/// filter could only ever pass a library's warning, and setting up the registry cost every start
/// about a tenth of its own CPU (`docs/bench/NOTES.md`, third round).
pub fn init_agent(default_level: tracing::Level) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;

    let fallback = Targets::new().with_default(default_level);
    let (filter, bad) = match std::env::var("RUNSEAL_LOG") {
        Ok(v) if !v.trim().is_empty() => match v.parse::<Targets>() {
            Ok(t) => (t, false),
            Err(_) => (fallback, true),
        },
        _ => return,
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    if bad {
        tracing::warn!(
            "RUNSEAL_LOG is not a list of TARGET=LEVEL directives or a level; using {default_level}"
        );
    }
}
