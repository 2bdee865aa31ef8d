//! tidings-smol
