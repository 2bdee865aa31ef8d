//! Writing an [`Outgoing`] queue to a blocking socket: several pieces per system call, each
//! piece handed back whole once written (for the buffer pool).

use std::io::{self, IoSlice, Write};

use bytes::Bytes;
use tidings_host::outgoing::{Outgoing, MAX_SLICES};

/// Writes everything queued in `out`, gathering up to [`MAX_SLICES`] pieces into each
/// vectored write, and hands each piece to `written` once all its bytes are out. On an error
/// (a write timeout included) what was not written stays queued.
pub(crate) fn flush(
    stream: &mut impl Write,
    out: &mut Outgoing,
    mut written: impl FnMut(Bytes),
) -> io::Result<()> {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = out.slices(&mut slices);
        match stream.write_vectored(&slices[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => out.advance(k, &mut written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `step` bytes per call, like a socket with little room.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_hand_back_whole_buffers_in_order() {
        let pieces: Vec<Bytes> = (0..5u8)
            .map(|i| Bytes::from(vec![i; 10 + i as usize]))
            .collect();
        let mut out = Outgoing::default();
        for p in &pieces {
            out.push(p.clone());
        }
        let mut sink = Trickle {
            got: Vec::new(),
            step: 7,
        };
        let mut back = Vec::new();
        flush(&mut sink, &mut out, |b| back.push(b)).unwrap();
        assert!(out.is_empty());
        assert_eq!(back, pieces);
        assert_eq!(sink.got, pieces.concat());
    }
}
