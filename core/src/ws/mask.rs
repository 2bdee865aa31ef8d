//! Payload masking (RFC 6455 §5.3).
//!
//! Unmasking touches every received byte, so it is the one loop on the decode path whose speed
//! tracks payload size. It works a machine word at a time on unaligned chunks (safe code; the
//! compiler turns the 8-byte loads into plain moves and vectorises the loop).

/// XORs `buf` in place with `mask`, as if `buf` began `offset` bytes into a masked payload.
///
/// Masking is its own inverse, so the same call masks and unmasks. `offset` lets a receiver
/// unmask a payload piecewise as bytes arrive: pass the number of payload bytes already handled.
///
/// ```
/// use tidings_core::ws::apply_mask;
/// let mask = [1, 2, 3, 4];
/// let mut whole = *b"hello, world";
/// apply_mask(&mut whole, mask, 0);
/// let mut pieces = *b"hello, world";
/// let (a, b) = pieces.split_at_mut(5);
/// apply_mask(a, mask, 0);
/// apply_mask(b, mask, 5);
/// assert_eq!(whole, pieces);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset & 3);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);

    // 32 bytes per iteration: four independent word XORs the compiler maps onto vector lanes.
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            xor_word(word, wide);
        }
    }
    // Every chunk length used is a multiple of 4, so the mask phase is unchanged in the tail.
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, wide);
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= m[i & 3];
    }
}

#[inline(always)]
fn xor_word(word: &mut [u8], wide: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
}
