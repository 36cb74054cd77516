//! The in-process server on a manual clock: time-dependent rules are tested by moving the
//! clock, not by sleeping.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use runseal::client::{Client, IssueOptions};
use runseal::service::ManualClock;
use tonic::Code;

#[tokio::test]
async fn a_runner_token_is_refused_once_the_clock_passes_its_ttl() {
    let clock = Arc::new(ManualClock::new());
    let s = TestServer::start_with_clock(clock.clone()).await;
    let admin = s.admin_client().await;
    admin
        .secrets()
        .set(
            "K",
            runseal::secret::SecretBytes::new(b"v".to_vec()),
            "main",
        )
        .await
        .unwrap();
    let opts = IssueOptions {
        ttl: Some(Duration::from_secs(60)),
        uses: 2,
        ..Default::default()
    };
    let token = admin.runners().issue("main", opts).await.unwrap().remove(0);
    let runner = Client::connect(&s.addr, token.token.clone()).await.unwrap();

    // Just inside the TTL: served.
    clock.advance(Duration::from_secs(59));
    let snap = runner.runners().snapshot("", "", &[]).await.unwrap();
    assert_eq!(snap.secrets.len(), 1);

    // Past it: refused with the reason, though a use is left.
    clock.advance(Duration::from_secs(2));
    let err = runner.runners().snapshot("", "", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("runner token {} has expired", token.token_id)),
        "{shown}"
    );
    assert!(!shown.contains(token.token.expose_secret()));
    s.stop().await;
}
