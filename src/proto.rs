//! The generated gRPC types of `proto/runseal/v1` (built into `OUT_DIR` by `build.rs`).
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("runseal.v1");
}

/// The encoded descriptor set of the runseal protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/runseal_descriptor.bin"));
