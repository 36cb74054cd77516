//! `runseal secrets history|rollback|purge|copy`, `runseal env diff` and `runseal watch`: the
//! life of a secret, over [`crate::client::LifecycleApi`]. None of them prints a value.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::{fail, io, print_json, table, CliError, Output};
use crate::client::Client;
use crate::time_fmt::rfc3339;
use crate::MAIN_ENV;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The secret whose kept versions to list (never their values).
    pub name: String,
    /// The environment of the secret.
    #[arg(long, default_value = MAIN_ENV)]
    pub env: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The secret to roll back.
    pub name: String,
    /// The kept version to make current again (see `runseal secrets history NAME`).
    #[arg(long, value_name = "VERSION")]
    pub to: u64,
    /// The environment of the secret.
    #[arg(long, default_value = MAIN_ENV)]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The secret to purge.
    pub name: String,
    /// Destroy only this kept version (not the current one); without it, every version and the
    /// current value are destroyed.
    #[arg(long)]
    pub version: Option<u64>,
    /// The environment of the secret.
    #[arg(long, default_value = MAIN_ENV)]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The secrets to copy.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// The environment to copy from (needs snapshot:FROM).
    #[arg(long)]
    pub from: String,
    /// The environment to copy to (needs write:TO).
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first environment.
    pub a: String,
    /// The second environment.
    pub b: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// An environment to watch (repeatable), optionally resumed after a revision:
    /// `ENV` or `ENV@REVISION`. Without it: every environment the key may read.
    #[arg(long = "env", value_name = "ENV[@REVISION]")]
    pub envs: Vec<String>,
    /// Output format: one line per change, flushed at once.
    #[arg(long, value_enum, default_value = "pretty")]
    pub output: Output,
}

pub(super) async fn history(
    client: &Client,
    a: HistoryArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let versions = client.lifecycle().history(&a.name, &a.env).await?;
    match a.output {
        Output::Json => print_json(
            out,
            json!({
                "name": a.name,
                "environment": a.env,
                "versions": versions.iter().map(|v| json!({
                    "version": v.version,
                    "created_at": rfc3339(v.created_at.as_ref()),
                    "created_by": v.created_by,
                    "current": v.current,
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Pretty => table(
            out,
            &["Version", "Created At", "By", "Current"],
            &versions
                .iter()
                .map(|v| {
                    vec![
                        v.version.to_string(),
                        rfc3339(v.created_at.as_ref()),
                        if v.created_by.is_empty() {
                            "-".to_string()
                        } else {
                            v.created_by.clone()
                        },
                        if v.current { "yes" } else { "" }.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

pub(super) async fn rollback(
    client: &Client,
    a: RollbackArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let revision = client.lifecycle().rollback(&a.name, a.to, &a.env).await?;
    writeln!(
        out,
        "rolled {} in {} back to version {} (revision {revision})",
        a.name, a.env, a.to
    )
    .map_err(io)
}

pub(super) async fn purge(
    client: &Client,
    a: PurgeArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let revision = client.lifecycle().purge(&a.name, a.version, &a.env).await?;
    match (a.version, revision) {
        (Some(v), _) => writeln!(out, "purged version {v} of {} in {}", a.name, a.env),
        (None, Some(r)) => writeln!(
            out,
            "purged {} and every kept version in {} (revision {r})",
            a.name, a.env
        ),
        (None, None) => writeln!(
            out,
            "purged every kept version of {} in {} (it was not set)",
            a.name, a.env
        ),
    }
    .map_err(io)
}

pub(super) async fn copy(
    client: &Client,
    a: CopyArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let revision = client.lifecycle().copy(&a.names, &a.from, &a.to).await?;
    writeln!(
        out,
        "copied {} from {} to {} (revision {revision})",
        a.names.join(", "),
        a.from,
        a.to
    )
    .map_err(io)
}

pub(super) async fn diff(
    client: &Client,
    a: DiffArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let d = client.lifecycle().diff(&a.a, &a.b).await?;
    let equal = |e: Option<bool>| match e {
        Some(true) => "equal",
        Some(false) => "different",
        None => "not compared",
    };
    match a.output {
        Output::Json => print_json(
            out,
            json!({
                "a": a.a,
                "b": a.b,
                "only_in_a": d.only_in_a,
                "only_in_b": d.only_in_b,
                "in_both": d.in_both.iter().map(|e| json!({
                    "name": e.name,
                    "a_updated_at": rfc3339(e.a_updated_at.as_ref()),
                    "b_updated_at": rfc3339(e.b_updated_at.as_ref()),
                    "equal": e.equal,
                })).collect::<Vec<_>>(),
                "values_compared": d.values_compared,
            }),
        ),
        Output::Pretty => {
            let mut rows = Vec::new();
            for n in &d.only_in_a {
                rows.push(vec![n.clone(), format!("only {}", a.a), String::new()]);
            }
            for n in &d.only_in_b {
                rows.push(vec![n.clone(), format!("only {}", a.b), String::new()]);
            }
            for e in &d.in_both {
                rows.push(vec![
                    e.name.clone(),
                    "both".to_string(),
                    equal(e.equal).to_string(),
                ]);
            }
            rows.sort();
            table(out, &["Name", "In", "Values"], &rows)?;
            if !d.values_compared && !d.in_both.is_empty() {
                writeln!(
                    out,
                    "(values not compared: that needs the scopes snapshot:{} and snapshot:{})",
                    a.a, a.b
                )
                .map_err(io)?;
            }
            Ok(())
        }
    }
}

/// `ENV` or `ENV@REVISION`.
fn watch_point(raw: &str) -> Result<(String, Option<u64>), CliError> {
    match raw.split_once('@') {
        None => Ok((raw.to_string(), None)),
        Some((env, rev)) => {
            let rev = rev.parse().map_err(|_| {
                fail(format!(
                    "--env {raw}: expected ENV or ENV@REVISION (a revision is a whole number)"
                ))
            })?;
            Ok((env.to_string(), Some(rev)))
        }
    }
}

pub(super) async fn watch(
    client: &Client,
    a: WatchArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let points = a
        .envs
        .iter()
        .map(|e| watch_point(e))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stream = client.lifecycle().watch(points).await?;
    while let Some(c) = stream
        .message()
        .await
        .map_err(crate::client::ClientError::from)?
    {
        let at = rfc3339(c.at.as_ref());
        match a.output {
            Output::Json => {
                let line = json!({
                    "environment": c.environment,
                    "revision": c.revision,
                    "action": c.action,
                    "names": c.names,
                    "at": at,
                });
                writeln!(out, "{line}")
            }
            Output::Pretty => writeln!(
                out,
                "{at}  {}  revision {}  {}  {}",
                c.environment,
                c.revision,
                c.action,
                c.names.join(",")
            ),
        }
        .map_err(io)?;
        out.flush().map_err(io)?;
    }
    Err(fail("the server ended the watch"))
}
