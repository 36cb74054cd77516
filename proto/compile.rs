//! Compiles `proto/` (runseal.v1 and the fal `controller` subset) with protox (pure Rust: no
//! `protoc` on the machine) and generates the tonic/prost code and the descriptor set for server
//! reflection into `OUT_DIR`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The PostgreSQL tests need a server; without one they are compiled out, and said so.
    println!("cargo::rustc-check-cfg=cfg(runseal_pg_tests)");
    println!("cargo:rerun-if-env-changed=RUNSEAL_TEST_DATABASE_URL");
    if std::env::var_os("RUNSEAL_TEST_DATABASE_URL").is_some() {
        println!("cargo:rustc-cfg=runseal_pg_tests");
    } else {
        println!(
            "cargo:warning=PostgreSQL tests skipped: set RUNSEAL_TEST_DATABASE_URL=postgres://USER@127.0.0.1:5432/DB to run them (.ci/run does)"
        );
    }
    // runseal's own API, and the subset of fal's controller API that the fal CLI and SDK use.
    let protos = [
        "proto/runseal/v1/runseal.proto",
        "proto/fal/controller.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("runseal_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Messages that carry a secret value or a credential get a hand-written, redacting `Debug`
    // (src/proto.rs, src/server/fal.rs) instead of the derived one, and zeroize their own
    // fields on drop. That does not reach the bytes tonic, h2 and hyper held while decoding or
    // encoding them (their buffers are reused or freed without wiping), nor copies prost made
    // while growing a buffer: it shortens how long plaintext stays in memory, it does not
    // bound it.
    let zeroizing = [
        ".runseal.v1.SecretValue",
        ".runseal.v1.SetSecretsRequest",
        ".runseal.v1.CreateKeyResponse",
        ".runseal.v1.RunnerToken",
        ".controller.SetSecretRequest",
    ];
    let mut config = tonic_prost_build::configure();
    for message in zeroizing {
        config = config.type_attribute(
            message,
            "#[derive(::zeroize::Zeroize, ::zeroize::ZeroizeOnDrop)]",
        );
    }
    // Fields without a secret whose types cannot be zeroized.
    for field in [
        ".runseal.v1.CreateKeyResponse.key",
        ".runseal.v1.RunnerToken.expires_at",
    ] {
        config = config.field_attribute(field, "#[zeroize(skip)]");
    }
    config
        .skip_debug([
            ".runseal.v1.SecretValue",
            ".runseal.v1.CreateKeyResponse",
            ".runseal.v1.RunnerToken",
            ".controller.SetSecretRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
