//! On-device proximity filter (placeholder).
