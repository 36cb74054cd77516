//! The generated gRPC types of `proto/runseal/v1` and `proto/fal` (built into `OUT_DIR` by
//! `proto/compile.rs`). The messages that carry a value or a credential zeroize their fields on
//! drop (see `proto/compile.rs` for what that does not reach).
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("runseal.v1");

    use std::fmt;

    /// Never the value: its length only.
    impl fmt::Debug for SecretValue {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SecretValue")
                .field("name", &self.name)
                .field(
                    "value",
                    &format_args!("<{} bytes redacted>", self.value.len()),
                )
                .finish()
        }
    }

    impl SecretValue {
        /// The name and the value, moved out of the message: the value into a zeroizing
        /// buffer without a copy, so no plaintext is left behind.
        pub fn take(&mut self) -> (String, crate::secret::SecretBytes) {
            (
                std::mem::take(&mut self.name),
                crate::secret::SecretBytes::new(std::mem::take(&mut self.value)),
            )
        }
    }

    /// Never the credential's secret.
    impl fmt::Debug for CreateKeyResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CreateKeyResponse")
                .field("key", &self.key)
                .field("credential", &"<redacted>")
                .finish()
        }
    }

    /// Never the token's secret.
    impl fmt::Debug for RunnerToken {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RunnerToken")
                .field("token_id", &self.token_id)
                .field("token", &"<redacted>")
                .field("expires_at", &self.expires_at)
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn messages_carrying_plaintext_or_credentials_zeroize_on_drop() {
            fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
            zeroizes_on_drop::<SecretValue>();
            zeroizes_on_drop::<SetSecretsRequest>();
            zeroizes_on_drop::<CreateKeyResponse>();
            zeroizes_on_drop::<RunnerToken>();
            zeroizes_on_drop::<crate::proto::controller::SetSecretRequest>();
            // And a taken value is the same allocation, so nothing is left behind in a copy.
            let mut v = SecretValue {
                name: "A".into(),
                value: b"plaintext".to_vec(),
            };
            let ptr = v.value.as_ptr();
            let (name, taken) = v.take();
            assert_eq!((name.as_str(), taken.expose().as_ptr()), ("A", ptr));
            assert!(v.name.is_empty() && v.value.is_empty());
        }

        #[test]
        fn debug_output_of_secret_carrying_messages_is_redacted() {
            let snapshot = GetSnapshotResponse {
                environment: "main".into(),
                revision: 3,
                secrets: vec![SecretValue {
                    name: "HF_TOKEN".into(),
                    value: b"hf-value-do-not-print".to_vec(),
                }],
                runner_id: "r-1".into(),
            };
            let issued = IssueRunnerTokensResponse {
                tokens: vec![RunnerToken {
                    token_id: "rt_1".into(),
                    token: "rt_1:token-secret-do-not-print".into(),
                    expires_at: None,
                }],
            };
            let key = CreateKeyResponse {
                key: None,
                credential: "k_1:key-secret-do-not-print".into(),
            };
            let shown = format!("{snapshot:?} {issued:?} {key:?}");
            assert!(
                shown.contains("HF_TOKEN") && shown.contains("rt_1"),
                "{shown}"
            );
            assert!(!shown.contains("do-not-print"), "{shown}");
        }
    }
}

/// The subset of fal's `controller.IsolateController` that runseal serves (`proto/fal/`).
pub mod controller {
    tonic::include_proto!("controller");
}

/// The encoded descriptor set of both protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/runseal_descriptor.bin"));
