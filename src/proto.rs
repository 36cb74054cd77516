//! The generated gRPC types of `proto/runseal/v1` and `proto/fal` (built into `OUT_DIR` by
//! `build.rs`).
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("runseal.v1");
}

/// The subset of fal's `controller.IsolateController` that runseal serves (`proto/fal/`).
pub mod controller {
    tonic::include_proto!("controller");
}

/// The encoded descriptor set of both protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/runseal_descriptor.bin"));
