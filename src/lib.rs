//! runseal: secrets stored sealed per environment, injected into runners as environment
//! variables at the moment each runner starts.
//!
//! The library holds all the logic; the binaries in `src/bin/` only parse arguments and call
//! into [`daemon`] (runseald), [`cli`] (runseal) and [`agent`] (runseal-agent). Unsafe code is
//! denied everywhere; the one exception is `exec::sys` (signal dispositions and inherited
//! descriptors before exec).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod agent;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod datadir;
pub mod defaults;
pub mod dotenv;
pub mod duration;
pub mod exec;
pub mod file_mode;
#[cfg(test)]
mod fn_length;
pub mod grpc;
pub mod integrity;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod names;
pub mod proto;
pub mod records;
pub mod seal;
pub mod secret;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod time_fmt;
pub mod tls;
pub mod web;

/// The environment every installation has and that cannot be deleted.
pub const MAIN_ENV: &str = "main";
