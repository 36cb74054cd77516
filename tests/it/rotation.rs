//! `runseald rotate-master-key --stage` / `--finish`, through the real binaries: between the two
//! steps a server holding either master key starts and serves every value (replicas move to the
//! new key one by one), a key matching neither is refused naming both check values, and after
//! `--finish` only the new key opens the database. (The one-step rotation: `hygiene.rs`.)

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{copy_private, mode, ok, refusal, runseal, runseald, succeeded, Daemon, RUNSEALD};
use runseal::auth::Credential;
use runseal::seal::MasterKey;

fn rotate(dir: &Path, extra: &[&OsStr]) -> Output {
    let mut args = vec![
        OsStr::new("rotate-master-key"),
        OsStr::new("--data-dir"),
        dir.as_os_str(),
    ];
    args.extend_from_slice(extra);
    runseald(&args)
}

fn key_id(path: &Path) -> String {
    MasterKey::from_bytes(&std::fs::read(path).unwrap())
        .unwrap()
        .id()
}

/// Every value of `main`, as a runner started on `d` gets them.
async fn values(d: &Daemon, admin: &Credential) -> BTreeMap<String, String> {
    let runner_id = format!("rotation-{}", rand::random::<u32>());
    common::runner_values(&d.addr, admin, &runner_id)
        .await
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rotation_lets_either_key_start_until_it_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key_file = dir.join("master.key");
    let d = Daemon::start(&dir, &[], &[]);
    let admin_line = d.admin_key();
    let admin = Credential::parse(&admin_line).unwrap();
    ok(runseal(
        &d.addr,
        &admin_line,
        &["secrets", "set", "ROT_A=alpha-before"],
    ));
    // A replica's own copy of the old key.
    let replica_old: PathBuf = tmp.path().join("replica-old.key");
    copy_private(&key_file, &replica_old);
    let old_id = key_id(&key_file);

    // Stage while runseald runs.
    let said = succeeded(rotate(&dir, &[OsStr::new("--stage")]), "--stage");
    assert!(said.contains("staged"), "{said}");
    let old_file = dir.join("master.key.old");
    assert_eq!(
        std::fs::read(&old_file).unwrap(),
        std::fs::read(&replica_old).unwrap()
    );
    assert_eq!(mode(&old_file), 0o600, "master.key.old mode");
    assert_eq!(mode(&key_file), 0o600, "master.key mode");
    let new_id = key_id(&key_file);
    assert_ne!(new_id, old_id, "master.key holds the new key");
    assert!(!dir.join("master.key.new").exists());
    // The running server keeps serving and writing.
    ok(runseal(
        &d.addr,
        &admin_line,
        &["secrets", "set", "ROT_B=bravo-staged"],
    ));
    // Neither another rotation nor a second stage while one is staged.
    refusal(&rotate(&dir, &[]), &["staged", "--finish"]);
    refusal(
        &rotate(&dir, &[OsStr::new("--stage")]),
        &["staged", "--finish"],
    );
    let (stopped, log) = d.terminate();
    assert!(stopped, "{log}");

    // Either key starts a server that serves every value.
    let both = expected(&[("ROT_A", "alpha-before"), ("ROT_B", "bravo-staged")]);
    for key in [&replica_old, &key_file] {
        let d = Daemon::start(&dir, &["--master-key-file", key.to_str().unwrap()], &[]);
        assert_eq!(values(&d, &admin).await, both, "with key {}", key.display());
        let (stopped, log) = d.terminate();
        assert!(stopped, "{log}");
    }
    // A key matching neither is refused, naming both check value ids.
    let bad = tmp.path().join("bad.key");
    std::fs::write(&bad, [7u8; 32]).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = Daemon::try_start(&dir, &["--master-key-file", bad.to_str().unwrap()], &[])
        .err()
        .expect("a key matching neither must be refused");
    for n in ["matches neither", old_id.as_str(), new_id.as_str()] {
        assert!(log.contains(n), "the refusal should say {n:?}: {log}");
    }
    // --finish needs the new key.
    refusal(
        &rotate(
            &dir,
            &[
                OsStr::new("--finish"),
                OsStr::new("--master-key-file"),
                replica_old.as_os_str(),
            ],
        ),
        &["is not the staged new key", &new_id],
    );

    let said = succeeded(rotate(&dir, &[OsStr::new("--finish")]), "--finish");
    assert!(said.contains("finished"), "{said}");
    assert!(!old_file.exists(), "master.key.old is removed by --finish");
    let log = Daemon::try_start(
        &dir,
        &["--master-key-file", replica_old.to_str().unwrap()],
        &[],
    )
    .err()
    .expect("after --finish the old key must be refused");
    assert!(log.contains("does not match"), "{log}");
    refusal(
        &rotate(&dir, &[OsStr::new("--finish")]),
        &["no master key rotation is staged"],
    );

    let d = Daemon::start(&dir, &[], &[]);
    assert_eq!(values(&d, &admin).await, both);
    let audit = ok(runseal(
        &d.addr,
        &admin_line,
        &["audit", "--output", "json"],
    ));
    for action in ["master-key.rotate.stage", "master-key.rotate.finish"] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action} is not audited: {audit}"
        );
    }
    let (stopped, log) = d.terminate();
    assert!(stopped, "{log}");

    // The one-step rotation works again, and verify finds everything intact.
    succeeded(rotate(&dir, &[]), "one-step rotation after --finish");
    let report = succeeded(common::runseald_verify(&dir, None), "verify");
    assert!(
        report.contains("2 sealed values checked, 0 failed"),
        "{report}"
    );
    let d = Daemon::start(&dir, &[], &[]);
    assert_eq!(values(&d, &admin).await, both);
}

