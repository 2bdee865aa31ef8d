//! Collecting an HTTP head (start line and headers) from a byte stream, under a size limit.

use bytes::{Bytes, BytesMut};

/// The head grew past its limit before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeadTooLarge;

/// Gathers bytes until the empty line that ends an HTTP head.
///
/// The end is found by scanning each byte once as it arrives, so feeding a head one byte at a
/// time costs no more than feeding it whole, and the limit is checked before anything is
/// copied: a peer cannot make this buffer more than `limit` bytes of head. Bytes after the head
/// are kept separately for the next layer.
#[derive(Debug)]
pub(super) struct HeadReader {
    head: Vec<u8>,
    rest: BytesMut,
    limit: usize,
    /// The last byte scanned ended a line (a `\r` may follow before the next `\n`).
    at_line_start: bool,
    complete: bool,
}

impl HeadReader {
    pub(super) fn new(limit: usize) -> Self {
        HeadReader {
            head: Vec::new(),
            rest: BytesMut::new(),
            limit,
            at_line_start: false,
            complete: false,
        }
    }

    /// Adds received bytes; `Ok(true)` once the head is complete. Bytes fed after that are
    /// kept as the remainder.
    pub(super) fn push(&mut self, data: &[u8]) -> Result<bool, HeadTooLarge> {
        if self.complete {
            self.rest.extend_from_slice(data);
            return Ok(true);
        }
        let mut end = None;
        for (i, &byte) in data.iter().enumerate() {
            match byte {
                b'\n' if self.at_line_start => {
                    end = Some(i + 1);
                    break;
                }
                b'\n' => self.at_line_start = true,
                // A CR before the LF that ends a line; it does not start content.
                b'\r' => {}
                _ => self.at_line_start = false,
            }
        }
        let take = end.unwrap_or(data.len());
        if self.head.len() + take > self.limit {
            return Err(HeadTooLarge);
        }
        self.head.extend_from_slice(&data[..take]);
        if end.is_some() {
            self.complete = true;
            self.rest.extend_from_slice(&data[take..]);
        }
        Ok(self.complete)
    }

    /// Whether the end of the head has been seen.
    pub(super) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The complete head, line endings included.
    pub(super) fn head(&self) -> &[u8] {
        &self.head
    }

    /// Takes the bytes that followed the head.
    pub(super) fn take_rest(&mut self) -> Bytes {
        self.rest.split().freeze()
    }
}
