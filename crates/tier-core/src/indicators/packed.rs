//! The stored form of [`super::KeptIndicators`]: every figure exactly, in
//! few bytes.
//!
//! A customer state stores the figures at its last tier change (the
//! baseline of the next change's reasons), so the store carries them for
//! every customer. Most figures are whole numbers (counts, days, amounts in
//! minor units), zero or unknown; plain postcard spends 8 bytes on every
//! `f64`. Here a figure is one LEB128 header:
//! - `0`: unknown (`None`);
//! - odd: a whole number `n` with `|n| <= 2^53` (every such `f64` is
//!   exact), zigzagged and shifted left past the odd bit: 0 is one byte,
//!   an amount of a million minor units four;
//! - `2`: any other value (fractions, -0.0, infinities, NaN), its 8 bytes
//!   of IEEE bits follow (little-endian).
//!
//! Counts are LEB128 too. No figures
//! at all take 37 bytes, a customer buying and paying on time about 60,
//! one with an assessment, a complaint and a fractional growth about 90;
//! postcard's fixed-width floats take over 150 for any of them.

/// One field of the packed form.
pub(super) trait Pack: Sized {
    fn pack(&self, out: &mut Vec<u8>);
    /// The value at the front of `input`, which moves past it; `None`
    /// when the bytes are not a value of this field.
    fn unpack(input: &mut &[u8]) -> Option<Self>;
}

/// The largest magnitude below which every whole `f64` is exact.
const EXACT: f64 = 9_007_199_254_740_992.0;

const UNKNOWN: u64 = 0;
const BITS: u64 = 2;

use crate::varint::{self, put as put_varint, unzigzag, zigzag};

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    varint::take(input).ok()
}

impl Pack for Option<f64> {
    fn pack(&self, out: &mut Vec<u8>) {
        match *self {
            None => put_varint(out, UNKNOWN),
            // Whole: |v| <= 2^53 fits an i64 exactly, so the cast back
            // gives v again only when v has no fraction (`fract` would
            // call libm's `trunc`, once per figure of every view the read
            // model builds); NaN fails the first test. The zigzag
            // (<= 2^54) shifted left once fits a u64.
            Some(v)
                if v.abs() <= EXACT
                    && (v as i64) as f64 == v
                    && !(v == 0.0 && v.is_sign_negative()) =>
            {
                put_varint(out, (zigzag(v as i64) << 1) | 1);
            }
            Some(v) => {
                put_varint(out, BITS);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }

    fn unpack(input: &mut &[u8]) -> Option<Self> {
        match take_varint(input)? {
            UNKNOWN => Some(None),
            BITS => {
                let (bits, rest) = input.split_first_chunk::<8>()?;
                *input = rest;
                Some(Some(f64::from_bits(u64::from_le_bytes(*bits))))
            }
            h if h & 1 == 1 => {
                let v = unzigzag(h >> 1) as f64;
                (v.abs() <= EXACT).then_some(Some(v))
            }
            _ => None,
        }
    }
}

impl Pack for f64 {
    fn pack(&self, out: &mut Vec<u8>) {
        Some(*self).pack(out);
    }

    fn unpack(input: &mut &[u8]) -> Option<Self> {
        Option::<f64>::unpack(input)?
    }
}

impl Pack for u32 {
    fn pack(&self, out: &mut Vec<u8>) {
        put_varint(out, u64::from(*self));
    }

    fn unpack(input: &mut &[u8]) -> Option<Self> {
        u32::try_from(take_varint(input)?).ok()
    }
}

impl Pack for u8 {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }

    fn unpack(input: &mut &[u8]) -> Option<Self> {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        Some(b)
    }
}

impl<T: Pack + Copy + Default, const N: usize> Pack for [T; N] {
    fn pack(&self, out: &mut Vec<u8>) {
        for v in self {
            v.pack(out);
        }
    }

    fn unpack(input: &mut &[u8]) -> Option<Self> {
        let mut out = [T::default(); N];
        for v in &mut out {
            *v = T::unpack(input)?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: Option<f64>) -> (Option<f64>, usize) {
        let mut out = Vec::new();
        v.pack(&mut out);
        let mut input = out.as_slice();
        let back = Option::<f64>::unpack(&mut input).unwrap();
        assert!(input.is_empty(), "{v:?} left bytes");
        (back, out.len())
    }

    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        a.map(f64::to_bits) == b.map(f64::to_bits)
    }

