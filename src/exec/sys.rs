//! The operating-system calls of the agent: non-dumpable, memory locking, signal reset, exec,
//! and what a build step's child does between fork and exec. The only module of runseal allowed
//! `unsafe` (resetting signal dispositions and `pre_exec` have no safe API).

use std::convert::Infallible;
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};

/// Below this RLIMIT_MEMLOCK the agent does not lock its memory: with `MCL_FUTURE`, a small
/// limit would make later allocations fail, and failing to start is worse than being swappable.
const MIN_MEMLOCK: u64 = 64 * 1024 * 1024;

/// No core dumps, and no ptrace or /proc/PID/{environ,mem} reads by processes without
/// CAP_SYS_PTRACE. `execve` of the app restores the default for the app.
pub fn make_non_dumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Locks current and future pages in RAM when the limit allows it, so plaintext never reaches
/// swap. Returns whether memory is locked.
///
/// `MCL_ONFAULT` locks each page when it is first touched instead of reading in every mapped
/// page at once: plaintext only ever sits in touched pages, so it is as safe, and a start does
/// not pay for faulting in the whole binary and its libraries (about 7 MB, most of which a
/// start never runs). Kernels before 4.4 refuse the flag (EINVAL) and get the populating lock.
pub fn lock_memory() -> bool {
    let enough = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) => soft == RLIM_INFINITY || soft >= MIN_MEMLOCK,
        Err(_) => false,
    };
    if !enough {
        return false;
    }
    let flags = MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE;
    match mlockall(flags | MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT)) {
        Ok(()) => true,
        Err(Errno::EINVAL) => mlockall(flags).is_ok(),
        Err(_) => false,
    }
}

/// Default dispositions for every signal and an empty mask, so the app starts as if exec'd
/// by init: the Rust runtime ignores SIGPIPE, and ignored signals survive `execve`.
pub fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL registers no Rust code as a handler; the agent runs no
        // signal handlers of its own that could rely on the previous disposition.
        #[allow(unsafe_code)]
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
    // The real-time signals, which `Signal` does not name (glibc keeps the first two for
    // itself and refuses them; SIGRTMIN() is the first an application may use).
    for signo in nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX() {
        // SAFETY: as above: SIG_DFL, no handler code.
        #[allow(unsafe_code)]
        let _ = unsafe { nix::libc::signal(signo, nix::libc::SIG_DFL) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// `execvp` with an explicit environment. Returns only on failure.
pub fn exec<A: AsRef<CStr>, E: AsRef<CStr>>(
    program: &CStr,
    args: &[A],
    env: &[E],
) -> Result<Infallible, Errno> {
    nix::unistd::execvpe(program, args, env)
}

/// Makes the child of `cmd` start with default signal dispositions (as [`reset_signals`]) and
/// inherit `fds`, which stay close-on-exec in the agent: only this child gets them.
pub fn prepare_child(cmd: &mut tokio::process::Command, fds: Vec<RawFd>) {
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it calls signal(2), sigprocmask(2) and fcntl(2) and allocates nothing
    // (`fds` was allocated before the fork). Each fd is open in the parent at spawn time, as the
    // caller keeps the owning handles alive until `spawn` returns, so borrowing it is sound.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            reset_signals();
            for &fd in &fds {
                let fd = BorrowedFd::borrow_raw(fd);
                fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}
