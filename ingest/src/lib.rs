//! tix-logs ingestion: turn booking-log objects into indexed events without losing or
//! doubling a record.
//!
//! The pure core (decompression, framing, validation, redaction, ids) is synchronous and
//! I/O-free apart from the `Read` it is handed; sources, the dead-letter store and the
//! pipeline that drives a [`indexer::Backend`] sit at the edges.

pub mod dead_letter;
pub mod decode;
pub mod error;
pub mod events;
pub mod framing;
pub mod id;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod limits;
pub mod pii_key;
pub mod pipeline;
pub mod reconcile;
pub mod redact;
pub mod redrive;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod secrets;
pub mod source;
#[cfg(test)]
mod test_support;
#[cfg(feature = "aws")]
pub mod trigger;
pub mod validate;

pub use error::{Error, ObjectFailure, RejectKind, Rejection, Result};
pub use limits::Limits;
