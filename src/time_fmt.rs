//! RFC 3339 formatting of protobuf timestamps, shared by the CLI's outputs.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| {
        OffsetDateTime::from_unix_timestamp_nanos(
            t.seconds as i128 * 1_000_000_000 + t.nanos as i128,
        )
        .ok()
    })
    .and_then(|t| t.replace_nanosecond(0).ok())
    .and_then(|t| t.format(&Rfc3339).ok())
    .unwrap_or_default()
}
