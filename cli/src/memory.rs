//! The allocator of the `tidings` binary, and how it gives freed memory back to the system.
//!
//! A server's memory is mostly many small blocks that live as long as their connections,
//! allocated among short-lived ones: ten thousand clients joining at once are ten thousand
//! `presence` lines queued for everyone, freed once written. glibc's allocator carves all
//! sizes from one heap, so the long-lived blocks end up scattered over pages that the burst
//! filled, and those pages stay resident although most of each is free; giving free pages
//! back (`malloc_trim` every 10 s, as `tidings serve` did) cannot return a page one live
//! block still holds. jemalloc keeps each size class in slabs of its own and returns what
//! it frees by itself, from a background thread: with 10 000 idle connections (the idle row
//! of bench/RESULTS.md) the resident memory per connection went from 1.26–1.40 KiB
//! (glibc, trimmed) to 0.95–1.01 KiB.
//!
//! The settings (`MALLOC_CONF` below), each measured on that row:
//! * `tcache:false`: no per-thread cache of freed blocks. The cache kept blocks of every
//!   size class back from the slabs, which then could not be emptied (1.17 → 0.98 KiB).
//!   The server allocates little per message (payloads are shared, buffers reused), so the
//!   arena's own path costs little: fan-out ran 5 % longer, WebSocket fan-out 8 % (repaid
//!   by allocating less in `tidings serve`'s printer), and the rows of RESULTS.md were
//!   measured with it (the clients of the relay row included).
//! * `background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to
//!   the system about a second after they were freed, from jemalloc's own thread, also
//!   while the server is idle (without that thread, only when the server allocates again).
//!
//! An operator can change them at start with the environment variable `_RJEM_MALLOC_CONF`
//! (jemalloc's syntax, e.g. `dirty_decay_ms:10000`). Linux only (jemalloc's background
//! thread is not on every system); elsewhere the binary keeps the system's allocator. A
//! process-wide policy, so it lives in the binary, not in the server library: a program
//! embedding the server chooses its own allocator.

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's `malloc_conf`: a pointer to a C string, read once when the allocator starts.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[repr(transparent)]
struct Conf(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, never written.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
unsafe impl Sync for Conf {}

// (The name has the `_rjem_` prefix the crate gives jemalloc's symbols.)
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Conf =
    Conf(c"tcache:false,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());
