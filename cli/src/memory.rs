//! Giving freed heap memory back to the system, for `tidings serve`.
//!
//! glibc's allocator keeps what is freed in the middle of its heap. After a burst the
//! server's resident memory stays at the burst's peak, although most of it is free: ten
//! thousand clients joining is one presence line to everyone per join, queued in output
//! buffers that are freed once written. A thread asks glibc every interval to return the
//! free pages (`malloc_trim`). Measured with 10 000 idle connections (the idle row of
//! bench/RESULTS.md): 3.5 → 2.4 KiB resident per connection, each trim 0.1–1.3 ms, during
//! which the server's own allocations wait for the allocator's lock.
//!
//! A process-wide policy, so it lives in the binary, not in the server library: a program
//! embedding the server chooses its own allocator and its own policy.

use std::time::Duration;

/// Starts the thread that returns free heap memory every `every` (never if zero, or where
/// the allocator is not glibc's).
pub fn release_periodically(every: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !every.is_zero() {
        let spawned = std::thread::Builder::new()
            .name("release-memory".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                // SAFETY: `malloc_trim` only takes the allocator's locks and returns free
                // pages; it touches no memory the program owns.
                unsafe { libc::malloc_trim(0) };
            });
        if let Err(e) = spawned {
            tracing::warn!("no memory release thread: {e}");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = every;
}