    #[test]
    fn whole_figures_take_few_bytes_and_every_other_value_its_bits() {
        for (v, len) in [
            (None, 1),
            (Some(0.0), 1),
            (Some(1.0), 1),
            (Some(-1.0), 1),
            (Some(15.0), 1),
            (Some(1_000_000.0), 4),
            (Some(EXACT), 8),
            (Some(-EXACT), 8),
            (Some(EXACT * 2.0), 9),
            (Some(0.5), 9),
            (Some(-2.5), 9),
            // The last fraction below 2^52 (none lies above it), the
            // last whole number below 2^53.
            (Some(4_503_599_627_370_495.5), 9),
            (Some(EXACT - 1.0), 8),
            (Some(-0.0), 9),
            (Some(f64::INFINITY), 9),
            (Some(f64::NAN), 9),
        ] {
            let (back, n) = round_trip(v);
            assert!(same(back, v), "{v:?} came back as {back:?}");
            assert_eq!(n, len, "{v:?}");
        }
    }

    #[test]
    fn damaged_bytes_are_refused() {
        // Cut short: a float header without its bits, a varint without end.
        assert_eq!(Option::<f64>::unpack(&mut [2u8, 1, 2].as_slice()), None);
        assert_eq!(Option::<f64>::unpack(&mut [0x81u8].as_slice()), None);
        // An even header other than the two defined.
        assert_eq!(Option::<f64>::unpack(&mut [4u8].as_slice()), None);
        // A varint past 64 bits.
        let long = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(take_varint(&mut long.as_slice()), None);
        // A figure that must be known, unknown.
        assert_eq!(f64::unpack(&mut [0u8].as_slice()), None);
        assert_eq!(
            u32::unpack(&mut [0xffu8, 0xff, 0xff, 0xff, 0x7f].as_slice()),
            None
        );
    }

    proptest! {
        #[test]
        fn any_figure_comes_back_exactly(bits in any::<u64>(), whole in -(1i64 << 53)..=(1i64 << 53)) {
            let v = f64::from_bits(bits);
            prop_assert!(same(round_trip(Some(v)).0, Some(v)));
            let w = whole as f64;
            prop_assert!(same(round_trip(Some(w)).0, Some(w)));
        }

        /// The stored form: a value is packed whole exactly when it is a
        /// whole number within 2^53 (and not -0.0), as `fract` tells it.
        #[test]
        fn the_whole_form_is_chosen_as_fract_chooses_it(
            bits in any::<u64>(),
            whole in -(1i64 << 53)..=(1i64 << 53),
            half in any::<bool>(),
        ) {
            let near = whole as f64 + if half { 0.5 } else { 0.0 };
            for v in [f64::from_bits(bits), near] {
                prop_assert_eq!(packed_whole(v), whole_by_fract(v), "{:?}", v);
            }
        }
    }

    /// Whether `v` is packed in the whole-number form (an odd header: the
    /// low bit of a LEB128's first byte is the number's).
    fn packed_whole(v: f64) -> bool {
        let mut out = Vec::new();
        Some(v).pack(&mut out);
        out[0] & 1 == 1
    }

    /// The choice as the first stored form made it.
    fn whole_by_fract(v: f64) -> bool {
        v.fract() == 0.0 && v.abs() <= EXACT && !(v == 0.0 && v.is_sign_negative())
    }

    #[test]
    fn the_whole_form_is_chosen_as_fract_chooses_it_at_the_edges() {
        for v in [
            EXACT,
            -EXACT,
            EXACT + 2.0,
            -(EXACT + 2.0),
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            -0.5,
            0.0,
            -0.0,
            f64::MIN_POSITIVE / 2.0,
            -f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MAX,
            f64::MIN,
            i64::MAX as f64,
            i64::MIN as f64,
        ] {
            assert_eq!(packed_whole(v), whole_by_fract(v), "{v:?}");
        }
    }
}
