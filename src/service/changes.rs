//! The change feed: what changed in which environment, in revision order, read from the
//! store's change log (so a watcher on one replica sees the changes made through any other),
//! resumable per environment from a revision. Never a value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{environment_of, require, Result, Service, ServiceError};
use crate::auth::{Principal, Scope};
use crate::store::{Change, EnvironmentVersion};

/// The most watches one key holds open at once.
pub const MAX_WATCHES_PER_KEY: usize = 8;
/// The most changes of one environment read per poll.
const PAGE: u32 = 100;

/// One open watch: the last revision seen per environment; it counts against its key's cap
/// until dropped.
pub struct Watch {
    /// Environment, the version of it being watched (a deleted and re-created environment is
    /// another one), and the last revision seen.
    cursors: Vec<(String, EnvironmentVersion, u64)>,
    _slot: WatchSlot,
}

struct WatchSlot {
    key_id: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

/// The watches open per key.
pub struct Watches {
    open: Arc<Mutex<HashMap<String, usize>>>,
    /// Woken at each change made through this replica; other replicas' changes are found by
    /// polling.
    changed: tokio::sync::Notify,
    /// Set when runseald stops: every watch ends.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for Watches {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            changed: tokio::sync::Notify::new(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Watches {
    fn take(&self, key_id: &str) -> Result<WatchSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key_id.to_string()).or_insert(0);
        if *n >= MAX_WATCHES_PER_KEY {
            return Err(ServiceError::ResourceExhausted(format!(
                "key {key_id} already holds {MAX_WATCHES_PER_KEY} open watches (the most one key may hold); close one first"
            )));
        }
        *n += 1;
        Ok(WatchSlot {
            key_id: key_id.to_string(),
            open: self.open.clone(),
        })
    }
}

/// A resume point older than the kept changes, or one the environment never reached.
fn resync(env: &str, after: u64, why: &str) -> ServiceError {
    ServiceError::FailedPrecondition(format!(
        "cannot resume the watch of environment {env:?} after revision {after}: {why}; resync: list the environment, then watch it from its current revision"
    ))
}

impl Service {
    /// Opens a watch of `points` (environment, resume revision; `None`: from now), each
    /// needing `read:ENV`; with no points, every environment the key may read, from now.
    pub async fn watch(
        &self,
        principal: &Principal,
        points: Vec<(String, Option<u64>)>,
    ) -> Result<Watch> {
        let points: Vec<_> = if points.is_empty() {
            let envs = self.list_environments(principal).await?;
            envs.into_iter()
                .filter(|e| principal.allows(&Scope::Read(e.name.clone())))
                .map(|e| (e.name, None))
                .collect()
        } else {
            points
        };
        if points.is_empty() {
            return Err(ServiceError::PermissionDenied(format!(
                "key {} may read no environment: a watch needs read:ENV",
                principal.key_id
            )));
        }
        let mut cursors: Vec<(String, EnvironmentVersion, u64)> = Vec::with_capacity(points.len());
        for (raw, after) in points {
            let env = environment_of(&raw)?;
            require(principal, Scope::Read(env.clone()))?;
            if cursors.iter().any(|(e, _, _)| *e == env) {
                return Err(ServiceError::InvalidArgument(format!(
                    "environment {env:?} is named twice in one watch"
                )));
            }
            let (version, first) = self
                .store
                .changes_since(&env, after.unwrap_or(0), 1)
                .await?;
            let current = version.revision;
            let after = match after {
                None => current,
                Some(a) if a > current => {
                    return Err(resync(
                        &env,
                        a,
                        &format!(
                            "its current revision is {current} (was it deleted and created again?)"
                        ),
                    ))
                }
                Some(a) if a < current && first.first().map(|c| c.revision) != Some(a + 1) => {
                    return Err(resync(&env, a, "the changes after it are no longer kept"))
                }
                Some(a) => a,
            };
            cursors.push((env, version, after));
        }
        let slot = self.watches.take(&principal.key_id)?;
        Ok(Watch {
            cursors,
            _slot: slot,
        })
    }

    /// The changes after each cursor, in revision order per environment, moving the cursors
    /// past them. Empty when nothing changed.
    pub async fn poll_watch(&self, watch: &mut Watch) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        for (env, watched, after) in &mut watch.cursors {
            let gone = || {
                ServiceError::NotFound(format!("environment {env:?} was deleted; the watch ends"))
            };
            let (version, changes) = match self.store.changes_since(env, *after, PAGE).await {
                Err(crate::store::StoreError::EnvironmentNotFound(_)) => return Err(gone()),
                r => r?,
            };
            if version.created_at != watched.created_at {
                return Err(gone());
            }
            for c in changes {
                if c.revision != *after + 1 {
                    return Err(resync(
                        env,
                        *after,
                        "the changes after it are no longer kept",
                    ));
                }
                *after = c.revision;
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Completes at the next change made through this replica (to wait between polls).
    pub fn changes_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.watches.changed.notified()
    }

    /// Whether runseald is stopping (then every watch ends).
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.watches.stopping.subscribe()
    }

    /// Ends every watch: runseald is stopping.
    pub fn stop_watches(&self) {
        self.watches.stopping.send_replace(true);
    }

    /// Wakes this replica's watches after a change.
    pub(super) fn changed(&self) {
        self.watches.changed.notify_waiters();
    }
}
