//! tidings-std
