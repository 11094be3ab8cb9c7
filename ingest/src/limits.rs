//! Configurable limits that keep memory bounded and reject hostile input.

/// Per-record and per-object limits. Defaults follow ARCHITECTURE.md ("The booking event").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest record (one NDJSON line or one array element), in bytes. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Deepest JSON nesting accepted in a record. Default 64.
    pub max_depth: usize,
    /// Most decompressed bytes read from one object. Default 4 GiB.
    pub max_decompressed_bytes: u64,
    /// Highest decompressed/compressed ratio for a compressed object, checked once more
    /// than `ratio_grace_bytes` have been decompressed. Default 250.
    pub max_ratio: u64,
    /// Decompressed bytes allowed before the ratio is enforced. Default 16 MiB.
    pub ratio_grace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_depth: 64,
            max_decompressed_bytes: 4 << 30,
            max_ratio: 250,
            ratio_grace_bytes: 16 << 20,
        }
    }
}
