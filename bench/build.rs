//! Compiles the subset of etcd's KV API that the load generator drives (`proto/etcd/kv.proto`,
//! client only) with protox (pure Rust: no `protoc` on the machine) into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let etcd = ["proto/etcd/kv.proto"];
    for p in etcd {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(protox::compile(etcd, ["proto"])?)?;
    Ok(())
}
