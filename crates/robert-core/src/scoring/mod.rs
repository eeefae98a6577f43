//! Risk scoring (placeholder).
