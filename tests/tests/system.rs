//! Cross-crate system tests.
