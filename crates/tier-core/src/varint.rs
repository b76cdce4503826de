//! LEB128 varints and zigzag, for the packed forms a customer state
//! stores (the applied event ids, the figures kept at the last change).

/// Why no varint could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The bytes end inside the number.
    Truncated,
    /// The number runs past 64 bits.
    Overlong,
}

/// `v` as a LEB128 varint onto `out`.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 varint off the front of `input`, which moves past it.
pub(crate) fn take(input: &mut &[u8]) -> Result<u64, Bad> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(Bad::Truncated)?;
        *input = rest;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(Bad::Overlong);
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Bad::Overlong)
}

/// `v` zigzagged: small magnitudes of either sign, small numbers.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_varint_past_64_bits_or_cut_short_is_refused() {
        assert_eq!(take(&mut &[0xff; 11][..]), Err(Bad::Overlong));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(take(&mut &over[..]), Err(Bad::Overlong));
        let long = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(take(&mut long.as_slice()), Err(Bad::Overlong));
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(take(&mut &max[..]), Ok(u64::MAX));
        assert_eq!(take(&mut &[0x81u8][..]), Err(Bad::Truncated));
        assert_eq!(take(&mut &[][..]), Err(Bad::Truncated));
    }

    proptest! {
        #[test]
        fn any_varint_comes_back(v in any::<u64>()) {
            let mut out = Vec::new();
            put(&mut out, v);
            let mut input = out.as_slice();
            prop_assert_eq!(take(&mut input), Ok(v));
            prop_assert!(input.is_empty());
        }

        #[test]
        fn any_zigzag_comes_back(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
            // Small magnitudes stay small: -1 is 1, 1 is 2.
            prop_assert_eq!(zigzag(v.signum()), [1, 0, 2][(v.signum() + 1) as usize]);
        }
    }
}