/// Two replicas on one PostgreSQL database: one stages the rotation, the other (still on the old
/// key) restarts and keeps serving; after `--finish` it must be given the new key.
#[cfg(runseal_pg_tests)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_either_key_restart_during_a_staged_rotation_on_postgres() {
    let pg = common::PgDb::create();
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = pg.url.clone();
    let a = Daemon::start(&da, &["--database-url", &url], &[]);
    let admin_line = a.admin_key();
    let admin = Credential::parse(&admin_line).unwrap();
    ok(runseal(
        &a.addr,
        &admin_line,
        &["secrets", "set", "ROT_PG=pg-value"],
    ));
    std::fs::DirBuilder::new().create(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700)).unwrap();
    copy_private(&da.join("master.key"), &db.join("master.key"));
    let b = Daemon::start(&db, &["--database-url", &url], &[]);

    let out = Command::new(RUNSEALD)
        .args([
            "rotate-master-key",
            "--stage",
            "--database-url",
            &url,
            "--data-dir",
        ])
        .arg(&da)
        .output()
        .unwrap();
    succeeded(out, "--stage on replica a");
    let want = expected(&[("ROT_PG", "pg-value")]);
    // b restarts on the old key; a restarts on the new one.
    let (stopped, log) = b.terminate();
    assert!(stopped, "{log}");
    let b = Daemon::start(&db, &["--database-url", &url], &[]);
    assert_eq!(values(&b, &admin).await, want);
    let (stopped, log) = a.terminate();
    assert!(stopped, "{log}");
    let a = Daemon::start(&da, &["--database-url", &url], &[]);
    assert_eq!(values(&a, &admin).await, want);

    let out = Command::new(RUNSEALD)
        .args([
            "rotate-master-key",
            "--finish",
            "--database-url",
            &url,
            "--data-dir",
        ])
        .arg(&da)
        .output()
        .unwrap();
    succeeded(out, "--finish on replica a");
    let (stopped, log) = b.terminate();
    assert!(stopped, "{log}");
    let log = Daemon::try_start(&db, &["--database-url", &url], &[])
        .err()
        .expect("after --finish a replica on the old key must be refused");
    assert!(log.contains("does not match"), "{log}");
    copy_private(&da.join("master.key"), &db.join("master.key"));
    let b = Daemon::start(&db, &["--database-url", &url], &[]);
    assert_eq!(values(&b, &admin).await, want);
    drop((a, b, pg));
}

fn runseald_ok(args: &[&OsStr], what: &str) -> String {
    succeeded(runseald(args), what)
}

#[test]
fn a_backup_taken_while_a_rotation_is_staged_restores_with_either_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Daemon::start(&dir, &[], &[]);
    ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["secrets", "set", "ROT_C=charlie"],
    ));
    let old_key = tmp.path().join("old.key");
    copy_private(&dir.join("master.key"), &old_key);
    succeeded(rotate(&dir, &[OsStr::new("--stage")]), "--stage");
    let file = tmp.path().join("staged.runseal-backup");
    runseald_ok(
        &[
            OsStr::new("backup"),
            OsStr::new("--data-dir"),
            dir.as_os_str(),
            OsStr::new("--to"),
            file.as_os_str(),
        ],
        "backup while staged",
    );
    drop(d);
    let header = String::from_utf8_lossy(&std::fs::read(&file).unwrap()[..400]).into_owned();
    assert!(header.contains("staged-master-key-check: "), "{header}");
    let restore = |target: &Path, key: &Path| {
        Command::new(RUNSEALD)
            .args([
                OsStr::new("restore"),
                OsStr::new("--from"),
                file.as_os_str(),
            ])
            .args([OsStr::new("--data-dir"), target.as_os_str()])
            .args([OsStr::new("--master-key-file"), key.as_os_str()])
            .output()
            .unwrap()
    };
    let bad = tmp.path().join("bad.key");
    std::fs::write(&bad, [9u8; 32]).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    refusal(
        &restore(&tmp.path().join("r-bad"), &bad),
        &["or the staged new key", &key_id(&old_key)],
    );
    for (name, key) in [
        ("r-old", old_key.clone()),
        ("r-new", dir.join("master.key")),
    ] {
        let target = tmp.path().join(name);
        succeeded(restore(&target, &key), name);
        let report = runseald_ok(
            &[
                OsStr::new("verify"),
                OsStr::new("--data-dir"),
                target.as_os_str(),
                OsStr::new("--master-key-file"),
                key.as_os_str(),
            ],
            "verify of a restored staged backup",
        );
        assert!(
            report.contains("1 sealed values checked, 0 failed"),
            "{name}: {report}"
        );
    }
}
