//! XDP program loading and attachment (to be written).
