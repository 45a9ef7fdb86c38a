//! `config`: the TOML schema, validation and the immutable plan (to be written).
#![forbid(unsafe_code)]
