//! Network namespaces and veth pairs for tests, the demo and benchmarks (to be written).
