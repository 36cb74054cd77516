//! runseal: secrets stored sealed per environment, injected into runners as environment
//! variables at the moment each runner starts.
//!
//! The library holds all the logic; the binaries in `src/bin/` only parse arguments and call
//! into [`daemon`] (runseald), [`cli`] (runseal) and [`agent`] (runseal-agent). Unsafe code is
//! denied everywhere; the one exception is `agent::sys` (signal dispositions and inherited
//! descriptors before exec).
#![deny(unsafe_code)]

pub mod agent;
pub mod auth;
pub mod build;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod datadir;
pub mod duration;
pub mod file_mode;
pub mod integrity;
pub mod metrics;
pub mod names;
pub mod proto;
pub mod records;
pub mod seal;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod time_fmt;
pub mod tls;

/// The environment every installation has and that cannot be deleted.
pub const MAIN_ENV: &str = "main";
