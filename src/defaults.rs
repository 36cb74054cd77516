//! Defaults and identifiers every program agrees on (the server, the CLI and the agent), kept
//! here so that none of them imports another's modules for them.

use rand::RngCore;

/// Where the CLI and the agent reach runseald when no address is given.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7443";

/// What runseald listens on by default (the address of [`DEFAULT_ADDR`]).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// Where runseald serves the web dashboard by default (beside gRPC's port).
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:7444";

/// A fresh runner id (`r-` and 16 hex digits from the OS's random source), for a runner that
/// names none: the agent makes one, and the server one for a start that came without.
pub fn generate_runner_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("r-{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn runner_ids_are_random_and_well_formed() {
        let a = super::generate_runner_id();
        let b = super::generate_runner_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("r-") && a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
