//! A private PostgreSQL cluster for the tests that stop or restart PostgreSQL itself
//! (pg_outage, fault_run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{stderr, stdout};

/// A throwaway PostgreSQL cluster owned by the `postgres` user when the tests run as root, on
/// a Unix socket in its temp dir only: no TCP port that another test could take while it is
/// down (the port number only names the socket file). Never the shared server on 5432.
pub struct PrivatePg {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql/VERSION/bin")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("no pg_ctl under /usr/lib/postgresql")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A data dir for a replica joining with the first one's master key.
pub fn join_dir(first: &Path, dir: &Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();
    let key = dir.join("master.key");
    std::fs::copy(first.join("master.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl PrivatePg {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            // initdb refuses to run as root.
            assert!(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        // Only a Unix socket in the temp dir; the port number only names the socket file.
        let pg = Self {
            dir,
            bin: pg_bin(),
            port: 5433,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?host={}",
            self.port,
            self.dir.path().display()
        )
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    pub fn ctl(&self, action: &str) {
        let data = self.data();
        let opts = format!(
            "-p {} -c listen_addresses= -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log");
        let mut args = vec![
            action,
            "-D",
            data.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
        ];
        if action == "start" {
            args.extend(["-o", &opts, "-l", log.to_str().unwrap()]);
        }
        self.run("pg_ctl", &args);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
            c.arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args(["stop", "-D", data.to_str().unwrap(), "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
