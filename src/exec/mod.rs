//! The exec path: build the app's environment as a value, find the command, reset signal
//! dispositions and `execve` it. Shared by every program that starts an app with its secrets
//! (`runseal-agent`, and `runseal run` for local development), so that none imports another's
//! modules for it.
//!
//! Nothing here talks to a server or prints: callers map [`ExecError`] to their own exit
//! statuses. The child's environment lives in zeroizing buffers ([`env::ChildEnv`]) up to the
//! `execve` that hands it to the kernel; when exec fails it is dropped (zeroized) here.

pub mod env;
pub mod sys;

use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

pub use env::{ChildEnv, EnvEntry, Platform};

/// Why a command could not be started (each message names the command, never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The command or one of its arguments holds a NUL byte (no exec can carry it).
    #[error("{0}")]
    Nul(&'static str),
    /// No such command on `PATH` (or at the path given).
    #[error("{0}: command not found")]
    NotFound(String),
    /// Found, but not something the kernel will execute.
    #[error("{0}")]
    NotExecutable(String),
}

/// A command line ready for `execve`: the program and its arguments as C strings.
#[derive(Debug)]
pub struct Argv {
    program: CString,
    argv: Vec<CString>,
    name: String,
}

impl Argv {
    /// The command and its arguments (`command[0]` is the program, searched on `PATH` unless it
    /// holds a `/`). Empty commands are the caller's usage error.
    pub fn new(command: &[OsString]) -> Result<Self, ExecError> {
        let first = command
            .first()
            .ok_or(ExecError::Nul("the command is empty"))?;
        let program = CString::new(first.as_bytes())
            .map_err(|_| ExecError::Nul("the command contains a NUL byte"))?;
        let argv = command
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ExecError::Nul("an argument contains a NUL byte"))?;
        Ok(Self {
            program,
            argv,
            name: first.to_string_lossy().into_owned(),
        })
    }
}

/// Finds the command as `execvp` will (PATH search unless it contains a '/') and checks that it
/// is an executable file: before any single-use credential is spent on a command that cannot run.
pub fn check_command(command: &OsStr) -> Result<(), ExecError> {
    let name = command.to_string_lossy();
    let executable = |p: &Path| match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Some(true),
        Ok(_) => Some(false),
        Err(_) => None,
    };
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(command)]
    } else {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|d| d.join(command))
            .collect()
    };
    let mut found_but_not_executable = false;
    for c in &candidates {
        match executable(c) {
            Some(true) => return Ok(()),
            Some(false) => found_but_not_executable = true,
            None => {}
        }
    }
    if found_but_not_executable {
        Err(ExecError::NotExecutable(format!(
            "{name}: not an executable file"
        )))
    } else {
        Err(ExecError::NotFound(name.into_owned()))
    }
}

/// Resets every signal disposition and the mask ([`sys::reset_signals`]) and `execve`s the
/// command with exactly `child`'s environment. Returns only on failure, after dropping (and so
/// zeroizing) the environment.
pub fn exec(argv: &Argv, child: ChildEnv) -> ExecError {
    sys::reset_signals();
    let result: Result<Infallible, Errno> = sys::exec(&argv.program, &argv.argv, &child.entries);
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    drop(child);
    let name = &argv.name;
    match err {
        Errno::ENOENT => ExecError::NotFound(name.clone()),
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => {
            ExecError::NotExecutable(format!("{name}: not executable ({err})"))
        }
        e => ExecError::NotExecutable(format!("cannot execute {name}: {e}")),
    }
}
