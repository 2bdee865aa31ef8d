//! Opening without waiting: on Unix, opening a FIFO waits for its other end and opening a
//! terminal may make it the process's controlling terminal. Every file this crate opens by
//! a name it did not make is opened with `O_NONBLOCK | O_NOCTTY`, checked to be what it
//! should be, and only then made blocking again. Windows has neither in its file system.

use std::fs::File;
use std::io;

use cap_std::fs::OpenOptions;

/// `options` with opening made non-waiting (Unix), for [`made_blocking`] after the check.
pub(crate) fn without_waiting(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use cap_fs_ext::OpenOptionsSyncExt;
        use cap_std::fs::OpenOptionsExt;
        options
            .nonblock(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32);
    }
    options
}

/// `file`, opened by [`without_waiting`] and checked, with blocking reads and writes again.
pub(crate) fn made_blocking(file: File) -> io::Result<File> {
    #[cfg(unix)]
    {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
        fcntl_setfl(&file, fcntl_getfl(&file)? - OFlags::NONBLOCK)?;
    }
    Ok(file)
}
