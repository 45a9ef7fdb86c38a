//! Typed zero-copy views over frame bytes (to be written).
