//! Replaying golden fixtures of the official implementation (GOLDEN.md format).
